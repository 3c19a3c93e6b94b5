//! A client's request head, parsed in place and checked the way nginx checks it: whatever is
//! ambiguous about where the request ends or whom it is for is refused here, with its status,
//! before any handler sees it.

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, Version};

use super::framing::{self, Coding};

/// A request head larger than this is refused (431), as hyper's and nginx's default limits do.
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// What an HTTP/2 client with prior knowledge sends first.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How the request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    Length(u64),
    Chunked,
}

/// A request head as parsed: the request without its body, and what the connection must do
/// about it.
#[derive(Debug)]
pub struct Head {
    pub request: Request<()>,
    pub body: BodyFraming,
    /// The client asked to close the connection after this request (or is HTTP/1.0 without
    /// `Connection: keep-alive`).
    pub close: bool,
    /// `Expect: 100-continue`: the client waits for a word before it sends the body.
    pub expects_continue: bool,
}

// One per request, never stored: boxing `Head` would cost an allocation each time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    Head(Head),
    /// Not complete yet.
    Partial,
    /// Refused with this status; the connection closes after it.
    Refused(StatusCode, &'static str),
    /// An HTTP/2 client with prior knowledge (h2c): for hyper.
    H2c,
}

/// Parses the request head at the start of `buf`; on success its bytes are split off, and the
/// header values point into them.
pub fn parse(buf: &mut BytesMut) -> Parsed {
    let preface = buf.len().min(H2_PREFACE.len());
    if buf[..preface] == H2_PREFACE[..preface] && !buf.is_empty() {
        return if preface == H2_PREFACE.len() { Parsed::H2c } else { Parsed::Partial };
    }
    // Uninitialised slots: zeroing a hundred of them cost more than parsing the head.
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Parsed::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "the request head is too large");
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "too many header fields");
        }
        Err(httparse::Error::Version) => {
            return Parsed::Refused(StatusCode::HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.0 and HTTP/1.1 are served");
        }
        Err(_) => return Parsed::Refused(StatusCode::BAD_REQUEST, "the request head is malformed"),
    };
    if len > MAX_HEAD {
        return Parsed::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "the request head is too large");
    }
    let http10 = req.version == Some(0);
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Parsed::Refused(StatusCode::BAD_REQUEST, "the request line is malformed");
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Refused(StatusCode::BAD_REQUEST, "the method is malformed");
    };

    // The framing and routing headers, checked before anything is consumed.
    let mut length: Option<u64> = None;
    let mut coding: Option<Coding> = None;
    let mut host: Option<&[u8]> = None;
    let (mut close, mut keep_alive, mut expects_continue) = (false, false, false);
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str().as_bytes()) {
            // nginx refuses a repeated Content-Length even when the values agree.
            if length.is_some() {
                return Parsed::Refused(StatusCode::BAD_REQUEST, "Content-Length is repeated");
            }
            let Some(n) = framing::content_length(h.value) else {
                return Parsed::Refused(StatusCode::BAD_REQUEST, "Content-Length is not a number");
            };
            length = Some(n);
        } else if name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str().as_bytes()) {
            if coding.is_some() {
                return Parsed::Refused(StatusCode::BAD_REQUEST, "Transfer-Encoding is repeated");
            }
            coding = Some(framing::request_coding(h.value));
        } else if name.eq_ignore_ascii_case(HOST.as_str().as_bytes()) {
            // RFC 9112 §3.2: a request with more than one Host is invalid.
            if host.is_some() {
                return Parsed::Refused(StatusCode::BAD_REQUEST, "Host is repeated");
            }
            host = Some(h.value);
        } else if name.eq_ignore_ascii_case(CONNECTION.as_str().as_bytes()) {
            for token in h.value.split(|b| *b == b',').map(framing::trim_ows) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(EXPECT.as_str().as_bytes()) {
            if !framing::trim_ows(h.value).eq_ignore_ascii_case(b"100-continue") {
                return Parsed::Refused(StatusCode::EXPECTATION_FAILED, "only Expect: 100-continue is understood");
            }
            expects_continue = true;
        }
    }
    let body = match (coding, length) {
        (Some(_), Some(_)) => {
            return Parsed::Refused(StatusCode::BAD_REQUEST, "Content-Length and Transfer-Encoding together");
        }
        (Some(_), None) if http10 => {
            return Parsed::Refused(StatusCode::BAD_REQUEST, "Transfer-Encoding in an HTTP/1.0 request");
        }
        (Some(Coding::Other), None) => {
            return Parsed::Refused(StatusCode::NOT_IMPLEMENTED, "only Transfer-Encoding: chunked is understood");
        }
        (Some(Coding::Chunked), None) => BodyFraming::Chunked,
        (None, n) => BodyFraming::Length(n.unwrap_or(0)),
    };
    if host.is_none() && !http10 {
        return Parsed::Refused(StatusCode::BAD_REQUEST, "an HTTP/1.1 request needs a Host");
    }
    if host.is_some_and(|h| !valid_host(framing::trim_ows(h))) {
        return Parsed::Refused(StatusCode::BAD_REQUEST, "Host is malformed");
    }

    // Where the path and each header sit in `buf`, so that they can be taken as slices of the
    // head once it is split off (its memory does not move). Within the head, so under 64 KiB:
    // u16 keeps this array small to clear.
    let start = buf.as_ptr() as usize;
    let span = |s: &[u8]| ((s.as_ptr() as usize - start) as u16, s.len() as u16);
    let mut spans = [((0u16, 0u16), (0u16, 0u16)); MAX_HEADERS];
    let count = req.headers.len();
    for (slot, h) in spans.iter_mut().zip(req.headers.iter()) {
        *slot = (span(h.name.as_bytes()), span(h.value));
    }
    let path = span(path.as_bytes());
    let host = host.map(framing::trim_ows).map(span);
    let head = buf.split_to(len).freeze();
    let slice = |(at, n): (u16, u16)| head.slice(usize::from(at)..usize::from(at) + usize::from(n));
    let uri = match target(slice(path), &method, host.map(slice)) {
        Ok(uri) => uri,
        Err(why) => return Parsed::Refused(StatusCode::BAD_REQUEST, why),
    };
    let mut headers = HeaderMap::with_capacity(count);
    for &(name, value) in &spans[..count] {
        let name = crate::mcp::headers::name(&slice(name));
        // The framing is this codec's (the body comes whole); the handler gets the rest.
        if name.as_ref().is_ok_and(|n| *n == CONTENT_LENGTH || *n == TRANSFER_ENCODING) {
            continue;
        }
        match (name, HeaderValue::from_maybe_shared(slice(value))) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => return Parsed::Refused(StatusCode::BAD_REQUEST, "a header field is malformed"),
        }
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = if http10 { Version::HTTP_10 } else { Version::HTTP_11 };
    *request.headers_mut() = headers;
    let close = close || (http10 && !keep_alive);
    Parsed::Head(Head { request, body, close, expects_continue })
}

