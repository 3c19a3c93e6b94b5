//! The SSE streams the gateway writes for a call (its progress, the server's questions, then its
//! answer), made resumable: every event has an id, `<stream>-<seq>`, unique within the session,
//! and a stream whose client went away before its end is kept, so that a `GET` with
//! `Last-Event-ID` gets what came after that event and then the rest as it comes (SEP-1699).
//!
//! A stream's events stay in its `Log` until the stream ends (a client's `Last-Event-ID` says
//! what it received; what was written into a connection that then broke is not), at most
//! `KEPT` of them, the oldest going first. A stream that ends with its client reading is
//! forgotten; one left by its client waits for a resumption, at most `LEFT` per session.
//! Only the writer's lag holds the producer back: while nobody reads, events are kept, not
//! waited on, so a call whose client went away still runs to its answer.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};

use crate::http::body::{Body, BoxError};
use crate::transport::sse;

/// Events written ahead of a client that reads slowly; past this, the producer waits.
const AHEAD: u64 = 16;
/// Events of one stream kept for a resumption.
const KEPT: usize = 256;
/// Streams left by their client, per session, kept for a resumption.
const LEFT: usize = 8;

/// A session's resumable streams: those in flight, and those left by their client (at most
/// `LEFT`, the oldest forgotten first).
#[derive(Default)]
pub struct Streams {
    next: AtomicU64,
    logs: Mutex<Vec<Arc<Log>>>,
}

impl Streams {
    /// A new stream; `prime` (a client of 2025-11-25 or later) opens it with an event of an id
    /// and no data, so that the client can resume even before the first message.
    pub fn open(&self, prime: bool) -> Arc<Log> {
        let log = Arc::new(Log { stream: self.next.fetch_add(1, Ordering::Relaxed), state: Mutex::default() });
        if prime {
            log.push_event(|id| Bytes::from(format!("id: {id}\ndata: \n\n")));
        }
        self.lock().push(log.clone());
        log
    }

