//! mcpgate: one binary between MCP clients and MCP servers that owns authentication on both sides.
//!
//! The crate is laid out after the path a message takes (see `docs/ARCHITECTURE.md`):
//! a front-end (`http`, or `stdio` in-process) accepts it, the mode (`connect`) decides what to do with it using the
//! protocol knowledge in `mcp` and the envelope codec in `jsonrpc`, and an `upstream` sends it on
//! through a `transport` with `credentials` injected.

pub mod authn;
pub mod authz;
pub mod cli;
pub mod config;
pub mod connect;
pub mod credentials;
pub mod error;
pub mod expiring;
pub mod http;
pub mod install;
pub mod jsonrpc;
pub mod log;
pub mod login;
pub mod mcp;
pub mod oauth_client;
pub mod policy;
pub mod secret;
pub mod serve;
pub mod shutdown;
pub mod stdio;
pub mod store;
pub mod token;
pub mod transport;
pub mod upstream;
pub mod url;
