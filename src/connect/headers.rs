//! Which headers cross the proxy. A header mcpgate owns is set or stripped, never passed from
//! the client: `Host`, `Content-Length`, hop-by-hop headers, `Mcp-Session-Id` (the gateway's
//! own), `Origin` (checked here, meaningless upstream), `Accept-Encoding` (streams are relayed
//! and inspected uncompressed), forwarding headers and the identity headers auth proxies assert
//! (spoofable), and `Authorization` (with its `DPoP` proof) whenever mcpgate supplies the
//! credential. Everything else
//! passes unchanged.

use http::HeaderMap;
use http::header::{self, HeaderName};

use crate::mcp::headers::SESSION_ID;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &HeaderName, named_by_connection: &[String]) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || named_by_connection.iter().any(|n| n == name.as_str())
}

/// A header name as compared below: `_` read as `-` (a name is lower case already). Allocates
/// only for a name with `_`, which hardly any has.
fn normalized(name: &HeaderName) -> std::borrow::Cow<'_, str> {
    let n = name.as_str();
    if n.contains('_') { n.replace('_', "-").into() } else { n.into() }
}

/// Headers a client could use to lie about where it is or who it is, in any case and with `_`
/// for `-` (`n` as `normalized` gives it): forwarding headers (`Forwarded`, `X-Forwarded-*`,
/// `X-Real-IP`) and the identity headers authenticating proxies set for an upstream
/// (oauth2-proxy, Pomerium, Google IAP, Azure App Service, Cloudflare Access, Apache's
/// `REMOTE_USER`), which an upstream behind such a proxy would believe. Sorted by first letter:
/// most names are rejected by it alone (this runs for every header of every request).
fn is_spoofable(n: &str) -> bool {
    const X_EXACT: &[&str] =
        &["x-real-ip", "x-remote-user", "x-authenticated-user", "x-user", "x-user-id", "x-email", "x-user-email"];
    const X_PREFIXES: &[&str] = &[
        "x-forwarded-",
        "x-auth-request-",
        "x-pomerium-",
        "x-goog-authenticated-user-",
        "x-goog-iap-",
        "x-ms-client-principal",
    ];
    match n.as_bytes().first() {
        Some(b'x') => X_EXACT.contains(&n) || X_PREFIXES.iter().any(|p| n.starts_with(p)),
        Some(b'f') => n == "forwarded",
        Some(b'r') => n == "remote-user",
        Some(b'c') => n.starts_with("cf-access-"),
        _ => false,
    }
}

fn connection_tokens(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The client's request headers as they go upstream.
pub fn to_upstream(client: &HeaderMap, drop_authorization: bool) -> HeaderMap {
    let passes = Passes::of(client, drop_authorization);
    let mut out = HeaderMap::with_capacity(client.len() + 2);
    for (k, v) in client {
        if passes.test(k) {
            out.append(k, v.clone());
        }
    }
    out
}

/// The rule for one request: which of the client's headers go upstream.
pub struct Passes {
    named: Vec<String>,
    drop_authorization: bool,
}

impl Passes {
    pub fn of(client: &HeaderMap, drop_authorization: bool) -> Passes {
        Passes { named: connection_tokens(client), drop_authorization }
    }

    pub fn test(&self, k: &HeaderName) -> bool {
        let owned = *k == header::HOST
            || *k == header::CONTENT_LENGTH
            || *k == header::ORIGIN
            || *k == header::ACCEPT_ENCODING
            || *k == SESSION_ID
            // A client's DPoP proof belongs to the client's token: it goes where that token goes.
            || (self.drop_authorization && (*k == header::AUTHORIZATION || *k == crate::oauth_client::dpop::DPOP));
        if owned || is_hop_by_hop(k, &self.named) {
            return false;
        }
        !is_spoofable(&normalized(k))
    }
}

/// Filters the upstream's response headers in place before they go to the client (the session
/// id is set by the caller; the length follows the relayed body; CORS is the front-end's to decide).
pub fn to_client(h: &mut HeaderMap) {
    h.remove(header::CONTENT_LENGTH);
    h.remove(SESSION_ID);
    // Usually nothing else is unwanted: the names are checked before anything is collected.
    let named = connection_tokens(h);
    let unwanted = |k: &HeaderName| k.as_str().starts_with("access-control-") || is_hop_by_hop(k, &named);
    if !h.keys().any(unwanted) {
        return;
    }
    let unwanted: Vec<HeaderName> = h.keys().filter(|k| unwanted(k)).cloned().collect();
    for k in unwanted {
        h.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_policy() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "127.0.0.1:8001"),
            ("content-length", "10"),
            ("authorization", "Bearer client"),
            ("dpop", "client.proof.jwt"),
            ("mcp-session-id", "gateway-id"),
            ("mcp-protocol-version", "2025-06-18"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x_forwarded_host", "evil"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x_real_ip", "1.2.3.4"),
            ("X-Forwarded-User", "admin"),
            ("x-auth-request-email", "admin@example.com"),
            ("x_auth_request_user", "admin"),
            ("remote-user", "admin"),
            ("x-remote-user", "admin"),
            ("x-pomerium-jwt-assertion", "e30.e30."),
            ("x-goog-iap-jwt-assertion", "e30.e30."),
            ("x-ms-client-principal-name", "admin"),
            ("cf-access-authenticated-user-email", "admin@example.com"),
            ("x-user", "admin"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("origin", "http://localhost:6274"),
            ("x-tenant", "acme"),
            ("accept", "application/json, text/event-stream"),
        ] {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let out = to_upstream(&h, true);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["mcp-protocol-version", "x-tenant", "accept"]);
        // The client's token and its DPoP proof go together, or not at all.
        let own = to_upstream(&h, false);
        assert!(own.contains_key("authorization") && own.contains_key("dpop"));
    }

    #[test]
    fn response_policy() {
        let mut h = HeaderMap::new();
        h.insert("content-type", "text/event-stream".parse().unwrap());
        h.insert("mcp-session-id", "upstream-id".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("www-authenticate", "Bearer realm=x".parse().unwrap());
        h.insert("access-control-allow-origin", "*".parse().unwrap());
        to_client(&mut h);
        assert!(!h.contains_key("access-control-allow-origin"));
        assert!(h.contains_key("content-type") && h.contains_key("www-authenticate"));
        assert!(!h.contains_key("mcp-session-id") && !h.contains_key("transfer-encoding"));
    }
}
