//! HTTP/1.x server connections: our own codec, for every request a client sends over HTTP/1.0
//! or HTTP/1.1 (hyper takes only HTTP/2 clients with prior knowledge, see `server`).
//!
//! A connection's task reads a request head into one buffer and parses it in place (`head`:
//! header values are slices of that buffer, and anything ambiguous is refused there), reads the
//! body (`Content-Length` or chunked, `Expect: 100-continue` answered), calls the handler, and
//! writes the answer — a known length, head and body, in a single write; a stream chunked (or,
//! to an HTTP/1.0 client, until the close) event by event as it comes.
//!
//! Every wait has a limit (`Limits`): for a first request or the next one on a kept-alive
//! connection (`idle_timeout`, nginx's `keepalive_timeout`), for a head once begun
//! (`head_timeout`), for a body (`body_timeout` between reads and a minimum rate), for the client
//! to take what is written (`write_timeout`). A body is held against the gateway's budget for
//! bodies in memory and grows as its bytes arrive, never allocated whole on the word of its
//! `Content-Length`. An idle connection may be closed to make room for a new one (`conns`).
//! `Content-Length`, `Transfer-Encoding` and `Connection` of an answer are set here, never
//! taken from the handler; a client that hangs up mid-stream ends the stream; pipelined requests
//! are answered in order; on shutdown an idle connection closes, a busy one after its answer.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use super::conns::{Held, Ticket};
use super::framing::{self, Malformed};
use super::head::{self, BodyFraming, Head, MAX_HEAD, Parsed};
use super::limits::{Edge, Limits};
use crate::http::body::{Body, RequestBody};

/// A known-length answer up to this size goes out in one write with its head.
const ONE_WRITE: u64 = 256 * 1024;
const READ_CHUNK: usize = 8 * 1024;
/// A body's buffer grows by at most this much ahead of what has arrived.
const BODY_STEP: usize = 64 * 1024;
/// Bodies up to this size live in the connection's read buffer and are bounded by the connection
/// cap; only larger ones are held against the budget for bodies (every MCP call would otherwise
/// touch one counter shared by all event loops).
const SMALL_BODY: usize = 16 * 1024;

/// How a connection served here ended.
pub enum Ended {
    Closed,
    /// An HTTP/2 client with prior knowledge: hyper takes over, starting with the bytes read.
    H2c(TcpStream, Bytes),
}

/// What a connection needs besides its socket.
pub struct Conn<'a> {
    pub peer: SocketAddr,
    pub ticket: &'a Ticket,
    pub edge: &'a Edge,
    pub shutdown: &'a CancellationToken,
}

