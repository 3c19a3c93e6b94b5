//! The HTTP front-end: accepting connections, the checks every request passes before any mode
//! sees it (Host/Origin, CORS), and the single place errors become HTTP responses.

pub mod body;
pub mod conns;
#[cfg(test)]
mod differential;
pub mod endpoint;
pub mod framing;
pub mod guard;
pub mod h1;
pub mod head;
pub mod limits;
pub mod negotiate;
pub mod server;
pub mod wire;