    /// The stream `last_event_id` belongs to, if it is kept: its writer from now on goes on
    /// after that event. A writer still attached to it (a connection the client gave up on and
    /// the gateway has not noticed yet) ends.
    pub fn resume(&self, last_event_id: &str) -> Option<Arc<Log>> {
        let (stream, seq) = last_event_id.split_once('-')?;
        let (stream, seq): (u64, u64) = (stream.parse().ok()?, seq.parse().ok()?);
        let log = self.lock().iter().find(|l| l.stream == stream)?.clone();
        let mut s = log.lock();
        s.cursor = seq + 1;
        s.generation += 1;
        if let Some(w) = s.writer.take() {
            w.wake();
        }
        drop(s);
        Some(log)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Log>>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A stream was read to its end: nothing to resume.
    fn ended(&self, log: &Arc<Log>) {
        self.lock().retain(|l| !Arc::ptr_eq(l, log));
    }

    /// A stream's client went before its end: kept, and the oldest of those over `LEFT` go.
    fn left(&self) {
        let mut logs = self.lock();
        let mut left = logs.iter().filter(|l| !l.lock().attached).count();
        logs.retain(|l| {
            let keep = left <= LEFT || l.lock().attached;
            left -= usize::from(!keep);
            keep
        });
    }
}

/// One stream's events.
pub struct Log {
    stream: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Kept events, oldest first, with their sequence numbers.
    events: VecDeque<(u64, Bytes)>,
    next_seq: u64,
    /// The next event the writer takes.
    cursor: u64,
    done: bool,
    /// The writer, waiting for an event.
    writer: Option<Waker>,
    /// Whether a writer reads (a client is connected).
    attached: bool,
    /// Which writer reads: a resumption starts a new one.
    generation: u64,
    /// The producer, waiting for the writer to catch up.
    producer: Option<Waker>,
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds one message as an event (waiting while the connected client is `AHEAD` behind).
    pub async fn send(&self, msg: &[u8]) {
        std::future::poll_fn(|cx| {
            let mut s = self.lock();
            if s.attached && s.next_seq - s.cursor.min(s.next_seq) >= AHEAD {
                s.producer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(())
        })
        .await;
        self.push_event(|id| sse::encode(msg, Some(id)));
    }

    /// Adds one message as an event without waiting (for a stream nobody reads yet).
    pub fn push(&self, msg: &[u8]) {
        self.push_event(|id| sse::encode(msg, Some(id)));
    }

    /// The stream's last event was sent.
    pub fn finish(&self) {
        let mut s = self.lock();
        s.done = true;
        if let Some(w) = s.writer.take() {
            w.wake();
        }
    }

    fn push_event(&self, encode: impl FnOnce(&str) -> Bytes) {
        let mut s = self.lock();
        let seq = s.next_seq;
        let event = encode(&format!("{}-{seq}", self.stream));
        s.next_seq += 1;
        if s.events.len() == KEPT {
            s.events.pop_front();
        }
        s.events.push_back((seq, event));
        if let Some(w) = s.writer.take() {
            w.wake();
        }
    }

    /// The HTTP response that writes this stream to a client of `streams`' session.
    pub fn response(self: Arc<Self>, streams: Arc<Streams>) -> http::Response<Body> {
        let generation = {
            let mut s = self.lock();
            s.attached = true;
            s.generation
        };
        let body = Writer { log: self, streams, generation, ended: false };
        let mut resp = http::Response::new(http_body_util::BodyExt::boxed_unsync(body));
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}

/// A stream's body: takes events from the log as the connection writes them.
struct Writer {
    log: Arc<Log>,
    streams: Arc<Streams>,
    generation: u64,
    ended: bool,
}

impl http_body::Body for Writer {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let mut s = self.log.lock();
        if s.generation != self.generation {
            // Resumed on another connection: this one is done.
            drop(s);
            self.ended = true;
            return Poll::Ready(None);
        }
        // Events older than what is kept are gone: go on from the oldest kept.
        let first = s.events.front().map_or(s.next_seq, |e| e.0);
        let cursor = s.cursor.max(first);
        if cursor < s.next_seq {
            let event = s.events[(cursor - first) as usize].1.clone();
            s.cursor = cursor + 1;
            if let Some(w) = s.producer.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(http_body::Frame::data(event))));
        }
        if s.done {
            drop(s);
            self.ended = true;
            self.streams.ended(&self.log);
            return Poll::Ready(None);
        }
        s.writer = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let mut s = self.log.lock();
        if s.generation != self.generation {
            return;
        }
        s.attached = false;
        s.writer = None;
        if let Some(w) = s.producer.take() {
            w.wake();
        }
        drop(s);
        if !self.ended {
            self.streams.left();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn next(body: &mut Body) -> Option<String> {
        let frame = body.frame().await?.ok()?;
        Some(String::from_utf8(frame.into_data().ok()?.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_stream_left_midway_resumes_after_the_last_event_received() {
        let owner = Arc::new(Streams::default());
        let log = owner.open(true);
        let mut body = log.clone().response(owner.clone()).into_body();
        assert_eq!(next(&mut body).await.unwrap(), "id: 0-0\ndata: \n\n");
        log.send(b"{\"progress\":1}").await;
        assert!(next(&mut body).await.unwrap().starts_with("id: 0-1\n"));
        log.send(b"{\"progress\":2}").await;
        // The client goes before reading progress 2; the answer comes while nobody reads.
        drop(body);
        log.send(b"{\"result\":{}}").await;
        log.finish();
        assert!(owner.resume("7-1").is_none(), "no such stream");
        let again = owner.resume("0-1").expect("the stream is kept");
        let mut body = again.response(owner.clone()).into_body();
        assert!(next(&mut body).await.unwrap().contains("\"progress\":2"));
        assert!(next(&mut body).await.unwrap().contains("\"result\""));
        assert!(next(&mut body).await.is_none());
        drop(body);
        assert!(owner.resume("0-1").is_none(), "a stream read to its end is forgotten");
    }

    #[tokio::test]
    async fn a_resumption_takes_the_stream_from_a_connection_not_yet_known_dead() {
        let owner = Arc::new(Streams::default());
        let log = owner.open(false);
        let mut old = log.clone().response(owner.clone()).into_body();
        log.send(b"{\"n\":0}").await;
        assert!(next(&mut old).await.unwrap().starts_with("id: 0-0\n"));
        let again = owner.resume("0-0").expect("an attached stream resumes too");
        let mut new = again.response(owner.clone()).into_body();
        assert!(next(&mut old).await.is_none(), "the old connection's body ends");
        drop(old);
        log.send(b"{\"n\":1}").await;
        log.finish();
        assert!(next(&mut new).await.unwrap().starts_with("id: 0-1\n"));
        assert!(next(&mut new).await.is_none());
    }

    #[tokio::test]
    async fn streams_left_by_their_client_are_kept_up_to_a_bound() {
        let owner = Arc::new(Streams::default());
        for _ in 0..LEFT + 3 {
            let log = owner.open(true);
            drop(log.clone().response(owner.clone()));
        }
        assert_eq!(owner.lock().len(), LEFT);
        assert!(owner.resume("0-0").is_none(), "the oldest went first");
        assert!(owner.resume(&format!("{}-0", LEFT + 2)).is_some());
    }

    #[tokio::test]
    async fn a_reader_that_lags_holds_the_producer_and_nobody_reading_does_not() {
        let owner = Arc::new(Streams::default());
        let log = owner.open(false);
        let body = log.clone().response(owner.clone()).into_body();
        for _ in 0..AHEAD {
            log.send(b"{}").await;
        }
        let held = tokio::time::timeout(std::time::Duration::from_millis(50), log.send(b"{}")).await;
        assert!(held.is_err(), "the producer waits for a connected reader");
        drop(body);
        for _ in 0..KEPT * 2 {
            log.send(b"{}").await;
        }
        assert_eq!(log.lock().events.len(), KEPT, "kept within bounds");
    }
}
