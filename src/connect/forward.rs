//! Messages from callers in this process (`serve`, `stdio`, the modern-era caller): the engine
//! entered after its HTTP layers (Host and Origin, route, CORS), which belong to the caller's
//! own front end. A caller says what a message comes with in a `Forward` — the engine session,
//! the protocol version, its own token — never by building an HTTP request:
//!
//! - `send`: any message, served as a POST of it would be (initialize, modern, in a session);
//! - `forward`: a message parsed and checked already, in an open session (`serve`'s hot path);
//! - `listen`: the session's event stream, or with `Last-Event-ID` the rest of one;
//! - `end`: the session ends, upstream too.
//!
//! The common case — an open Streamable HTTP session on an `http://` upstream — goes direct:
//! the request head is the upstream's pre-rendered one plus what varies (`Upstream::send_direct`),
//! and an answer that is not a refusal is relayed as it comes. A refusal (400, 401, 403, 404)
//! continues exactly as `exchange` would after its send: one credential renewal and retry,
//! a lost session rebuilt. Anything else takes `exchange` itself.

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Response};
use http_body::Body as _;

use super::proxy::{Proxy, UpstreamSession};
use super::relay::Pending;
use super::streamable::{Sent, State, set_session};
use crate::error::{Error, Kind};
use crate::http::body::{self, Body, ReadError};
use crate::http::wire;
use crate::jsonrpc::Payload;
use crate::mcp::headers::{LAST_EVENT_ID, METHOD, NAME, PROTOCOL_VERSION, SESSION_ID};
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
    fn headers(&self) -> HeaderMap {
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

impl Proxy {
    /// Any message, served as a POST of it to the engine would be.
    pub async fn send(&self, to: &Forward, bytes: Bytes) -> Response<Body> {
        self.message(&to.headers(), bytes).await.unwrap_or_else(|(e, id)| wire::error(&e, id.as_deref()))
    }

    /// Sends `bytes` (parsed as `payload`, a legacy-era message) in session `to.session` and
    /// answers with what the upstream says.
    pub async fn forward(&self, to: Forward, bytes: Bytes, payload: &Payload<'_>) -> Response<Body> {
        let session = to.session.as_ref().and_then(|s| self.sessions.get(s.to_str().unwrap_or("")));
        let outcome = match session {
            None => Err(Error::new(Kind::SessionNotFound, "session not found; initialize a new session")),
            Some(session) => match &session.upstream {
                UpstreamSession::Streamable(state) if self.upstream.direct() => {
                    state.observe(payload);
                    self.direct(&to, None, &session, state, bytes, payload).await
                }
                _ => {
                    let pending = Pending::new(payload.request_ids());
                    self.in_session(&to.headers(), bytes, payload, &session, pending).await
                }
            },
        };
        outcome.unwrap_or_else(|e| wire::error(&e, payload.error_id()))
    }

    /// A POST in an open Streamable HTTP session, its head the upstream's pre-rendered one plus
    /// what varies: the session, version and credential (`to`), and the `client`'s own headers
    /// that pass the header policy (`connect`; `serve` sends none of its clients').
    pub(super) async fn direct(
        &self,
        to: &Forward,
        client: Option<&HeaderMap>,
        session: &Session<UpstreamSession>,
        state: &State,
        bytes: Bytes,
        payload: &Payload<'_>,
    ) -> Result<Response<Body>, Error> {
        let stale = state.upstream_id();
        // The credential wins over the caller's token, as in `exchange` (which drops the
        // client's `Authorization` whenever mcpgate supplies one).
        let credential = self.upstream.authorization().await?;
        let passes = client.map(|c| super::headers::Passes::of(c, self.upstream.supplies_authorization()));
        let test = |name: &http::HeaderName| passes.as_ref().is_some_and(|p| p.test(name));
        let varying = Varying {
            session: stale.as_ref(),
            version: to.version.as_ref(),
            authorization: credential.as_ref().or(to.bearer.as_ref()),
            extra: client.map(|c| (c, &test as &crate::upstream::Rule<'_>)),
        };
        let resp = self.upstream.send_direct(varying, &bytes).await?;
        if matches!(resp.status().as_u16(), 400 | 401 | 403 | 404) {
            let sent = Sent { session, state, stale, pending: Pending::new(payload.request_ids()) };
            // Boxed: rare, and it would size every direct call's future otherwise.
            return Box::pin(self.refused(resp, to, client, credential, bytes, sent)).await;
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
            let display = self.upstream.display.clone();
            let mut relay =
                super::relay::Relay::new(incoming, Some(self.upstream.timeout), stop, Pending::new(ids), display);
            if to.whole_call {
                relay = relay.bounding_the_whole();
            }
            let resp = Response::from_parts(parts, http_body_util::BodyExt::boxed_unsync(relay));
            return Ok(self.with_session(resp, None));
        }
        match resp.body().size_hint().exact() {
            Some(n) if n <= WHOLE => self.whole(resp).await,
            _ => Ok(self.relay(resp, None, None, false)),
        }
    }

    /// The event stream of session `to.session`; with `last` (a `Last-Event-ID`), the rest of
    /// the stream that event was on. Event ids a client holds are the upstream's (streams are
    /// relayed as they came), so the stream it resumes is the upstream's to replay.
    pub async fn listen(&self, to: &Forward, last: Option<HeaderValue>) -> Response<Body> {
        let mut client = to.headers();
        client.remove(CONTENT_TYPE);
        client.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(last) = last {
            client.insert(LAST_EVENT_ID, last);
        }
        self.get(&client).await.unwrap_or_else(|(e, id)| wire::error(&e, id.as_deref()))
    }

    /// Ends session `to.session`, upstream too; false when there was no such session.
    pub async fn end(&self, to: &Forward) -> bool {
        self.delete(&to.headers()).await.is_ok()
    }

    /// A short JSON answer, read here and handed on whole: most answers are one, and already
    /// arrived with their head.
    async fn whole(&self, resp: Response<ResponseBody>) -> Result<Response<Body>, Error> {
        let (mut parts, incoming) = resp.into_parts();
        let upstream = &self.upstream;
        let bytes = match tokio::time::timeout(upstream.timeout, body::read_limited(incoming, WHOLE as usize)).await {
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
        super::headers::to_client(&mut parts.headers);
        Ok(Response::from_parts(parts, body::full(bytes)))
    }

    /// A refusal of a direct request: the rest of what `exchange` does after its send.
    async fn refused(
        &self,
        resp: Response<ResponseBody>,
        to: &Forward,
        client: Option<&HeaderMap>,
        credential: Option<HeaderValue>,
        bytes: Bytes,
        sent: Sent<'_>,
    ) -> Result<Response<Body>, Error> {
        tracing::debug!(upstream = %self.upstream.display, status = resp.status().as_u16(), "a direct request was refused; going on as an exchange would");
        let client = client.cloned().unwrap_or_else(|| to.headers());
        let retry = self.upstream.may_recover(credential.as_ref()).then(|| {
            let mut h = self.upstream_headers(&client);
            set_session(&mut h, sent.stale.as_ref());
            (h, bytes.clone())
        });
        let resp = self.upstream.recover(resp, Method::POST, &self.upstream.url, retry, credential).await?;
        self.settle(resp, Method::POST, &client, bytes, sent).await
    }
}
