//! The HTTP front-end: accepting connections, the checks every request passes before any mode
//! sees it (Host/Origin, CORS), and the single place errors become HTTP responses.

pub mod body;
pub mod guard;
pub mod server;
pub mod wire;
