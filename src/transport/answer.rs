//! Reading an MCP server's answer to a POST: a JSON body (one message, or a batch) or an event
//! stream of messages — the one reader for every caller that waits on an answer rather than
//! relaying it. A stream that ends before the caller has what it waits for is resumed the way
//! the spec has servers expect since 2025-11-25 (SEP-1699): after the stream's `retry`, a `GET`
//! with `Last-Event-ID`, a few times.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

use super::sse;
use crate::http::body::BoxError;

/// The largest JSON answer read whole: as large as one event of a stream may be.
pub const MAX_JSON: usize = sse::DEFAULT_EVENT_LIMIT;

/// Resumptions of one answer before the caller is told it never came.
const RESUME_ATTEMPTS: usize = 5;
/// The wait before a resumption when the stream named none (`retry`).
const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// Whether a response's body is an event stream (it may carry more than one message).
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// How a read ended.
#[derive(Debug, Default, Clone)]
pub struct End {
    /// The caller said it had what it waited for.
    pub stopped: bool,
    /// The id of the stream's last event that had one: where a resumption starts.
    pub last_event_id: Option<String>,
    /// The stream's `retry`, in milliseconds.
    pub retry: Option<u64>,
    /// Messages handed to the caller.
    pub messages: usize,
    /// The body broke off (the connection failed, or a JSON body was over `limit`).
    pub broken: Option<String>,
}

/// Reads every message of a response, JSON or SSE, each parsed (a batch message by message),
/// until `each` returns false; the last event id.
pub async fn read_messages<B>(resp: Response<B>, mut each: impl FnMut(serde_json::Value) -> bool) -> Option<String>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    read(resp, MAX_JSON, |bytes| messages(&bytes, &mut each)).await.last_event_id
}

/// Hands each message of a payload (one, or a batch) to `each`; false once `each` said so.
pub fn messages(bytes: &[u8], each: &mut impl FnMut(serde_json::Value) -> bool) -> bool {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Array(batch)) => batch.into_iter().all(each),
        Ok(m) => each(m),
        Err(_) => true,
    }
}

/// Hands each JSON-RPC payload of `resp` (a message or a batch, as the server wrote it) to
/// `each`, until `each` returns false or the body ends; a JSON body is read up to `limit`
/// bytes. Events without data (a stream's priming event) are not messages.
pub async fn read<B>(resp: Response<B>, limit: usize, mut each: impl FnMut(Bytes) -> bool) -> End
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let sse = is_event_stream(resp.headers());
    let mut body = std::pin::pin!(resp.into_body());
    let mut end = End::default();
    if !sse {
        match crate::http::body::read_limited(body, limit).await {
            Ok(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => {
                end.messages = 1;
                end.stopped = !each(bytes);
            }
            Ok(_) => {}
            Err(e) => end.broken = Some(format!("{e:?}")),
        }
        return end;
    }
    let mut parser = sse::Parser::new();
    let mut events = Vec::new();
    loop {
        let frame = match body.frame().await {
            None => return end,
            Some(Err(e)) => {
                end.broken = Some(crate::error::chain(&*e.into()));
                return end;
            }
            Some(Ok(frame)) => frame,
        };
        let Some(data) = frame.data_ref() else { continue };
        parser.feed(data, &mut events);
        for ev in events.drain(..) {
            if ev.id.is_some() {
                end.last_event_id = ev.id;
            }
            if ev.retry.is_some() {
                end.retry = ev.retry;
            }
            if ev.data.trim().is_empty() {
                continue;
            }
            end.messages += 1;
            if !each(Bytes::from(ev.data)) {
                end.stopped = true;
                return end;
            }
        }
    }
}

/// `read`, and while the stream ends before `each` says it has what it waits for and left an
/// event id, resumed through `reopen` (a `GET` with that `Last-Event-ID`) and read again.
/// `None` from `reopen` (shutting down, say) ends the attempts.
pub async fn read_resuming<B, F, Fut>(
    resp: Response<B>,
    limit: usize,
    mut reopen: F,
    mut each: impl FnMut(Bytes) -> bool,
) -> End
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    F: FnMut(HeaderValue, Duration) -> Fut,
    Fut: Future<Output = Option<Response<B>>>,
{
    let mut end = read(resp, limit, &mut each).await;
    for _ in 0..RESUME_ATTEMPTS {
        if end.stopped {
            break;
        }
        let Some(last) = end.last_event_id.clone().and_then(|i| HeaderValue::try_from(i).ok()) else { break };
        let wait = end.retry.map_or(DEFAULT_RETRY, |ms| Duration::from_millis(ms.min(30_000)));
        let Some(resp) = reopen(last, wait).await else { break };
        if resp.status() != StatusCode::OK {
            tracing::debug!("resuming a response stream was refused ({})", resp.status());
            break;
        }
        let next = read(resp, limit, &mut each).await;
        end = End {
            stopped: next.stopped,
            last_event_id: next.last_event_id.or(end.last_event_id),
            retry: next.retry.or(end.retry),
            messages: end.messages + next.messages,
            broken: next.broken,
        };
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn stream(text: &'static str) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        r
    }

    #[tokio::test]
    async fn json_bodies_and_streams_yield_their_messages() {
        let mut got = Vec::new();
        let json = Response::new(Full::new(Bytes::from_static(b"{\"id\":1,\"result\":{}}")));
        let end = read(json, 1024, |m| {
            got.push(m);
            true
        })
        .await;
        assert_eq!((end.messages, end.stopped), (1, false));
        let end = read(stream("id: a\nretry: 5\ndata: \n\nid: b\ndata: {\"x\":1}\n\ndata: {\"x\":2}\n\n"), 1024, |m| {
            let more = m.as_ref() != b"{\"x\":1}";
            got.push(m);
            more
        })
        .await;
        assert_eq!(got.len(), 2, "the priming event is no message; stopped after the first");
        assert_eq!((end.stopped, end.last_event_id.as_deref(), end.retry), (true, Some("b"), Some(5)));
        assert!(read(Response::new(Full::new(Bytes::from_static(b"{}{}"))), 2, |_| true).await.broken.is_some());
    }

    #[tokio::test]
    async fn a_stream_that_ends_early_is_resumed_from_its_last_event() {
        let mut asked = Vec::new();
        let mut got = Vec::new();
        let end = read_resuming(
            stream("id: s-0\nretry: 1\ndata: \n\n"),
            1024,
            |last, wait| {
                asked.push((last, wait));
                std::future::ready(Some(stream("id: s-1\ndata: {\"answer\":1}\n\n")))
            },
            |m| {
                got.push(m);
                false
            },
        )
        .await;
        assert!(end.stopped);
        assert_eq!(asked, [(HeaderValue::from_static("s-0"), Duration::from_millis(1))]);
        assert_eq!(got, [Bytes::from_static(b"{\"answer\":1}")]);
        // Nothing to resume from: the answer never came, and nobody was asked.
        let end = read_resuming(stream("data: {}\n\n"), 1024, |_, _| async { None }, |_| true).await;
        assert!(!end.stopped && end.last_event_id.is_none());
    }
}
