//! Which addresses a client may connect to, checked on the addresses it connects to (a name
//! resolved once: what is checked is what is connected to). Both of `http_client`'s paths use it:
//! its TLS connector's resolver and our HTTP/1 pool (`http1`).

use std::sync::Arc;

/// Which addresses a client may connect to (the outbound SSRF policy of the OAuth client).
pub type AddressPolicy = Arc<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>;

/// The addresses `host` resolves to that `policy` admits; an error naming none of them when it
/// admits none.
pub async fn admitted(host: &str, port: u16, policy: &AddressPolicy) -> std::io::Result<Vec<std::net::SocketAddr>> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port)).await?.filter(|a| policy(a.ip())).collect();
    if addrs.is_empty() {
        let why = format!("{host} resolves to no address this client may connect to");
        return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, why));
    }
    Ok(addrs)
}
