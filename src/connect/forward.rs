//! Messages from callers in this process (`serve`, `stdio`, the modern-era caller): the engine
//! entered after its HTTP layers (Host and Origin, route, CORS), which belong to the caller's
//! own front end. A caller says what a message comes with in a `Forward` (defined by `direct`,
//! which reads it on the hot path) — the engine session, the protocol version, its own token —
//! never by building an HTTP request:
//!
//! - `send`: any message, served as a POST of it would be (initialize, modern, in a session);
//! - `forward`: a message parsed and checked already, in an open session (`serve`'s hot path);
//! - `listen`: the session's event stream, or with `Last-Event-ID` the rest of one;
//! - `end`: the session ends, upstream too.
//!
//! The common case — an open Streamable HTTP session on an `http://` upstream — goes direct
//! (`direct::post`); anything else takes the engine's way in a session (`Proxy::in_session`).

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response};

use super::direct::{self, Forward};
use super::proxy::{Proxy, UpstreamSession};
use super::relay::Pending;
use crate::error::{Error, Kind};
use crate::http::body::Body;
use crate::http::wire;
use crate::jsonrpc::Payload;
use crate::mcp::headers::LAST_EVENT_ID;

impl Proxy {
    /// A message with the headers an HTTP client of its revision would send (a 2026-07-28
    /// client on stdio), answered as a POST of it is.
    pub async fn message_as(&self, headers: &HeaderMap, bytes: Bytes) -> Response<Body> {
        self.message(headers, bytes).await.unwrap_or_else(|(e, id)| wire::error(&e, id.as_deref()))
    }

    /// Any message, served as a POST of it to the engine would be.
    pub async fn send(&self, to: &Forward, bytes: Bytes) -> Response<Body> {
        self.send_with(to, None, bytes).await
    }

    /// `send`, with the caller's own headers a message carries as it came (a 2026-07-28
    /// request's `Mcp-Param-*`, which mirror arguments of its tool: SEP-2243).
    pub async fn send_with(&self, to: &Forward, extra: Option<&HeaderMap>, bytes: Bytes) -> Response<Body> {
        let mut headers = to.headers();
        if let Some(extra) = extra {
            headers.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self.message(&headers, bytes).await.unwrap_or_else(|(e, id)| wire::error(&e, id.as_deref()))
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
                    direct::post(self.line(), &to, None, &session, state, bytes, payload).await
                }
                _ => {
                    let pending = Pending::new(payload.request_ids());
                    self.in_session(&to.headers(), bytes, payload, &session, pending).await
                }
            },
        };
        outcome.unwrap_or_else(|e| wire::error(&e, payload.error_id()))
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
}
