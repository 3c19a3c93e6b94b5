//! `connect` in front of a legacy HTTP+SSE upstream (2024-11-05): each client session gets one
//! upstream event stream (a `Link`), and the messages arriving on it are routed to the client
//! stream that waits for them:
//! - a response → the POST stream of the request it answers;
//! - a progress notification → the POST stream of the request that carries its token;
//! - anything else (server→client requests, other notifications) → the client's GET stream,
//!   else an open POST stream, else kept until a GET stream opens.
//!
//! Every one of those is a bounded queue (`mcp::queue`: logs and progress give way first,
//! responses never; while no GET stream is open, only what must not be lost is kept), and a
//! client stream takes from its queue 16 events ahead of the client. So an upstream flooding a
//! client that does not read costs a bounded amount, and the upstream's event stream is read
//! on (one slow client of a session does not hold up the answers to its other requests).
//!
//! A lost stream (the upstream restarted) is reopened and the session re-initialized with the
//! client's original `initialize` on the next request.
//!
//! The engine (`proxy`) calls `initialize`, `post` and `get` with the upstream and keeps the
//! `State` in its session table; nothing here knows the engine or its sessions.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::relay::Unanswered;
use crate::error::{Error, Kind};
use crate::http::body::{self, Body, BoxError};
use crate::jsonrpc::{self, Kind as MsgKind, Payload};
use crate::mcp::queue::{self, Class};
use crate::transport::legacy_sse::Link;
use crate::transport::sse;
use crate::upstream::Upstream;

type Sender = queue::Sender<Bytes>;
type Feed = queue::Receiver<Bytes>;

/// Messages read from the upstream's event stream ahead of routing them (routing never waits).
const LINK_AHEAD: usize = 64;
/// Events a client stream's body holds ahead of the client reading them.
const STREAM_AHEAD: usize = 16;

#[derive(Default)]
pub struct State {
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
    routes: Arc<Mutex<Routes>>,
}

struct Routes {
    waiting: HashMap<String, Sender>,
    progress: HashMap<String, Sender>,
    /// What goes to the client's GET stream, and its feed while no stream is open (taken by
    /// the stream, given back when it ends).
    stream: Sender,
    idle_feed: Option<Feed>,
}

impl Default for Routes {
    fn default() -> Routes {
        let (stream, feed) = queue::bounded(queue::SESSION);
        feed.listen(false);
        Routes { waiting: HashMap::new(), progress: HashMap::new(), stream, idle_feed: Some(feed) }
    }
}

impl Routes {
    fn deliver(&mut self, msg: Bytes) {
        let target = match Payload::parse(&msg) {
            Ok(Payload::Single(m)) => match m.kind() {
                MsgKind::Response => m.id.and_then(|id| self.waiting.remove(id.get())),
                MsgKind::Notification if m.method() == Some("notifications/progress") => {
                    m.progress_token().and_then(|t| self.progress.get(&t).cloned())
                }
                _ => None,
            },
            _ => None,
        };
        let class = Class::of_raw(&msg, "");
        let to = |tx: &Sender| tx.push_as(class.clone(), || msg.clone());
        if target.as_ref().is_some_and(to) {
            return;
        }
        let stream_open = self.idle_feed.is_none();
        if stream_open && to(&self.stream) {
            return;
        }
        if let Some(tx) = self.waiting.values().next()
            && to(tx)
        {
            return;
        }
        // Kept for a GET stream to come, as far as the queue keeps anything nobody listens to.
        if !stream_open {
            to(&self.stream);
        }
    }

    /// Answers every waiting request with an error (the upstream stream is gone).
    fn fail_all(&mut self, message: &str) {
        for (id, tx) in self.waiting.drain() {
            let raw = RawValue::from_string(id).ok();
            tx.push(crate::http::wire::message(&Error::new(Kind::UpstreamUnreachable, message), raw.as_deref()));
        }
    }
}

/// Carries a queue's messages into a channel a body polls, `STREAM_AHEAD` at a time: while the
/// client does not read, the carrier waits and the queue gives way as its policy says. `done`
/// gets the feed back when the body is gone.
fn carry(mut feed: Feed, done: impl FnOnce(Feed) + Send + 'static) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(STREAM_AHEAD);
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                m = feed.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                () = tx.closed() => break,
            };
            if tx.send(msg).await.is_err() {
                break;
            }
        }
        done(feed);
    });
    rx
}

fn lock(routes: &Mutex<Routes>) -> std::sync::MutexGuard<'_, Routes> {
    routes.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes a request's routes when its stream ends, however it ends.
struct Registration {
    routes: Arc<Mutex<Routes>>,
    ids: Vec<String>,
    tokens: Vec<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut r = lock(&self.routes);
        for id in &self.ids {
            r.waiting.remove(id);
        }
        for t in &self.tokens {
            r.progress.remove(t);
        }
    }
}

impl State {
    fn register(&self, ids: Vec<String>, tokens: Vec<String>) -> (Registration, mpsc::Receiver<Bytes>) {
        let (tx, feed) = queue::bounded(queue::CALL);
        let mut r = lock(&self.routes);
        for id in &ids {
            r.waiting.insert(id.clone(), tx.clone());
        }
        for t in &tokens {
            r.progress.insert(t.clone(), tx.clone());
        }
        drop(r);
        (Registration { routes: self.routes.clone(), ids, tokens }, carry(feed, drop))
    }

