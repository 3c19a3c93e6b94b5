//! Host and Origin checks (DNS rebinding, cross-site browser requests) and CORS.
//!
//! A local proxy listening on loopback is reachable from any web page the user opens; the spec
//! requires servers to validate `Origin`, and a rebinding attack is stopped by refusing any
//! `Host` that is not a name of this machine. Browser clients such as the MCP Inspector are let
//! in from loopback origins, and CORS exposes `Mcp-Session-Id` to them.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::http::body::{self, Body};

#[derive(Debug, Clone)]
pub struct Guard {
    /// Host names (without port) accepted in `Host`; `None` accepts any (non-loopback listener
    /// with no `--allow-host`).
    hosts: Option<Vec<String>>,
    /// Extra origins accepted besides loopback ones, as `scheme://host[:port]`.
    origins: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Host(String),
    Origin(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Host(h) => write!(f, "Host {h:?} is not allowed"),
            Refusal::Origin(o) => write!(f, "Origin {o:?} is not allowed"),
        }
    }
}

const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

impl Guard {
    pub fn new(listener_is_loopback: bool, allow_hosts: &[String], allow_origins: &[String]) -> Self {
        let hosts = if listener_is_loopback || !allow_hosts.is_empty() {
            let mut v: Vec<String> =
                allow_hosts.iter().map(|h| strip_port(&h.to_ascii_lowercase()).to_owned()).collect();
            v.extend(LOOPBACK_NAMES.iter().map(|s| s.to_string()));
            Some(v)
        } else {
            None
        };
        let origins = allow_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect();
        Guard { hosts, origins }
    }

    /// Checks a request's `Host` (or HTTP/2 authority) and every `Origin` it carries: one
    /// foreign `Origin` among allowed ones is a foreign request.
    pub fn check(&self, headers: &HeaderMap, authority: Option<&str>) -> Result<(), Refusal> {
        if let Some(allowed) = &self.hosts {
            let mut hosts = headers.get_all(header::HOST).iter();
            let host = match (hosts.next(), hosts.next()) {
                (Some(h), None) => h.to_str().unwrap_or(""),
                (None, _) => authority.unwrap_or(""),
                (Some(_), Some(_)) => return Err(Refusal::Host("(more than one)".into())),
            };
            let name = strip_port(host);
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                return Err(Refusal::Host(host.chars().take(100).collect()));
            }
        }
        for origin in headers.get_all(header::ORIGIN) {
            let text = origin.to_str().unwrap_or("");
            if !self.origin_allowed(text) {
                return Err(Refusal::Origin(text.chars().take(100).collect()));
            }
        }
        Ok(())
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
            return false; // "null", file://, chrome-extension:// …
        };
        LOOPBACK_NAMES.contains(&strip_port(rest))
    }
}

/// `host:port`, `[v6]:port`, `[v6]` → host.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

const EXPOSED: &str = "mcp-session-id, mcp-protocol-version, www-authenticate";
const ALLOWED_HEADERS: &str =
    "content-type, accept, authorization, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name";

/// Adds the CORS response headers for an (already checked) `Origin`.
pub fn cors(request: &HeaderMap, response: &mut HeaderMap) {
    if let Some(origin) = request.get(header::ORIGIN) {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
        response.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// The answer to a CORS preflight.
pub fn preflight(request: &HeaderMap) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    cors(request, h);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn loopback_listener() {
        let g = Guard::new(true, &[], &["https://app.example".into()]);
        let table: &[(&str, Option<&str>, bool)] = &[
            ("127.0.0.1:8001", None, true),
            ("localhost:8001", None, true),
            ("[::1]:8001", None, true),
            ("LOCALHOST", None, true),
            ("evil.example:8001", None, false),
            ("127.0.0.1.evil.example", None, false),
            ("localhost.evil:80", None, false),
            ("127.0.0.1:8001", Some("http://localhost:6274"), true),
            ("127.0.0.1:8001", Some("http://127.0.0.1"), true),
            ("127.0.0.1:8001", Some("https://app.example"), true),
            ("127.0.0.1:8001", Some("https://app.example.evil"), false),
            ("127.0.0.1:8001", Some("http://evil.example"), false),
            ("127.0.0.1:8001", Some("null"), false),
            ("127.0.0.1:8001", Some("http://localhost.evil.example"), false),
        ];
        for (host, origin, ok) in table {
            assert_eq!(g.check(&req(host, *origin), None).is_ok(), *ok, "{host} {origin:?}");
        }
    }

    #[test]
    fn every_origin_and_the_one_host_count() {
        let g = Guard::new(true, &[], &[]);
        let mut h = req("127.0.0.1:8001", Some("http://localhost"));
        h.append(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(g.check(&h, None), Err(Refusal::Origin("https://evil.example".into())));
        let mut h = req("127.0.0.1:8001", None);
        h.append(header::HOST, "evil.example".parse().unwrap());
        assert!(g.check(&h, None).is_err());
    }

    #[test]
    fn open_listener_without_allow_list_accepts_any_host() {
        let g = Guard::new(false, &[], &[]);
        assert!(g.check(&req("gateway.internal:8001", None), None).is_ok());
        let g = Guard::new(false, &["gateway.internal".into()], &[]);
        assert!(g.check(&req("gateway.internal:8001", None), None).is_ok());
        assert!(g.check(&req("other:8001", None), None).is_err());
    }
}
