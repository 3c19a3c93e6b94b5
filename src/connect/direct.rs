//! The hot path of an open Streamable HTTP session on an `http://` upstream: a POST whose head
//! is the upstream's pre-rendered one plus what varies (`Upstream::send_direct`), its answer
//! relayed as it comes, or read whole when it is short. A refusal (400, 401, 403, 404)
//! continues exactly as `streamable::exchange` would after its send: one credential renewal
//! and retry, a lost session rebuilt.
//!
//! `Forward` — what a message comes with — is defined here, where the hot path reads it; it is
//! the in-process callers' argument (`forward`), re-exported as `connect::Forward`.

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Response};
use http_body::Body as _;

use super::headers;
use super::relay::{Line, Pending, Relay, client_response};
use super::streamable::{self, Sent, State, set_session};
use crate::error::Error;
use crate::http::body::{self, Body, ReadError};
use crate::jsonrpc::Payload;
use crate::mcp::headers::{METHOD, NAME, PROTOCOL_VERSION, SESSION_ID};
use crate::mcp::session::Session;
use crate::transport::answer::is_event_stream;
use crate::transport::http_client::ResponseBody;
use crate::upstream::Varying;

/// Answers up to this size are read whole before they are handed on (larger ones stream).
const WHOLE: u64 = 256 * 1024;

/// Where a message goes and what the caller adds to it.
#[derive(Clone, Default)]
pub struct Forward {
    /// This engine's session id (none for `initialize` and for the 2026-07-28 era).
    pub session: Option<HeaderValue>,
    /// The `MCP-Protocol-Version` the message is sent with.
    pub version: Option<HeaderValue>,
    /// The caller's own token, for a server that validates its users itself.
    pub bearer: Option<HeaderValue>,
    /// A 2026-07-28 request's `Mcp-Method` and `Mcp-Name` (they mirror its body).
    pub method: Option<HeaderValue>,
    pub name: Option<HeaderValue>,
    /// The upstream's timeout bounds a whole call (`serve`: a server's `timeout`), not each
    /// silence of its stream (`connect --timeout`).
    pub whole_call: bool,
}

impl Forward {
    /// The headers the message would have come with, had it come over HTTP: what the engine
    /// reads past its HTTP layers (it passes no other header of an in-process caller on).
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::with_capacity(6);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        let optional = [
            (SESSION_ID, &self.session),
            (PROTOCOL_VERSION, &self.version),
            (AUTHORIZATION, &self.bearer),
            (METHOD, &self.method),
            (NAME, &self.name),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                h.insert(name, v.clone());
            }
        }
        h
    }
}

/// A POST in an open Streamable HTTP session, its head the upstream's pre-rendered one plus
/// what varies: the session, version and credential (`to`), and the `client`'s own headers
/// that pass the header policy (`connect`; `serve` sends none of its clients').
pub(super) async fn post<S>(
    line: Line<'_>,
    to: &Forward,
    client: Option<&HeaderMap>,
    session: &Session<S>,
    state: &State,
    bytes: Bytes,
    payload: &Payload<'_>,
) -> Result<Response<Body>, Error> {
    let upstream = line.upstream;
    let stale = state.upstream_id();
    // The credential wins over the caller's token, as in `exchange` (which drops the
    // client's `Authorization` whenever mcpgate supplies one).
    let credential = upstream.authorization().await?;
    let passes = client.map(|c| headers::Passes::of(c, upstream.supplies_authorization()));
    let test = |name: &http::HeaderName| passes.as_ref().is_some_and(|p| p.test(name));
    let varying = Varying {
        session: stale.as_ref(),
        version: to.version.as_ref(),
        authorization: credential.as_ref().or(to.bearer.as_ref()),
        extra: client.map(|c| (c, &test as &crate::upstream::Rule<'_>)),
    };
    let resp = upstream.send_direct(varying, &bytes).await?;
    if matches!(resp.status().as_u16(), 400 | 401 | 403 | 404) {
        let sent = Sent { session, state, stale, pending: Pending::new(payload.request_ids()) };
        // Boxed: rare, and it would size every direct call's future otherwise.
        return Box::pin(refused(line, resp, to, client, credential, bytes, sent)).await;
    }
    if is_event_stream(resp.headers()) {
        // The ids are kept to answer them with errors if the stream breaks off; the stream
        // of a single request ends when the client cancels it.
        let ids = payload.request_ids();
        let stop = match ids.as_slice() {
            [id] => Some(state.watch(id)),
            _ => None,
        };
        let (parts, incoming) = resp.into_parts();
        let display = upstream.display.clone();
        let mut relay = Relay::new(incoming, Some(upstream.timeout), stop, Pending::new(ids), display);
        if to.whole_call {
            relay = relay.bounding_the_whole();
        }
        let resp = Response::from_parts(parts, http_body_util::BodyExt::boxed_unsync(relay));
        return Ok(client_response(resp, None));
    }
    match resp.body().size_hint().exact() {
        Some(n) if n <= WHOLE => whole(line, resp).await,
        _ => Ok(line.relay(resp, None, None, false)),
    }
}

/// A short JSON answer, read here and handed on whole: most answers are one, and already
/// arrived with their head.
async fn whole(line: Line<'_>, resp: Response<ResponseBody>) -> Result<Response<Body>, Error> {
    let (mut parts, incoming) = resp.into_parts();
    let upstream = line.upstream;
    // Pinned where it is built (see `Upstream::send_direct`).
    let read = body::read_limited(incoming, WHOLE as usize);
    tokio::pin!(read);
    let bytes = match tokio::time::timeout(upstream.timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let why = match e {
                ReadError::TooLarge => "it was longer than it said".to_owned(),
                ReadError::Broken(e) => e,
            };
            return Err(Error::unreachable(&upstream.display, format!("the answer broke off: {why}")));
        }
        Err(_) => return Err(Error::timeout(&upstream.display, upstream.timeout)),
    };
    headers::to_client(&mut parts.headers);
    Ok(Response::from_parts(parts, body::full(bytes)))
}

/// A refusal of a direct request: the rest of what `exchange` does after its send.
async fn refused<S>(
    line: Line<'_>,
    resp: Response<ResponseBody>,
    to: &Forward,
    client: Option<&HeaderMap>,
    credential: Option<HeaderValue>,
    bytes: Bytes,
    sent: Sent<'_, S>,
) -> Result<Response<Body>, Error> {
    let upstream = line.upstream;
    tracing::debug!(upstream = %upstream.display, status = resp.status().as_u16(), "a direct request was refused; going on as an exchange would");
    let client = client.cloned().unwrap_or_else(|| to.headers());
    let retry = upstream.may_recover(credential.as_ref()).then(|| {
        let mut h = line.upstream_headers(&client);
        set_session(&mut h, sent.stale.as_ref());
        (h, bytes.clone())
    });
    let resp = upstream.recover(resp, Method::POST, &upstream.url, retry, credential).await?;
    streamable::settle(line, resp, Method::POST, &client, bytes, sent).await
}