/// The request target (RFC 9112 §3.2): origin-form (`/path?query`), or absolute-form whose
/// authority must be the `Host` (a proxy-style request must not name one host to the Host check
/// and another to whoever reads the target). `*` and authority-form are for OPTIONS and
/// CONNECT, which the gateway does not serve.
fn target(raw: Bytes, method: &Method, host: Option<Bytes>) -> Result<Uri, &'static str> {
    if raw.first() == Some(&b'/') {
        return Uri::from_maybe_shared(raw).map_err(|_| "the request target is malformed");
    }
    if raw[..] == b"*"[..] || *method == Method::CONNECT {
        return Err("the request target must be a path");
    }
    let uri = Uri::from_maybe_shared(raw).map_err(|_| "the request target is malformed")?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err("the request target must be a path");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err("the request target's scheme is not http");
    }
    if authority.as_str().contains('@') {
        return Err("the request target carries user info");
    }
    match host {
        Some(h) if authority.as_str().as_bytes().eq_ignore_ascii_case(&h) => Ok(uri),
        Some(_) => Err("the request target names another host than Host"),
        None => Err("an absolute request target needs a Host"),
    }
}

/// A `Host` value: a reg-name, IPv4 or `[IPv6]`, with an optional port (RFC 9110 §7.2); no
/// user info, no path, no spaces. Empty is allowed (RFC 9112 §3.2: a target with no authority).
fn valid_host(h: &[u8]) -> bool {
    let (name, port) = match h.iter().rposition(|b| *b == b':') {
        Some(i) if !h.ends_with(b"]") => (&h[..i], Some(&h[i + 1..])),
        _ => (h, None),
    };
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    let name_ok = match name {
        [b'[', inner @ .., b']'] => inner.iter().all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')),
        _ => name.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%')),
    };
    port_ok && name_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(wire: &str) -> Parsed {
        parse(&mut BytesMut::from(wire))
    }

    fn status(wire: &str) -> Option<StatusCode> {
        match parsed(wire) {
            Parsed::Refused(s, _) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn a_parsed_head_keeps_its_headers_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            "POST /mcp?x=1 HTTP/1.1\r\nHost: a:1\r\nMcp-Session-Id: s1\r\nConnection: close\r\ncontent-length: 2\r\n\r\n{}",
        );
        let Parsed::Head(head) = parse(&mut buf) else { panic!("not parsed") };
        assert_eq!(&buf[..], b"{}");
        assert_eq!(head.body, BodyFraming::Length(2));
        assert!(head.close);
        assert_eq!(head.request.method(), Method::POST);
        assert_eq!(head.request.uri().path(), "/mcp");
        assert_eq!(head.request.uri().query(), Some("x=1"));
        assert_eq!(head.request.headers()["mcp-session-id"], "s1");
        assert_eq!(head.request.headers()["host"], "a:1");
        // The length was the codec's to act on; the handler gets the body whole.
        assert!(!head.request.headers().contains_key("content-length"));
    }

    #[test]
    fn framing_and_routing_ambiguities_are_refused() {
        let bad = StatusCode::BAD_REQUEST;
        let table: &[(&str, Option<StatusCode>)] = &[
            ("POST /mcp HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\n{}", None),
            ("GET /mcp HTTP/1.1\r\nhost: a\r\n\r\n", None),
            ("GET /mcp HTTP/1.0\r\n\r\n", None),
            ("POST /mcp HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n", None),
            ("POST /mcp HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n", None),
            ("GET http://a/mcp HTTP/1.1\r\nhost: a\r\n\r\n", None),
            ("POST /mcp HTTP/1.1\r\nhost: a\r\ncontent-length: +2\r\n\r\n{}", Some(bad)),
            ("POST /mcp HTTP/1.1\r\nhost: a\r\ncontent-length: \u{a0}2\r\n\r\n{}", Some(bad)),
            ("POST /mcp HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n{}", Some(bad)),
            ("POST /mcp HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}", Some(bad)),
            ("POST /mcp HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n", Some(bad)),
            (
                "POST /mcp HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                Some(StatusCode::NOT_IMPLEMENTED),
            ),
            ("POST /mcp HTTP/1.1\r\nhost: a\r\ntransfer-encoding: xchunked\r\n\r\n", Some(StatusCode::NOT_IMPLEMENTED)),
            ("POST /mcp HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n", Some(bad)),
            ("GET /mcp HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n", Some(bad)),
            ("GET /mcp HTTP/1.1\r\n\r\n", Some(bad)),
            ("GET /mcp HTTP/1.1\r\nhost: a b\r\n\r\n", Some(bad)),
            ("GET /mcp HTTP/1.1\r\nhost: u@a\r\n\r\n", Some(bad)),
            ("GET http://b/mcp HTTP/1.1\r\nhost: a\r\n\r\n", Some(bad)),
            ("GET http://u@a/mcp HTTP/1.1\r\nhost: a\r\n\r\n", Some(bad)),
            ("GET * HTTP/1.1\r\nhost: a\r\n\r\n", Some(bad)),
            ("OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n", Some(bad)),
            ("CONNECT a:443 HTTP/1.1\r\nhost: a\r\n\r\n", Some(bad)),
            ("GET mcp HTTP/1.1\r\nhost: a\r\n\r\n", Some(bad)),
            ("GET /mcp HTTP/1.1\r\nhost: a\r\nx: a\r\n b\r\n\r\n", Some(bad)), // obs-fold
            ("GET /mcp HTTP/1.1\r\nhost: a\r\nx: a\0b\r\n\r\n", Some(bad)),
            ("GET /mcp HTTP/1.1\r\nhost: a\r\ncontent-length : 1\r\n\r\n", Some(bad)),
            ("GET /mcp HTTP/1.1\r\nhost: a\r\nexpect: 200-ok\r\n\r\n", Some(StatusCode::EXPECTATION_FAILED)),
            ("GET /mcp HTTP/2.0\r\nhost: a\r\n\r\n", Some(StatusCode::HTTP_VERSION_NOT_SUPPORTED)),
            ("NOT HTTP\r\n\r\n", Some(bad)),
        ];
        for (wire, want) in table {
            assert_eq!(status(wire), *want, "{wire:?}");
        }
    }

    #[test]
    fn connection_persistence_follows_the_version() {
        let close = |w: &str| match parsed(w) {
            Parsed::Head(h) => h.close,
            other => panic!("{other:?}"),
        };
        assert!(!close("GET / HTTP/1.1\r\nhost: a\r\n\r\n"));
        assert!(close("GET / HTTP/1.1\r\nhost: a\r\nconnection: keep-alive, close\r\n\r\n"));
        assert!(close("GET / HTTP/1.0\r\n\r\n"));
        assert!(!close("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn the_h2c_preface_is_recognised_whole_or_awaited() {
        assert!(matches!(parsed("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Parsed::H2c));
        assert!(matches!(parsed("PRI * HTTP/2"), Parsed::Partial));
        assert!(matches!(parsed("POST /mcp HTTP/1.1\r\nhost: a\r\ncontent-le"), Parsed::Partial));
    }
}
