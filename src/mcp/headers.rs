//! The HTTP headers MCP defines, and the 2026-07-28 rule that `Mcp-Method`/`Mcp-Name` must
//! mirror the body (SEP-2243): intermediaries route on the headers, servers execute the body, so
//! a disagreement is a confused-deputy vector and is refused before anything is forwarded.

use http::{HeaderMap, HeaderName};

use crate::jsonrpc::Envelope;

// Names, not strings: a lookup by `&str` parses and validates the name on every call, which
// was 4% of the gateway's instructions per request.
pub const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
pub const METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub const NAME: HeaderName = HeaderName::from_static("mcp-name");

/// A header name as read from the wire. The names of an MCP exchange come on nearly every
/// request and response: matched here by length and then one comparison, they are shared
/// constants. `HeaderName::from_bytes` would search the standard names for each, and give each
/// MCP name (non-standard) an allocation of its own.
pub fn name(raw: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, DATE, HOST, ORIGIN};
    let is = |known: &HeaderName| same_name(raw, known.as_str().as_bytes());
    let known = match raw.len() {
        4 if is(&HOST) => HOST,
        4 if is(&DATE) => DATE,
        6 if is(&ACCEPT) => ACCEPT,
        6 if is(&ORIGIN) => ORIGIN,
        12 if is(&CONTENT_TYPE) => CONTENT_TYPE,
        13 if is(&AUTHORIZATION) => AUTHORIZATION,
        13 if is(&LAST_EVENT_ID) => LAST_EVENT_ID,
        14 if is(&CONTENT_LENGTH) => CONTENT_LENGTH,
        14 if is(&SESSION_ID) => SESSION_ID,
        20 if is(&PROTOCOL_VERSION) => PROTOCOL_VERSION,
        10 if is(&METHOD) => METHOD,
        8 if is(&NAME) => NAME,
        _ => return HeaderName::from_bytes(raw),
    };
    Ok(known)
}

/// `raw` is `known` in any case, `known` being lowercase letters and `-` (as every name `name`
/// matches is): eight bytes at a time, each letter's case bit ignored where `known` has a
/// letter (bit 6 set: `a`–`z`; clear: `-`, compared exactly). A byte-by-byte
/// `eq_ignore_ascii_case` was most of the cost of reading a request's headers.
fn same_name(raw: &[u8], known: &[u8]) -> bool {
    const LETTERS: u64 = 0x4040_4040_4040_4040;
    let n = raw.len();
    if n != known.len() {
        return false;
    }
    if n < 8 {
        return raw.eq_ignore_ascii_case(known);
    }
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
    let same = |at: usize| {
        let k = word(known, at);
        word(raw, at) | ((k & LETTERS) >> 1) == k
    };
    // Whole words, then the last eight bytes (overlapping the words before when `n` is not a
    // multiple of eight).
    (0..n - 8).step_by(8).all(same) && same(n - 8)
}

/// A request's `Mcp-Param-*` headers (SEP-2243), if it has any.
pub fn param_headers(headers: &HeaderMap) -> Option<HeaderMap> {
    let mut params = HeaderMap::new();
    for (k, v) in headers {
        if k.as_str().starts_with("mcp-param-") {
            params.append(k.clone(), v.clone());
        }
    }
    (!params.is_empty()).then_some(params)
}

/// Methods whose target must be mirrored in `Mcp-Name` (the tasks extension's name a task).
fn names_a_target(method: &str) -> bool {
    matches!(
        method,
        "tools/call"
            | "prompts/get"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "tasks/get"
            | "tasks/update"
            | "tasks/cancel"
    )
}

/// Methods of the revision known to name no target: an `Mcp-Name` on one of them is a mistake.
/// (A method of an extension unknown here may name one: its header is the server's to judge.)
fn names_nothing(method: &str) -> bool {
    matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "completion/complete"
            | "subscriptions/listen"
            | "ping"
            | "initialize"
            | "logging/setLevel"
    )
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderMismatch {
    #[error("the Mcp-Method header is required")]
    MissingMethod,
    #[error("the Mcp-Method header ({header:?}) does not match the body's method ({body:?})")]
    Method { header: String, body: String },
    #[error("the Mcp-Name header is required for {0}")]
    MissingName(String),
    #[error("the Mcp-Name header ({header:?}) does not match the body ({body:?})")]
    Name { header: String, body: String },
    #[error("the Mcp-Name header is set but the body names no target")]
    OrphanName,
    #[error("a modern request carries exactly one JSON-RPC message")]
    NotSingle,
}