/// Serves requests on `stream` until the client closes it, a limit or an error ends it,
/// `shutdown` fires (between requests), the gateway needs its place, or it turns out to be
/// HTTP/2.
pub async fn serve<F, Fut>(mut stream: TcpStream, conn: Conn<'_>, handler: &F) -> Ended
where
    F: Fn(Request<RequestBody>, SocketAddr) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // One wait for the shutdown for the connection's life, not one set up and torn down for
    // each request.
    let stopping = conn.shutdown.cancelled();
    tokio::pin!(stopping);
    let mut first = true;
    let mut edge = conn.edge.cached();
    loop {
        // Borrowed, not cloned: no reference count shared by the event loops is touched.
        let limits: &Limits = edge.get();
        // 1. Idle until a request begins: the gateway may shut down or need this place meanwhile.
        //    Past its limit the connection is closed without a word, as nginx does (the table's
        //    sweep tells it so: no timer is set and cancelled around every wait).
        if buf.is_empty() {
            conn.ticket.idle(if first { limits.head_timeout } else { limits.idle_timeout });
            buf.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                r = stream.read_buf(&mut buf) => if !matches!(r, Ok(n) if n > 0) { return Ended::Closed },
                () = &mut stopping => return Ended::Closed,
                () = conn.ticket.closing() => return Ended::Closed,
            }
            conn.ticket.busy();
        }
        first = false;
        // 2. The head, whole (usually it came with the first read: no timer then).
        let parsed = match head::parse(&mut buf) {
            Parsed::Partial => read_head(&mut stream, &mut buf, Instant::now() + limits.head_timeout).await,
            done => done,
        };
        let head = match parsed {
            Parsed::Head(head) => head,
            Parsed::H2c => return Ended::H2c(stream, buf.freeze()),
            Parsed::Refused(status, why) => {
                tracing::debug!(peer = %conn.peer, "request refused with {status}: {why}");
                return refuse(stream, status, limits).await;
            }
            Parsed::Partial => return Ended::Closed,
        };
        // 3. The body, within its limits.
        let (body, _held) = match read_body(&mut stream, &mut buf, &head, limits, conn.ticket).await {
            Ok(read) => read,
            Err(Refusal::Closed) => return Ended::Closed,
            Err(Refusal::Status(status, why)) => {
                tracing::debug!(peer = %conn.peer, "request refused with {status}: {why}");
                return refuse(stream, status, limits).await;
            }
        };
        // An oversized body was not read: the connection cannot carry another request.
        let unread = body.is_refused();
        let (parts, ()) = head.request.into_parts();
        let head_only = parts.method == Method::HEAD;
        let http10 = parts.version == Version::HTTP_10;
        // 4. The handler, then its answer.
        let resp = handler(Request::from_parts(parts, body), conn.peer).await;
        let close = head.close || unread || conn.shutdown.is_cancelled();
        let how = Answer { head_only, close, http10, keep_alive_said: http10 && !close };
        let written = write_response(&mut stream, &mut buf, resp, how, limits.write_timeout).await;
        if written.is_err() || close {
            let _ = tokio::time::timeout(limits.write_timeout, stream.shutdown()).await;
            return Ended::Closed;
        }
    }
}

/// Reads until `buf` holds a whole request head, and parses it; `Partial`: the client closed
/// the connection or the deadline passed (a slow client: closed without a word, as nginx does).
async fn read_head(stream: &mut TcpStream, buf: &mut BytesMut, deadline: Instant) -> Parsed {
    loop {
        buf.reserve(READ_CHUNK);
        match timeout_at(deadline, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Parsed::Partial,
        }
        match head::parse(buf) {
            Parsed::Partial => {}
            done => return done,
        }
    }
}