    /// The live link, (re)opened if needed. A link that was lost is re-initialized by
    /// replaying `initialize` before anything else is sent on the new one.
    async fn link(&self, up: &Upstream, initialize: &Bytes) -> Result<Arc<Link>, Error> {
        let mut current = self.link.lock().await;
        if let Some(l) = current.as_ref().filter(|l| l.is_alive()) {
            return Ok(l.clone());
        }
        let was_open = current.is_some();
        let (tx, rx) = mpsc::channel(LINK_AHEAD);
        // Routing first: the link hands over what came with its endpoint event as it opens.
        tokio::spawn(route(rx, self.routes.clone(), up.display.to_string()));
        let link = Arc::new(Link::open(up, tx).await?);
        if was_open {
            tracing::info!(upstream = %up.display, "upstream event stream lost; re-initializing the session");
            self.ask(up, &link, initialize.clone()).await?;
            link.post(up, jsonrpc::notification("notifications/initialized")).await?;
        }
        *current = Some(link.clone());
        Ok(link)
    }

    /// Sends one request and waits for its answer.
    async fn ask(&self, up: &Upstream, link: &Link, request: Bytes) -> Result<Bytes, Error> {
        let id = Payload::parse(&request)
            .ok()
            .and_then(|p| p.single().and_then(|m| m.id.map(|i| i.get().to_owned())))
            .ok_or_else(|| Error::new(Kind::BadRequest, "a request needs an id"))?;
        let (_registration, mut rx) = self.register(vec![id], vec![]);
        link.post(up, request).await?;
        match tokio::time::timeout(up.timeout, rx.recv()).await {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => Err(Error::unreachable(&up.display, "the event stream ended before the answer")),
            Err(_) => Err(Error::timeout(&up.display, up.timeout)),
        }
    }

    pub async fn close(&self) {
        self.link.lock().await.take();
        lock(&self.routes).fail_all("the session ended");
    }
}

async fn route(mut rx: mpsc::Receiver<Bytes>, routes: Arc<Mutex<Routes>>, display: String) {
    while let Some(msg) = rx.recv().await {
        lock(&routes).deliver(msg);
    }
    lock(&routes).fail_all(&format!("the connection to upstream {display} was lost before it answered"));
}

/// `initialize` to a legacy upstream: its event stream opened, the request asked. The state of
/// the session to keep (the engine makes the client's session of it), and the answer.
pub(super) async fn initialize(up: &Upstream, body: &Bytes) -> Result<(State, Bytes), Error> {
    let state = State::default();
    let link = state.link(up, body).await?;
    let answer = state.ask(up, &link, body.clone()).await?;
    Ok((state, answer))
}

/// The client's answer to its `initialize`, once its session (`session`, our id) is made.
pub(super) fn initialized(answer: Bytes, session: &HeaderValue) -> Response<Body> {
    let mut resp = Response::new(body::full(answer));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(crate::mcp::headers::SESSION_ID, session.clone());
    resp
}

/// A POST in a session with a legacy upstream: requests get an SSE stream of their related
/// messages ending with their answers; notifications and responses get 202. `initialize` is
/// the client's original one, replayed should the upstream's stream have been lost.
pub(super) async fn post(
    up: &Upstream,
    initialize: &Bytes,
    state: &State,
    payload: &Payload<'_>,
    bytes: Bytes,
) -> Result<Response<Body>, Error> {
    let link = state.link(up, initialize).await?;
    let ids = payload.request_ids();
    if ids.is_empty() {
        link.post(up, bytes).await?;
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::ACCEPTED;
        return Ok(resp);
    }
    let tokens = payload.messages().iter().filter_map(|m| m.progress_token()).collect();
    let (registration, rx) = state.register(ids.clone(), tokens);
    link.post(up, bytes).await?;
    let stream = PostStream {
        rx,
        outstanding: Unanswered::new(ids),
        _registration: registration,
        idle: up.timeout,
        deadline: Box::pin(tokio::time::sleep(up.timeout)),
        done: false,
    };
    Ok(sse_response(stream.boxed_unsync()))
}

/// The client's GET stream for a session with a legacy upstream, open until the client leaves
/// or `shutdown`.
pub(super) async fn get(
    up: &Upstream,
    initialize: &Bytes,
    state: &State,
    shutdown: &CancellationToken,
) -> Result<Response<Body>, Error> {
    state.link(up, initialize).await?;
    let Some(feed) = lock(&state.routes).idle_feed.take() else {
        return Err(Error::new(Kind::Conflict, "this session's event stream is open already"));
    };
    feed.listen(true);
    let routes = state.routes.clone();
    let rx = carry(feed, move |feed| {
        feed.listen(false);
        lock(&routes).idle_feed = Some(feed);
    });
    let stream = GetStream { rx, stop: Box::pin(shutdown.clone().cancelled_owned()) };
    Ok(sse_response(stream.boxed_unsync()))
}

fn sse_response(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The answer stream of one POST: ends once every request in it is answered.
struct PostStream {
    rx: mpsc::Receiver<Bytes>,
    outstanding: Unanswered,
    _registration: Registration,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    done: bool,
}

impl HttpBody for PostStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(msg)) => {
                this.outstanding.observe(&msg);
                this.done = this.outstanding.is_empty();
                let idle = this.idle;
                this.deadline.as_mut().reset(Instant::now() + idle);
                return Poll::Ready(Some(Ok(Frame::data(sse::encode(&msg, None)))));
            }
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.done = true;
            let message = format!("the upstream sent nothing for {:?}; giving up on this request", this.idle);
            tracing::warn!("{message}");
            let events = this.outstanding.error_events(Kind::UpstreamTimeout, &message).unwrap_or_default();
            return Poll::Ready(Some(Ok(Frame::data(events))));
        }
        Poll::Pending
    }
}

/// The client's GET stream: open until the client leaves or the gateway shuts down.
struct GetStream {
    rx: mpsc::Receiver<Bytes>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl HttpBody for GetStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(msg)) => Poll::Ready(Some(Ok(Frame::data(sse::encode(&msg, None))))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
