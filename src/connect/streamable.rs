//! `connect` in front of a Streamable HTTP upstream: requests are forwarded as they are, with
//! the gateway's session id swapped for the upstream's. An upstream that forgot its session
//! (it restarted) gets the session rebuilt behind the client's back (`rebuild`), and the
//! request again.
//!
//! The engine (`proxy`) calls these functions with its `Line` and the session's `State`, and
//! keeps the sessions itself: `initialize` says what the upstream made of the client's, and the
//! engine makes the client's session. The hot path of an open session is `direct`'s.

use crate::transport::http_client::ResponseBody;
use bytes::Bytes;
use http::header::{ACCEPT, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};

use super::rebuild::{self, UpstreamId};
use super::relay::{Line, Pending, client_response};
use crate::error::Error;
use crate::http::body::{self, Body};
use crate::mcp::headers::{LAST_EVENT_ID, SESSION_ID};
use crate::mcp::session::Session;
use crate::upstream::Upstream;

/// The upstream's side of a session.
pub struct State {
    /// The upstream's session id, and what rebuilds it.
    upstream_id: UpstreamId,
    /// The streams relayed for requests, by the request's id: a client's cancellation of one
    /// ends its stream (the server need not answer a cancelled request, and most do not). The
    /// last `WATCHED` only: a stream that ended long ago has nothing to end.
    watched: std::sync::Mutex<std::collections::VecDeque<(Box<str>, tokio_util::sync::CancellationToken)>>,
}

/// Streams per session a cancellation can end.
const WATCHED: usize = 64;

impl State {
    pub fn new(upstream_id: Option<HeaderValue>) -> Self {
        State { upstream_id: UpstreamId::new(upstream_id), watched: Default::default() }
    }

    /// What ends the stream relayed for the request `id` (its raw JSON text) when the client
    /// cancels it.
    pub(super) fn watch(&self, id: &str) -> tokio_util::sync::WaitForCancellationFutureOwned {
        let token = tokio_util::sync::CancellationToken::new();
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        if watched.len() == WATCHED {
            watched.pop_front();
        }
        watched.push_back((id.into(), token.clone()));
        token.cancelled_owned()
    }

    /// A message the client sends in this session: a `notifications/cancelled` ends the stream
    /// of the request it names.
    pub(super) fn observe(&self, payload: &crate::jsonrpc::Payload<'_>) {
        #[derive(serde::Deserialize)]
        struct Cancelled<'a> {
            #[serde(borrow, rename = "requestId")]
            id: &'a serde_json::value::RawValue,
        }
        for m in payload.messages() {
            if m.method() != Some("notifications/cancelled") {
                continue;
            }
            let Some(c) = m.params.and_then(|p| serde_json::from_str::<Cancelled>(p.get()).ok()) else { continue };
            let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = watched.iter().position(|(id, _)| **id == *c.id.get())
                && let Some((_, token)) = watched.remove(i)
            {
                token.cancel();
            }
        }
    }

    pub fn upstream_id(&self) -> Option<HeaderValue> {
        self.upstream_id.get()
    }
}

/// What the upstream made of a client's `initialize`.
pub(super) enum Initialized {
    /// 2xx: the upstream opened a session (`id`: its session id, if it gave one); the engine
    /// makes the client's and relays `resp`.
    Opened { resp: Response<ResponseBody>, id: Option<HeaderValue> },
    /// Not 2xx: no session was made; the engine decides whether to try HTTP+SSE or relay this.
    Refused(Response<ResponseBody>),
}

/// Forwards `initialize`.
pub(super) async fn initialize(line: Line<'_>, client: &HeaderMap, body: Bytes) -> Result<Initialized, Error> {
    let up = line.upstream;
    let resp = up.send(Method::POST, &up.url, line.upstream_headers(client), body).await?;
    if !resp.status().is_success() {
        return Ok(Initialized::Refused(resp));
    }
    let id = resp.headers().get(SESSION_ID).cloned();
    Ok(Initialized::Opened { resp, id })
}

/// Forwards a request within a session, rebuilding the upstream session if it was lost.
pub(super) async fn exchange<S>(
    line: Line<'_>,
    method: Method,
    client: &HeaderMap,
    body: Bytes,
    session: &Session<S>,
    state: &State,
    pending: Option<Pending>,
) -> Result<Response<Body>, Error> {
    let mut hdrs = line.upstream_headers(client);
    let stale = state.upstream_id();
    set_session(&mut hdrs, stale.as_ref());
    let resp = line.upstream.send(method.clone(), &line.upstream.url, hdrs, body.clone()).await?;
    settle(line, resp, method, client, body, Sent { session, state, stale, pending }).await
}