enum Refusal {
    Closed,
    Status(StatusCode, &'static str),
}

/// Reads the request's body whole, held against the gateway's budget for bodies in memory. A
/// body larger than `max_body` is not read: the handler gets a body that says its size, and
/// refuses it (413) as it would any other.
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    head: &Head,
    limits: &Limits,
    ticket: &Ticket,
) -> Result<(RequestBody, Option<Held>), Refusal> {
    let busy = || Refusal::Status(StatusCode::SERVICE_UNAVAILABLE, "request bodies fill the memory set aside");
    match head.body {
        BodyFraming::Length(0) => Ok((RequestBody::whole(Bytes::new()), None)),
        BodyFraming::Length(n) if n > limits.max_body as u64 => Ok((RequestBody::too_large(n), None)),
        BodyFraming::Length(n) => {
            let n = n as usize;
            let held = match n {
                0..=SMALL_BODY => None,
                _ => Some(ticket.conns().hold(n, limits.max_buffered_bodies).ok_or_else(busy)?),
            };
            if head.expects_continue && buf.len() < n {
                continue_now(stream, limits).await?;
            }
            let deadline = Instant::now() + limits.body_deadline(n as u64);
            while buf.len() < n {
                buf.reserve((n - buf.len()).min(BODY_STEP));
                read_more(stream, buf, deadline, limits).await?;
            }
            Ok((RequestBody::whole(buf.split_to(n).freeze()), held))
        }
        BodyFraming::Chunked => {
            let mut held: Option<Held> = None;
            if head.expects_continue && buf.is_empty() {
                continue_now(stream, limits).await?;
            }
            let started = Instant::now();
            let mut body = BytesMut::new();
            loop {
                let deadline = started + limits.body_deadline(body.len() as u64);
                // The size line, the data and its CRLF, as they arrive.
                let size = loop {
                    match framing::chunk_size(buf) {
                        Ok(Some((len, size))) => {
                            buf.advance(len);
                            break size;
                        }
                        Ok(None) => read_more(stream, buf, deadline, limits).await?,
                        Err(Malformed) => {
                            return Err(Refusal::Status(StatusCode::BAD_REQUEST, "a chunk size is malformed"));
                        }
                    }
                };
                if size == 0 {
                    break;
                }
                if body.len() as u64 + size > limits.max_body as u64 {
                    return Ok((RequestBody::too_large(body.len() as u64 + size), None));
                }
                let size = size as usize;
                let fits = match held.as_mut() {
                    Some(h) => h.grow(size, limits.max_buffered_bodies),
                    None if body.len() + size <= SMALL_BODY => true,
                    None => {
                        held = ticket.conns().hold(body.len() + size, limits.max_buffered_bodies);
                        held.is_some()
                    }
                };
                if !fits {
                    return Err(busy());
                }
                while buf.len() < size + 2 {
                    buf.reserve((size + 2 - buf.len()).min(BODY_STEP));
                    read_more(stream, buf, deadline, limits).await?;
                }
                body.extend_from_slice(&buf[..size]);
                if &buf[size..size + 2] != b"\r\n" {
                    return Err(Refusal::Status(StatusCode::BAD_REQUEST, "a chunk does not end with CRLF"));
                }
                buf.advance(size + 2);
            }
            // Trailer fields are read and dropped (none of them may frame or route).
            let deadline = Instant::now() + limits.head_timeout;
            let too_large = || Refusal::Status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "trailers too large");
            loop {
                match framing::trailers(buf) {
                    Ok(Some(len)) if len > framing::MAX_TRAILERS => return Err(too_large()),
                    Ok(Some(len)) => {
                        buf.advance(len);
                        break;
                    }
                    Ok(None) if buf.len() > framing::MAX_TRAILERS => return Err(too_large()),
                    Ok(None) => read_more(stream, buf, deadline, limits).await?,
                    Err(Malformed) => {
                        return Err(Refusal::Status(StatusCode::BAD_REQUEST, "the trailer fields are malformed"));
                    }
                }
            }
            Ok((RequestBody::whole(body.freeze()), held))
        }
    }
}

