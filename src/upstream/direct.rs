//! The short way to an upstream: a POST whose head is rendered from parts known in advance.
//!
//! Every message proxied to a Streamable HTTP upstream is a POST to the same URL with the same
//! fixed headers; only the session, the protocol version, the credential and the body change.
//! The fixed part is rendered once, when the upstream is set up, and `send_direct` adds the
//! rest: no header map is built, filled, copied and walked again for each request. It exists
//! only where its request is the one `send` would make: an `http://` URL (our HTTP/1.1
//! client), and static headers that leave the headers it sets alone.

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, Uri};

use super::Upstream;
use crate::error::{Error, chain};
use crate::mcp::headers::{PROTOCOL_VERSION, SESSION_ID};
use crate::oauth_client::dpop::DPOP;
use crate::transport::http_client::ResponseBody;
use crate::transport::http1::{self, Wire};

/// The headers a direct request sets itself: a static header naming one keeps the upstream on
/// `send`, where the static header wins. None of them is taken from a client's headers but
/// `DPoP`: a client's proof goes with the client's `Authorization` (where `Passes` lets that
/// through), unless the request carries mcpgate's own proof.
const OWN: [HeaderName; 10] = [
    HOST,
    CONTENT_TYPE,
    ACCEPT,
    CONTENT_LENGTH,
    TRANSFER_ENCODING,
    CONNECTION,
    AUTHORIZATION,
    SESSION_ID,
    PROTOCOL_VERSION,
    DPOP,
];

/// The request line and fixed headers of a POST to `url`, if direct requests apply to it.
pub(super) fn render(url: &Uri, headers: &HeaderMap) -> Option<Box<[u8]>> {
    if url.scheme_str() != Some("http") || headers.keys().any(|k| OWN.contains(k)) {
        return None;
    }
    let host = http1::host_header(url).ok()?;
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(url.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let fixed = [
        (HOST, &host),
        (CONTENT_TYPE, &HeaderValue::from_static("application/json")),
        (ACCEPT, &HeaderValue::from_static("application/json, text/event-stream")),
    ];
    for (name, value) in fixed.iter().map(|(n, v)| (n, *v)).chain(headers) {
        line(&mut out, name, value);
    }
    Some(out.into_boxed_slice())
}

fn line(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// What a direct request adds to the fixed head.
pub struct Varying<'a> {
    pub session: Option<&'a HeaderValue>,
    pub version: Option<&'a HeaderValue>,
    pub authorization: Option<&'a HeaderValue>,
    /// The caller's other headers, with the rule that says which of them go upstream (the
    /// headers a direct request sets itself never do, a client's `DPoP` proof aside: it goes
    /// where the rule lets it, which is where the client's `Authorization` goes).
    pub extra: Option<(&'a HeaderMap, &'a Rule<'a>)>,
}

/// Which of a caller's headers go upstream.
pub type Rule<'r> = dyn Fn(&HeaderName) -> bool + Sync + 'r;

/// Whether a client's request may go direct: it asks for what the fixed head asks for (its
/// `Content-Type` and `Accept` are the ones a direct request sends).
pub fn fits(client: &HeaderMap) -> bool {
    let is = |name: HeaderName, want: &[u8]| {
        let mut all = client.get_all(name).iter();
        all.next().is_some_and(|v| v.as_bytes() == want) && all.next().is_none()
    };
    is(CONTENT_TYPE, b"application/json") && is(ACCEPT, b"application/json, text/event-stream")
}

impl Upstream {
    /// Whether `send_direct` may be used: it makes the request `send` would.
    pub fn direct(&self) -> bool {
        self.direct.is_some()
    }

    /// POSTs `body` to the upstream URL with the fixed head and `varying`, waiting for the
    /// response head as long as `send` does. The credential is the caller's (`authorization`),
    /// and so is a refusal (`recover`).
    pub async fn send_direct(&self, varying: Varying<'_>, body: &Bytes) -> Result<Response<ResponseBody>, Error> {
        let (Some(fixed), Some(authority)) = (&self.direct, self.url.authority()) else {
            return Err(Error::unreachable(&self.display, "the upstream takes no direct requests"));
        };
        let small = http1::body_in_head(body);
        let mut head = Vec::with_capacity(fixed.len() + 160 + if small { body.len() } else { 0 });
        head.extend_from_slice(fixed);
        let parts = [
            (SESSION_ID, varying.session),
            (PROTOCOL_VERSION, varying.version),
            (AUTHORIZATION, varying.authorization),
        ];
        for (name, value) in parts {
            if let Some(v) = value {
                line(&mut head, &name, v);
            }
        }
        // A DPoP-bound credential's proof of this request, made here as `send_once` makes it,
        // and written at once: only whether there was one is kept across the wait below.
        let proved = match varying.authorization.and_then(|a| self.credentials().proof(&Method::POST, &self.url, a)) {
            Some(proof) => {
                line(&mut head, &DPOP, &proof);
                true
            }
            None => false,
        };
        if let Some((client, passes)) = varying.extra {
            for (name, value) in client {
                // A client's proof goes where its token goes (`passes` drops both where mcpgate
                // supplies the credential), and never beside mcpgate's own.
                let own = if *name == DPOP { proved } else { OWN.contains(name) };
                if !own && passes(name) {
                    line(&mut head, name, value);
                }
            }
        }
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        head.extend_from_slice(b"\r\n\r\n");
        if small {
            head.extend_from_slice(body);
        }
        let wire = Wire { head: &head, body, uri: &self.url, authority: authority.clone(), head_only: false };
        // Pinned where it is built: the timeout then holds a pointer to it, and a call's future is
        // never copied into the timeout's (what an outlined `timeout` would do on every call).
        let send = self.client.send_plain(wire);
        tokio::pin!(send);
        match tokio::time::timeout(self.timeout, send).await {
            Ok(Ok(resp)) => {
                if proved {
                    self.credentials().note_nonce(&self.url, resp.headers());
                }
                Ok(resp)
            }
            Ok(Err(e)) => Err(Error::unreachable(&self.display, chain(&*e))),
            Err(_) => Err(Error::timeout(&self.display, self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_requests_only_where_they_equal_sends() {
        let url: Uri = "http://127.0.0.1:8080/mcp?tenant=a".parse().unwrap();
        let mut tenant = HeaderMap::new();
        tenant.insert("x-tenant", HeaderValue::from_static("acme"));
        let head = render(&url, &tenant).expect("rendered");
        assert_eq!(
            std::str::from_utf8(&head).unwrap(),
            "POST /mcp?tenant=a HTTP/1.1\r\nhost: 127.0.0.1:8080\r\ncontent-type: application/json\r\n\
             accept: application/json, text/event-stream\r\nx-tenant: acme\r\n"
        );
        // TLS goes through the general client; a static header the direct head sets would be
        // overridden there, not here.
        assert!(render(&"https://example.com/mcp".parse().unwrap(), &HeaderMap::new()).is_none());
        for own in ["authorization", "accept", "mcp-protocol-version", "host", "Content-Type"] {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_bytes(own.as_bytes()).unwrap(), HeaderValue::from_static("x"));
            assert!(render(&url, &h).is_none(), "{own}");
        }
        // User info never reaches the Host header.
        let head = render(&"http://u:secret@h:81/".parse().unwrap(), &HeaderMap::new()).unwrap();
        assert!(!String::from_utf8_lossy(&head).contains("secret"));
    }
}
