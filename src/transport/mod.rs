//! Transports: how bytes reach an MCP peer. One file per transport; `sse` is the event-stream
//! codec they share, `answer` the one reader of an answer (JSON or an event stream).

pub mod address;
pub mod answer;
pub mod http1;
pub mod http_client;
pub mod legacy_sse;
pub mod sse;
pub mod stdio_child;