/// One more read of a body: the client may pause `body_timeout` between reads, and the whole
/// body must be in by `deadline` (a minimum rate). nginx answers a body timeout with 408.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
    limits: &Limits,
) -> Result<(), Refusal> {
    let pause = (Instant::now() + limits.body_timeout).min(deadline);
    match timeout_at(pause, stream.read_buf(buf)).await {
        Ok(Ok(n)) if n > 0 => Ok(()),
        Ok(_) => Err(Refusal::Closed),
        Err(_) => Err(Refusal::Status(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time")),
    }
}

async fn continue_now(stream: &mut TcpStream, limits: &Limits) -> Result<(), Refusal> {
    write_within(stream, b"HTTP/1.1 100 Continue\r\n\r\n", limits.write_timeout).await.map_err(|_| Refusal::Closed)
}

async fn refuse(mut stream: TcpStream, code: StatusCode, limits: &Limits) -> Ended {
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or("")
    );
    let _ = write_within(&mut stream, head.as_bytes(), limits.write_timeout).await;
    let _ = tokio::time::timeout(limits.write_timeout, stream.shutdown()).await;
    Ended::Closed
}

/// A write the client must take within `limit` (nginx's `send_timeout`).
async fn write_within(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> std::io::Result<()> {
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// How an answer is to be written.
struct Answer {
    head_only: bool,
    close: bool,
    /// To an HTTP/1.0 client: no chunked coding; a stream runs until the close.
    http10: bool,
    keep_alive_said: bool,
}

/// Writes `resp`: a known length in one write with its head, a stream chunked and event by
/// event. While a stream is open the client's side is watched, so that a client hanging up ends
/// it (what arrives meanwhile — a pipelined request — stays in `buf`).
async fn write_response(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    resp: Response<Body>,
    how: Answer,
    limit: Duration,
) -> std::io::Result<()> {
    let (parts, mut body) = resp.into_parts();
    let bodiless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let exact = body.size_hint().exact();
    let mut out = Vec::with_capacity(256 + exact.filter(|n| *n <= ONE_WRITE).unwrap_or(0) as usize);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        header(&mut out, name.as_str(), value.as_bytes());
    }
    if !parts.headers.contains_key(DATE) {
        with_date(|d| header(&mut out, "date", d.as_bytes()));
    }
    // A stream to an HTTP/1.0 client ends with the connection.
    let until_close = how.http10 && exact.is_none() && !bodiless;
    if how.close || until_close {
        header(&mut out, "connection", b"close");
    } else if how.keep_alive_said {
        header(&mut out, "connection", b"keep-alive");
    }
    let chunked = !bodiless && exact.is_none() && !how.http10;
    match exact {
        _ if bodiless => {}
        Some(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None if chunked => header(&mut out, "transfer-encoding", b"chunked"),
        None => {}
    }
    out.extend_from_slice(b"\r\n");
    if how.head_only || bodiless {
        return write_within(stream, &out, limit).await;
    }
    if let Some(n) = exact.filter(|n| *n <= ONE_WRITE) {
        // A whole answer (the usual JSON one): its frames are ready or nearly so.
        let head_len = out.len() as u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(std::io::Error::other)?.into_data() {
                out.extend_from_slice(&data);
            }
        }
        if out.len() as u64 - head_len != n {
            return Err(std::io::Error::other("the answer's body was not the length it said"));
        }
        return write_within(stream, &out, limit).await;
    }
    write_within(stream, &out, limit).await?;
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            gone = hung_up(stream, buf) => { gone?; return Err(std::io::ErrorKind::ConnectionAborted.into()) }
        };
        let Some(frame) = frame else { break };
        // A body that fails mid-way: the connection closes without the last chunk, so the
        // client sees the answer as cut short rather than complete.
        let Ok(data) = frame.map_err(std::io::Error::other)?.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        if chunked {
            let mut chunk = Vec::with_capacity(data.len() + 12);
            chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            chunk.extend_from_slice(&data);
            chunk.extend_from_slice(b"\r\n");
            write_within(stream, &chunk, limit).await?;
        } else {
            write_within(stream, &data, limit).await?;
        }
    }
    if chunked {
        write_within(stream, b"0\r\n\r\n", limit).await?;
    }
    if until_close {
        return Err(std::io::ErrorKind::ConnectionAborted.into());
    }
    Ok(())
}

thread_local! {
    static NOW: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Calls `f` with the `Date` an origin server sends (RFC 9110 §6.6.1: an IMF-fixdate, `Sun, 06
/// Nov 1994 08:49:37 GMT`), formatted by httpdate once a second per thread.
fn with_date<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    NOW.with_borrow_mut(|(at, text)| {
        if *at != now {
            *at = now;
            text.clear();
            let _ = write!(text, "{}", httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(now)));
        }
        f(text)
    })
}

fn header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Resolves when the client closes its side (`Ok`) or the connection fails; bytes it sends in
/// the meantime are kept in `buf`, up to a request head's worth, after which it stops reading.
async fn hung_up(stream: &TcpStream, buf: &mut BytesMut) -> std::io::Result<()> {
    loop {
        if buf.len() > MAX_HEAD {
            return std::future::pending().await;
        }
        stream.readable().await?;
        buf.reserve(READ_CHUNK);
        match stream.try_read_buf(buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_date_is_an_imf_fixdate_of_now() {
        let before = SystemTime::now() - Duration::from_secs(1);
        let date = super::with_date(str::to_owned);
        assert_eq!(date.len(), 29, "{date}");
        assert!(date.ends_with(" GMT"), "{date}");
        let t = httpdate::parse_http_date(&date).unwrap();
        assert!(t >= before && t <= SystemTime::now(), "{date}");
    }
}