/// What follows the upstream's first answer `resp` to an exchange: an upstream that lost
/// the session gets it rebuilt and the request again; otherwise the answer is relayed.
pub(super) async fn settle<S>(
    line: Line<'_>,
    resp: Response<ResponseBody>,
    method: Method,
    client: &HeaderMap,
    body: Bytes,
    sent: Sent<'_, S>,
) -> Result<Response<Body>, Error> {
    let Sent { session, state, stale, pending } = sent;
    let up = line.upstream;
    let open_ended = method == Method::GET;
    if stale.is_none() {
        return Ok(line.relay(resp, None, pending, open_ended));
    }
    match lost_session(resp, up.timeout).await {
        Verdict::Kept(resp) => return Ok(line.relay(resp, None, pending, open_ended)),
        Verdict::Answered(resp) => return Ok(client_response(resp, None)),
        Verdict::Lost => {}
    }
    tracing::info!(session = session.label(), "upstream lost the session; re-initializing it");
    // Boxed: rare, and large enough to weigh on every exchange's future otherwise.
    let fresh = Box::pin(rebuild::rebuild(up, session, &state.upstream_id, stale.as_ref(), client)).await?;
    let mut hdrs = line.upstream_headers(client);
    set_session(&mut hdrs, fresh.as_ref());
    // Event ids of the lost session mean nothing to the new one.
    hdrs.remove(LAST_EVENT_ID);
    let resp = up.send(method, &up.url, hdrs, body).await?;
    Ok(line.relay(resp, None, pending, open_ended))
}

/// Ends the session (`label`, for logs) upstream, best effort.
pub(super) async fn end(up: &Upstream, state: &State, label: &str) {
    let Some(id) = state.upstream_id() else { return };
    delete(up, id, label).await;
}

/// Ends upstream session `id` (DELETE), best effort.
pub(super) async fn delete(up: &Upstream, id: HeaderValue, label: &str) {
    let mut hdrs = HeaderMap::new();
    hdrs.insert(SESSION_ID, id);
    hdrs.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
    if let Err(e) = up.send(Method::DELETE, &up.url, hdrs, Bytes::new()).await {
        tracing::debug!(session = label, "ending the upstream session failed: {e}");
    }
}

enum Verdict {
    /// Not about the session: relay as it is.
    Kept(Response<ResponseBody>),
    /// Read to decide, and not about the session: relay these bytes.
    Answered(Response<Body>),
    /// The upstream no longer knows the session.
    Lost,
}

/// Whether a response means "unknown session". The spec says 404; servers built on the SDKs'
/// examples answer 400 with a JSON-RPC error such as "No valid session ID provided", so a 400
/// whose (small) body speaks of the session counts too.
async fn lost_session(resp: Response<ResponseBody>, timeout: std::time::Duration) -> Verdict {
    match resp.status() {
        StatusCode::NOT_FOUND => Verdict::Lost,
        // Boxed: reading the body is rare, and its future would size every exchange's.
        StatusCode::BAD_REQUEST => Box::pin(says_lost_session(resp, timeout)).await,
        _ => Verdict::Kept(resp),
    }
}

/// A 400's body, read (bounded) to tell "unknown session" from any other refusal.
async fn says_lost_session(resp: Response<ResponseBody>, timeout: std::time::Duration) -> Verdict {
    let (parts, incoming) = resp.into_parts();
    let read = tokio::time::timeout(timeout, body::read_limited(incoming, 64 * 1024)).await;
    let Ok(Ok(bytes)) = read else {
        return Verdict::Answered(Response::from_parts(parts, body::empty()));
    };
    if String::from_utf8_lossy(&bytes).to_ascii_lowercase().contains("session") {
        Verdict::Lost
    } else {
        Verdict::Answered(Response::from_parts(parts, body::full(bytes)))
    }
}

/// An exchange's request as it was sent: in which session, with which upstream session id.
pub(super) struct Sent<'a, S> {
    pub session: &'a Session<S>,
    pub state: &'a State,
    pub stale: Option<HeaderValue>,
    pub pending: Option<Pending>,
}

pub(super) fn set_session(h: &mut HeaderMap, id: Option<&HeaderValue>) {
    match id {
        Some(id) => {
            h.insert(SESSION_ID, id.clone());
        }
        None => {
            h.remove(SESSION_ID);
        }
    }
}
