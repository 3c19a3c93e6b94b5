//! JSON-RPC error codes the gateway answers with itself.

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined server errors (-32000 … -32099).
pub const UPSTREAM_UNAVAILABLE: i64 = -32001;
pub const UPSTREAM_TIMEOUT: i64 = -32002;
pub const UPSTREAM_PROTOCOL: i64 = -32003;
pub const CREDENTIAL_UNAVAILABLE: i64 = -32004;
pub const SESSION_NOT_FOUND: i64 = -32005;
/// The gateway holds as many sessions as it may (`maxSessions`, `maxSessionsPerClient`) and none
/// is idle; HTTP 503.
pub const SESSION_LIMIT: i64 = -32006;
/// 2026-07-28: `UnsupportedProtocolVersion`, with `data.supported` (what a modern-only server
/// answers a legacy request with).
pub const UNSUPPORTED_VERSION: i64 = -32022;
/// 2026-07-28: a standard header (`Mcp-Method`, `Mcp-Name`) is missing or disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the request needs a client capability the client did not declare
/// (`data.requiredCapabilities`); HTTP 400.
pub const MISSING_CAPABILITY: i64 = -32021;
/// The request needs the user to open a URL first (2025-11-25: URL-mode elicitation).
pub const URL_ELICITATION_REQUIRED: i64 = -32042;