/// Checks a modern-era request's standard headers against its body.
pub fn check_modern(headers: &HeaderMap, msg: &Envelope<'_>) -> Result<(), HeaderMismatch> {
    let text = |name| headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(method) = msg.method() else {
        // Responses and notifications without a method carry nothing to mirror.
        return Ok(());
    };
    match text(METHOD) {
        None => return Err(HeaderMismatch::MissingMethod),
        Some(h) if h != method => {
            return Err(HeaderMismatch::Method { header: h, body: method.into() });
        }
        Some(_) => {}
    }
    let body_name = if names_a_target(method) { msg.target_name() } else { None };
    match (text(NAME).map(decode_sentinel), body_name) {
        (Some(h), Some(b)) if h != b => Err(HeaderMismatch::Name { header: h, body: b }),
        (None, Some(_)) => Err(HeaderMismatch::MissingName(method.into())),
        (Some(_), None) if !names_a_target(method) && !names_nothing(method) => Ok(()),
        (Some(_), None) => Err(HeaderMismatch::OrphanName),
        _ => Ok(()),
    }
}

/// A header value that is not safe ASCII travels as `=?base64?<utf-8 in base64>?=`.
fn decode_sentinel(v: String) -> String {
    use base64::Engine;
    let inner = v.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?="));
    match inner
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
    {
        Some(decoded) => decoded,
        None => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_match_in_any_case_and_nothing_else() {
        use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, DATE, HOST, ORIGIN};
        let known = [
            HOST,
            DATE,
            ACCEPT,
            ORIGIN,
            CONTENT_TYPE,
            AUTHORIZATION,
            LAST_EVENT_ID,
            CONTENT_LENGTH,
            SESSION_ID,
            PROTOCOL_VERSION,
            METHOD,
            NAME,
        ];
        for k in &known {
            let k = k.as_str();
            // What `same_name` relies on.
            assert!(k.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{k}");
            assert_eq!(name(k.as_bytes()).unwrap(), k);
            assert_eq!(name(k.to_ascii_uppercase().as_bytes()).unwrap(), k);
            let mixed: String =
                k.chars().enumerate().map(|(i, c)| if i % 3 == 0 { c.to_ascii_uppercase() } else { c }).collect();
            assert_eq!(name(mixed.as_bytes()).unwrap(), k);
            // One byte off anywhere: another name (or none), never this one.
            for i in 0..k.len() {
                for other in [b'_', b'\r', b'.', b'0', b'-', b'x', b'm', b'@', b'`', b'{'] {
                    let mut raw = k.as_bytes().to_vec();
                    if raw[i].eq_ignore_ascii_case(&other) {
                        continue;
                    }
                    raw[i] = other;
                    assert!(!same_name(&raw, k.as_bytes()), "{:?} taken for {k}", String::from_utf8_lossy(&raw));
                }
            }
        }
        assert_eq!(name(b"Mcp-Session-Idx").unwrap(), "mcp-session-idx");
        assert!(name(b"mcp session-id").is_err());
    }

    #[test]
    fn names_from_the_wire_are_the_shared_constants_in_any_case() {
        for raw in [
            "Mcp-Session-Id",
            "MCP-PROTOCOL-VERSION",
            "last-event-id",
            "Mcp-Method",
            "mcp-name",
            "Host",
            "content-TYPE",
            "Content-Length",
            "Accept",
            "Authorization",
            "Origin",
            "Date",
            "X-Tenant",
            "mcp-sessionid",
        ] {
            assert_eq!(name(raw.as_bytes()).unwrap(), HeaderName::from_bytes(raw.as_bytes()).unwrap(), "{raw}");
        }
        assert!(name(b"bad name").is_err() && name(b"").is_err());
    }
    use crate::jsonrpc::Payload;

    fn check(hdrs: &[(&'static str, &str)], body: &str) -> Result<(), HeaderMismatch> {
        let mut h = HeaderMap::new();
        for (k, v) in hdrs {
            h.insert(*k, v.parse().unwrap());
        }
        let p = Payload::parse(body.as_bytes()).unwrap();
        check_modern(&h, p.single().unwrap())
    }

    #[test]
    fn table() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        let read = r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a://b"}}"#;
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, bool);
        let cases: &[Case] = &[
            (&[("mcp-method", "tools/call"), ("mcp-name", "echo")], call, true),
            (&[("mcp-method", "tools/call")], call, false),
            (&[("mcp-method", "tools/call"), ("mcp-name", "other")], call, false),
            (&[("mcp-method", "tools/list"), ("mcp-name", "echo")], call, false),
            (&[("mcp-name", "echo")], call, false),
            (&[("mcp-method", "resources/read"), ("mcp-name", "a://b")], read, true),
            (&[("mcp-method", "resources/read"), ("mcp-name", "a://c")], read, false),
            (&[("mcp-method", "tools/call"), ("mcp-name", "=?base64?ZWNobw==?=")], call, true),
            (&[("mcp-method", "tools/call"), ("mcp-name", "=?base64?b3RoZXI=?=")], call, false),
            (&[("mcp-method", "tools/list")], list, true),
            (&[("mcp-method", "tools/list"), ("mcp-name", "x")], list, false),
        ];
        for (hdrs, body, ok) in cases {
            assert_eq!(check(hdrs, body).is_ok(), *ok, "{hdrs:?} {body}");
        }
    }
}
