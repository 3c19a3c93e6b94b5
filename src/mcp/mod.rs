//! MCP protocol knowledge that does not depend on a transport: eras, standard headers, sessions.

pub mod era;
pub mod headers;
pub mod modern;
pub mod param_headers;
pub mod queue;
pub mod session;
