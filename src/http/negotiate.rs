//! What a POST to an MCP endpoint must say about its content (Streamable HTTP): a JSON body,
//! and an `Accept` that admits an answer the endpoint can give (JSON or an event stream).
//! A form post or a `text/plain` one — the kinds a web page may send without a preflight — is
//! refused before its body is read.

use http::HeaderMap;
use http::header::{ACCEPT, CONTENT_TYPE};

use crate::error::{Error, Kind};

/// Checks a POST's `Content-Type` (415) and `Accept` (406).
pub fn check_post(headers: &HeaderMap) -> Result<(), Error> {
    let content_type = headers.get(CONTENT_TYPE).map(|v| v.as_bytes());
    if !content_type.is_some_and(is_json) {
        return Err(Error::new(
            Kind::UnsupportedMediaType,
            "an MCP message is posted as Content-Type: application/json",
        ));
    }
    let mut said = false;
    for value in headers.get_all(ACCEPT) {
        said = true;
        if value.as_bytes().split(|b| *b == b',').any(admits_an_answer) {
            return Ok(());
        }
    }
    if said {
        return Err(Error::new(
            Kind::NotAcceptable,
            "Accept must admit application/json or text/event-stream (the answers an MCP endpoint gives)",
        ));
    }
    // No Accept: any answer will do (RFC 9110 §12.5.1).
    Ok(())
}

/// `application/json`, with parameters (`; charset=utf-8`) or not, in any case.
fn is_json(value: &[u8]) -> bool {
    media_type(value).eq_ignore_ascii_case(b"application/json")
}

/// One media range of `Accept`: does it admit JSON or an event stream (with a weight above 0)?
fn admits_an_answer(range: &[u8]) -> bool {
    let ty = media_type(range);
    let admits = [&b"application/json"[..], b"text/event-stream", b"application/*", b"text/*", b"*/*"]
        .iter()
        .any(|t| ty.eq_ignore_ascii_case(t));
    admits && !weight_is_zero(range)
}

fn media_type(value: &[u8]) -> &[u8] {
    let end = value.iter().position(|b| *b == b';').unwrap_or(value.len());
    super::framing::trim_ows(&value[..end])
}

/// `q=0`, `q=0.0`, `q=0.000`: "not acceptable".
fn weight_is_zero(range: &[u8]) -> bool {
    range.split(|b| *b == b';').skip(1).map(super::framing::trim_ows).any(|p| {
        let Some(q) = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q=")) else { return false };
        q.first() == Some(&b'0') && q[1..].iter().all(|b| matches!(b, b'.' | b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(content_type: Option<&str>, accept: &[&str]) -> Option<Kind> {
        let mut h = HeaderMap::new();
        if let Some(t) = content_type {
            h.insert(CONTENT_TYPE, t.parse().unwrap());
        }
        for a in accept {
            h.append(ACCEPT, a.parse().unwrap());
        }
        check_post(&h).err().map(|e| e.kind)
    }

    #[test]
    fn json_in_and_an_answer_the_endpoint_gives_out() {
        let both = ["application/json, text/event-stream"];
        assert_eq!(post(Some("application/json"), &both), None);
        assert_eq!(post(Some("Application/JSON; charset=utf-8"), &both), None);
        assert_eq!(post(Some("application/json"), &[]), None);
        assert_eq!(post(Some("application/json"), &["*/*"]), None);
        assert_eq!(post(Some("application/json"), &["text/event-stream"]), None);
        assert_eq!(post(Some("application/json"), &["text/html", "application/json;q=0.5"]), None);
        let unsupported = Some(Kind::UnsupportedMediaType);
        assert_eq!(post(None, &both), unsupported);
        assert_eq!(post(Some("text/plain"), &both), unsupported);
        assert_eq!(post(Some("application/x-www-form-urlencoded"), &both), unsupported);
        assert_eq!(post(Some("multipart/form-data; boundary=x"), &both), unsupported);
        assert_eq!(post(Some("application/jsonx"), &both), unsupported);
        let not_acceptable = Some(Kind::NotAcceptable);
        assert_eq!(post(Some("application/json"), &["text/html"]), not_acceptable);
        assert_eq!(post(Some("application/json"), &["application/json;q=0, text/event-stream; q=0.0"]), not_acceptable);
        assert_eq!(post(Some("application/json"), &["image/png"]), not_acceptable);
    }
}
