//! Response bodies and bounded request-body reading.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

#[derive(Debug)]
pub enum ReadError {
    TooLarge,
    Broken(String),
}

/// Reads a whole request body, refusing it as soon as it passes `limit` bytes (no buffering
/// of an oversized body first).
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // A body that says it is too large is refused before any of it is read.
    if body.size_hint().lower() > limit as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut body = std::pin::pin!(body);
    // Most bodies are one frame (our HTTP/1.1 codec reads them whole): that one is kept as it
    // is, without a copy.
    let mut first: Option<Bytes> = None;
    let mut more: Option<bytes::BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame.map_err(|e| ReadError::Broken(e.into().to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        len += data.len();
        if len > limit {
            return Err(ReadError::TooLarge);
        }
        match (&first, &mut more) {
            (None, None) => first = Some(data),
            (_, Some(m)) => m.extend_from_slice(&data),
            (Some(f), None) => {
                let mut m = bytes::BytesMut::with_capacity(len);
                m.extend_from_slice(f);
                m.extend_from_slice(&data);
                more = Some(m);
            }
        }
    }
    Ok(match more {
        Some(m) => m.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// A request's body as a handler gets it: read whole already by our HTTP/1.x codec, one that
/// codec would not read (larger than the limit: it says its size, so `read_limited` refuses it
/// at once), or streaming from hyper (HTTP/2), bounded in time.
pub struct RequestBody {
    inner: RequestInner,
}

enum RequestInner {
    Whole(Option<Bytes>),
    TooLarge(u64),
    Hyper(hyper::body::Incoming, std::pin::Pin<Box<tokio::time::Sleep>>),
}

impl RequestBody {
    pub fn whole(bytes: Bytes) -> Self {
        RequestBody { inner: RequestInner::Whole((!bytes.is_empty()).then_some(bytes)) }
    }

    /// A body of `len` bytes left unread because it is larger than the handler takes.
    pub fn too_large(len: u64) -> Self {
        RequestBody { inner: RequestInner::TooLarge(len) }
    }

    /// An HTTP/2 request's body, which must have arrived within `limit`.
    pub fn hyper(body: hyper::body::Incoming, limit: std::time::Duration) -> Self {
        RequestBody { inner: RequestInner::Hyper(body, Box::pin(tokio::time::sleep(limit))) }
    }

    /// Whether the body was left unread on the connection.
    pub fn is_refused(&self) -> bool {
        matches!(self.inner, RequestInner::TooLarge(_))
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        match &mut self.inner {
            RequestInner::Whole(b) => Poll::Ready(b.take().map(|b| Ok(http_body::Frame::data(b)))),
            RequestInner::TooLarge(_) => Poll::Ready(Some(Err("the request body is larger than allowed".into()))),
            RequestInner::Hyper(b, deadline) => match std::pin::Pin::new(b).poll_frame(cx) {
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    Poll::Ready(Some(Err("the request body did not arrive in time".into())))
                }
                other => other.map_err(Into::into),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            RequestInner::Whole(b) => b.is_none(),
            RequestInner::TooLarge(_) => false,
            RequestInner::Hyper(b, _) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.inner {
            RequestInner::Whole(b) => http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RequestInner::TooLarge(n) => http_body::SizeHint::with_exact(*n),
            RequestInner::Hyper(b, _) => b.size_hint(),
        }
    }
}
