//! Relaying an upstream response body to the client as it arrives (no buffering), with the
//! guarantees a client needs to never hang:
//! - a POST's response stalls for longer than the timeout → the stream ends, and every request
//!   of that POST still unanswered gets a JSON-RPC error event;
//! - the upstream connection breaks mid-stream → the same error events, naming the cause;
//! - a GET stream (open-ended by design) ends when the gateway shuts down.
//!
//! A stream the upstream closes cleanly is passed on as closed: since 2025-11-25 a server may
//! close a stream on purpose and let the client resume it with `Last-Event-ID`.
//!
//! `Line` is what the transports relay with (the upstream and the shutdown, not the engine):
//! the client's headers as they go upstream, and the upstream's answer as it comes back.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::{Error, Kind};
use crate::http::wire;
use crate::transport::http_client::ResponseBody;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde_json::value::RawValue;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::headers;
use crate::http::body::{Body, BoxError};
use crate::jsonrpc::{Kind as MsgKind, Payload};
use crate::mcp::headers::SESSION_ID;
use crate::transport::sse;
use crate::upstream::Upstream;

/// The engine's line to its upstream, as the transports need it: the upstream (its timeout,
/// its name in errors, whether it supplies the credential) and the shutdown that ends
/// open-ended streams. Handed down by value (two references) so that no transport needs to
/// know the engine.
#[derive(Clone, Copy)]
pub struct Line<'a> {
    pub upstream: &'a Upstream,
    pub shutdown: &'a CancellationToken,
}

impl Line<'_> {
    /// The client's request headers as they go upstream (`headers::to_upstream`).
    pub fn upstream_headers(self, client: &HeaderMap) -> HeaderMap {
        headers::to_upstream(client, self.upstream.supplies_authorization())
    }

    /// Turns the upstream's response into the client's: the body relayed as it arrives, with
    /// the timeout and error events of `Relay`.
    pub fn relay(
        self,
        resp: Response<ResponseBody>,
        session: Option<&HeaderValue>,
        pending: Option<Pending>,
        open_ended: bool,
    ) -> Response<Body> {
        let (parts, incoming) = resp.into_parts();
        let is_sse = crate::transport::answer::is_event_stream(&parts.headers);
        let (idle, stop, pending) = if open_ended {
            (None, Some(self.shutdown.clone().cancelled_owned()), None)
        } else {
            (Some(self.upstream.timeout), None, pending.filter(|_| is_sse))
        };
        let relay = Relay::new(incoming, idle, stop, pending, self.upstream.display.clone());
        client_response(Response::from_parts(parts, http_body_util::BodyExt::boxed_unsync(relay)), session)
    }
}

/// The client's view of an upstream response: headers filtered, our session id.
pub fn client_response(resp: Response<Body>, session: Option<&HeaderValue>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    headers::to_client(&mut parts.headers);
    if let Some(id) = session {
        parts.headers.insert(SESSION_ID, id.clone());
    }
    Response::from_parts(parts, body)
}

/// The requests of one POST that have no answer yet (their ids as raw JSON text).
pub struct Unanswered(Vec<String>);

impl Unanswered {
    pub fn new(ids: Vec<String>) -> Self {
        Unanswered(ids)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Crosses off the requests a message (or batch) answers.
    pub fn observe(&mut self, message: &[u8]) {
        let Ok(payload) = Payload::parse(message) else { return };
        for m in payload.messages() {
            if let (MsgKind::Response, Some(id)) = (m.kind(), m.id) {
                self.0.retain(|p| p != id.get());
            }
        }
    }

    /// One SSE error event per unanswered request, so the client is not left waiting.
    pub fn error_events(&self, kind: Kind, message: &str) -> Option<Bytes> {
        if self.0.is_empty() {
            return None;
        }
        let mut out = BytesMut::new();
        for id in &self.0 {
            let raw = RawValue::from_string(id.clone()).ok();
            let e = Error::new(kind, message);
            out.extend_from_slice(&sse::encode(&wire::message(&e, raw.as_deref()), None));
        }
        Some(out.freeze())
    }
}

/// Tracks which requests of a POST are still unanswered, by reading the SSE events going by.
pub struct Pending {
    unanswered: Unanswered,
    parser: sse::Parser,
    events: Vec<sse::Event>,
}

impl Pending {
    pub fn new(ids: Vec<String>) -> Option<Self> {
        (!ids.is_empty()).then(|| Pending {
            unanswered: Unanswered(ids),
            parser: sse::Parser::new(),
            events: Vec::new(),
        })
    }

    fn observe(&mut self, chunk: &[u8]) {
        self.parser.feed(chunk, &mut self.events);
        for ev in self.events.drain(..) {
            self.unanswered.observe(ev.data.as_bytes());
        }
    }
}

pub struct Relay {
    inner: ResponseBody,
    /// How long the stream may stay silent; `None` for open-ended GET streams.
    idle: Option<Duration>,
    /// Armed only once the upstream makes us wait (most JSON answers never do).
    deadline: Option<Pin<Box<Sleep>>>,
    stop: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    pending: Option<Pending>,
    upstream: std::sync::Arc<str>,
    done: bool,
    /// `idle` bounds the whole response, not each silence: what arrives does not put the
    /// deadline off (a server's keep-alive comments must not stretch a call past its timeout).
    whole: bool,
}

impl Relay {
    pub fn new(
        inner: ResponseBody,
        idle: Option<Duration>,
        stop: Option<WaitForCancellationFutureOwned>,
        pending: Option<Pending>,
        upstream: std::sync::Arc<str>,
    ) -> Self {
        Relay { inner, idle, deadline: None, stop: stop.map(Box::pin), pending, upstream, done: false, whole: false }
    }

    /// `idle` bounds the whole response from the first wait on.
    pub fn bounding_the_whole(mut self) -> Self {
        self.whole = true;
        self
    }

    /// Ends the stream, with error events for what is still unanswered if we know of any.
    fn finish(&mut self, kind: Kind, message: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        tracing::warn!("{message}");
        match self.pending.as_ref().and_then(|p| p.unanswered.error_events(kind, &message)) {
            Some(events) => Poll::Ready(Some(Ok(Frame::data(events)))),
            None => Poll::Ready(Some(Err(message.into()))),
        }
    }
}

impl HttpBody for Relay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(stop) = &mut this.stop
            && stop.as_mut().poll(cx).is_ready()
        {
            this.done = true;
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(p) = &mut this.pending {
                        p.observe(data);
                    }
                    if let (Some(idle), Some(deadline), false) = (this.idle, this.deadline.as_mut(), this.whole) {
                        deadline.as_mut().reset(Instant::now() + idle);
                    }
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => {
                let msg = format!(
                    "the connection to upstream {} broke mid-response: {}",
                    this.upstream,
                    crate::error::chain(&*e)
                );
                return this.finish(Kind::UpstreamUnreachable, msg);
            }
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if let Some(idle) = this.idle {
            let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
            if deadline.as_mut().poll(cx).is_ready() {
                let msg = if this.whole {
                    format!("upstream {} did not answer within {idle:?}; giving up on this response", this.upstream)
                } else {
                    format!("upstream {} sent nothing for {idle:?}; giving up on this response", this.upstream)
                };
                return this.finish(Kind::UpstreamTimeout, msg);
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // Exact only when we relay the body unchanged and to its end.
        if self.pending.is_none() && self.stop.is_none() { self.inner.size_hint() } else { SizeHint::default() }
    }
}
