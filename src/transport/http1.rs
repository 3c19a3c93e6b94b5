//! Plain-http upstream requests: our own HTTP/1.1 client, keep-alive, one pool per thread and
//! client.
//!
//! A gateway's usual upstream is `http://` (a sidecar, a service on the same network), and there
//! the general client's machinery cost more than the HTTP itself: hyper runs each connection as
//! a task of its own, so a request crossed two channels and woke two extra tasks on its way out
//! and back. Here the task that asks is the task that writes the request and reads the answer —
//! head and body in one write, the response parsed where it landed, a short body handed over
//! without a second read — and a connection is in the pool only while it is idle.
//!
//! What the wire may do is covered: `Content-Length`, chunked and close-delimited bodies,
//! interim (1xx) responses skipped, `Connection: close` honoured, bodies streamed as they arrive
//! (an SSE answer is open for as long as the server keeps it). A reused connection found closed
//! is never written to; one that fails as the request is written gets it again on a fresh
//! connection, since nothing was read from it; once a request is out it is never sent twice.
//! Connections idle for longer than `MAX_IDLE` are not reused: Node and uvicorn close idle
//! connections after 5 s, and a request racing that close would fail.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::body::BoxError;
use std::sync::Arc;

/// Below the keep-alive timeout of the servers MCP runs on (Node's and uvicorn's: 5 s). Counted
/// from the last request's start, so a connection that carried a long stream is not reused
/// either: being wrong that way costs one handshake.
const MAX_IDLE: Duration = Duration::from_secs(4);
/// Idle connections kept per thread and client; more are closed as they come back.
const MAX_POOLED: usize = 256;
/// A response head larger than this is refused (hyper's default limit is about the same).
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// A body smaller than this goes out in the same write as the head.
const COPY_BODY: usize = 64 * 1024;
const READ_CHUNK: usize = 8 * 1024;

/// One connection: where it goes, what was read from it and not yet used, and when a request
/// last went on it.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    authority: Authority,
    used: Instant,
}

/// A thread's idle connections for one client.
#[derive(Default)]
pub struct Pool {
    idle: Vec<Conn>,
    /// When `put` last dropped the stale connections.
    swept: Option<Instant>,
}

impl Pool {
    /// An idle connection to `authority` that is still open, newest first; the stale and the
    /// closed are dropped on the way.
    fn take(&mut self, authority: &Authority, now: Instant) -> Option<Conn> {
        while let Some(i) = self.idle.iter().rposition(|c| c.authority == *authority) {
            let mut c = self.idle.swap_remove(i);
            if now.duration_since(c.used) <= MAX_IDLE && c.still_open() {
                c.used = now;
                return Some(c);
            }
        }
        None
    }

    fn put(&mut self, conn: Conn) {
        // The stale are dropped here at most once a second (and by `take` as it meets them):
        // looking at each of 32 pooled connections on every return was a cost of every request.
        // `conn.used` (its request's start) stands in for the clock.
        if self.swept.is_none_or(|t| conn.used.saturating_duration_since(t) > Duration::from_secs(1)) {
            let now = Instant::now();
            self.idle.retain(|c| now.duration_since(c.used) <= MAX_IDLE);
            self.swept = Some(now);
        }
        if self.idle.len() < MAX_POOLED {
            self.idle.push(conn);
        }
    }
}

impl Conn {
    /// An idle connection has nothing to say: if it became readable, the server closed it (or
    /// broke the protocol). Costs no system call unless the socket was marked readable.
    fn still_open(&mut self) -> bool {
        matches!(self.stream.try_read_buf(&mut self.buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            && self.buf.is_empty()
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            self.buf.reserve(READ_CHUNK);
            match self.stream.try_read_buf(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

/// Whoever keeps a client's idle connections, one pool per thread (`http_client::HttpClient`'s
/// settings): reached again after each wait, since a task may not hold a pool across one.
pub trait Home: Send + Sync {
    fn with_pool(&self, f: &mut dyn FnMut(&mut Pool));

    /// The addresses this client may connect to (`None`: any).
    fn policy(&self) -> Option<super::address::AddressPolicy> {
        None
    }
}

/// Sends `req` (an `http://` URI) on one of this thread's connections, opening one if none is
/// free, and reads the response head.
pub async fn send(
    client: &Arc<dyn Home>,
    req: Request<Full<Bytes>>,
    connect_timeout: Duration,
) -> Result<Response<ResponseBody>, BoxError> {
    // Encoded before the first wait, so that the request's parts are not kept in this future.
    let Encoded { wire, body, uri, authority, head_only } = Encoded::new(req)?;
    send_encoded(client, Wire { head: &wire, body: &body, uri: &uri, authority, head_only }, connect_timeout).await
}

/// A request as it goes on the wire: `head` is its head (ending with the blank line) and, when
/// the body is shorter than `COPY_BODY`, the body too; otherwise the body follows in a write of
/// its own.
pub struct Wire<'a> {
    pub head: &'a [u8],
    pub body: &'a Bytes,
    pub uri: &'a Uri,
    pub authority: Authority,
    pub head_only: bool,
}

/// Whether `body` goes in the same write as the head (`Wire::head` then ends with it).
pub fn body_in_head(body: &[u8]) -> bool {
    body.len() < COPY_BODY
}

/// Sends a request already encoded (by `encode`, or by a caller that renders its own head) and
/// reads the response head.
pub async fn send_encoded(
    client: &Arc<dyn Home>,
    req: Wire<'_>,
    connect_timeout: Duration,
) -> Result<Response<ResponseBody>, BoxError> {
    let Wire { head: wire, body, uri, authority, head_only } = req;
    let mut reused = None;
    client.with_pool(&mut |p| reused = p.take(&authority, Instant::now()));
    let mut conn = match reused {
        Some(mut conn) => match write(&mut conn, wire, body).await {
            Ok(()) => conn,
            // The server closed it as we wrote, so it read nothing of this request.
            Err(e) => {
                tracing::debug!("a kept-alive connection failed as the request was written ({e}); opening another");
                fresh(uri, authority, wire, body, connect_timeout, client).await?
            }
        },
        None => fresh(uri, authority, wire, body, connect_timeout, client).await?,
    };
    let (head, framing, keep) = read_head(&mut conn, head_only).await?;
    Ok(Response::from_parts(head, ResponseBody::new(conn, framing, keep.then_some(client))))
}

/// A request ready to go: its head (and small body) as bytes, and where it goes.
struct Encoded {
    wire: Vec<u8>,
    body: Bytes,
    uri: Uri,
    authority: Authority,
    head_only: bool,
}

impl Encoded {
    fn new(req: Request<Full<Bytes>>) -> Result<Encoded, BoxError> {
        let (parts, body) = req.into_parts();
        let body = full_bytes(body);
        let authority = parts.uri.authority().cloned().ok_or("the URL has no host")?;
        let wire = encode(&parts.method, &parts.uri, &parts.headers, &body)?;
        Ok(Encoded { wire, body, uri: parts.uri, authority, head_only: parts.method == Method::HEAD })
    }
}

/// A new connection to `uri`'s host, with the request written on it. Boxed: connecting is rare
/// and its future large, and every future that awaits this one would carry (and copy) that
/// size on every request.
fn fresh<'a>(
    uri: &'a Uri,
    authority: Authority,
    wire: &'a [u8],
    body: &'a Bytes,
    connect_timeout: Duration,
    client: &'a Arc<dyn Home>,
) -> Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send + 'a>> {
    Box::pin(async move {
        let policy = client.policy();
        let host = uri.host().ok_or("the URL has no host")?;
        // An IPv6 literal comes bracketed in a URL, bare in a socket address.
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port = uri.port_u16().unwrap_or(80);
        let connect = async {
            match &policy {
                None => TcpStream::connect((host, port)).await,
                // Resolved once, checked, and connected to as checked: a DNS answer that changes
                // in between (rebinding) cannot slip an address past the policy.
                Some(policy) => {
                    let addrs = super::address::admitted(host, port, policy).await?;
                    TcpStream::connect(&addrs[..]).await
                }
            }
        };
        let stream = match tokio::time::timeout(connect_timeout, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Box::new(e) as BoxError),
            Err(_) => return Err(format!("connecting took longer than {connect_timeout:?}").into()),
        };
        stream.set_nodelay(true)?;
        let mut conn = Conn { stream, buf: BytesMut::new(), authority, used: Instant::now() };
        write(&mut conn, wire, body).await?;
        Ok(conn)
    })
}

async fn write(conn: &mut Conn, wire: &[u8], body: &Bytes) -> io::Result<()> {
    conn.stream.write_all(wire).await?;
    if !body_in_head(body) {
        conn.stream.write_all(body).await?;
    }
    Ok(())
}

/// A `Full` body's bytes: it is ready at once by construction.
fn full_bytes(mut body: Full<Bytes>) -> Bytes {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// The request's head (and its body, when small) as it goes on the wire: origin form, `Host`
/// from the URL, the framing ours — never the caller's `Content-Length`, `Transfer-Encoding` or
/// `Connection`.
fn encode(method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Result<Vec<u8>, BoxError> {
    let small = body_in_head(body);
    let size: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(128 + uri.path().len() + size + if small { body.len() } else { 0 });
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host_header(uri)?.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || !matches!(*method, Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if small {
        out.extend_from_slice(body);
    }
    Ok(out)
}

/// `Host` for `uri`: its host and a port other than 80 — never the authority as written, which
/// may hold user info (`http://user:secret@host/`), a secret the upstream must not see there.
pub(crate) fn host_header(uri: &Uri) -> Result<HeaderValue, BoxError> {
    let host = uri.host().ok_or("the URL has no host")?;
    let value = match uri.port_u16() {
        Some(p) if p != 80 => HeaderValue::from_str(&format!("{host}:{p}")),
        _ => HeaderValue::from_str(host),
    };
    value.map_err(|_| "the URL's host is not a valid Host header".into())
}

/// How the body of a response ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the server closes the connection.
    Close,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// Reads and parses the response head (interim responses skipped), leaving what follows it in
/// the connection's buffer; and whether the connection may carry another request after it.
async fn read_head(conn: &mut Conn, head_only: bool) -> Result<(http::response::Parts, Framing, bool), BoxError> {
    loop {
        if let Some((parts, len, framing, reusable)) = parse_head(&conn.buf, head_only)? {
            conn.buf.advance(len);
            if parts.status.is_informational() {
                if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err("the upstream switched protocols unasked".into());
                }
                continue;
            }
            let keep = reusable && keeps_alive(&parts) && framing != Framing::Close;
            return Ok((parts, framing, keep));
        }
        if conn.buf.len() > MAX_HEAD {
            return Err(format!("the upstream's response head is larger than {MAX_HEAD} bytes").into());
        }
        conn.buf.reserve(READ_CHUNK);
        if conn.stream.read_buf(&mut conn.buf).await? == 0 {
            return Err("the upstream closed the connection before answering".into());
        }
    }
}

/// The head, its length, how its body is framed, and whether its connection may be reused.
type Parsed = Option<(http::response::Parts, usize, Framing, bool)>;

/// The response head at the start of `buf`, if it is all there.
fn parse_head(buf: &[u8], head_only: bool) -> Result<Parsed, BoxError> {
    // Uninitialised slots: zeroing a hundred of them cost more than parsing the head.
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("the upstream's response is not HTTP/1.1: {e}").into()),
    };
    let status = StatusCode::from_u16(parsed.code.unwrap_or(0)).map_err(|_| "the upstream sent a bad status code")?;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    // Header values are slices of the head's bytes, not copies: one allocation for all of them.
    let start = buf.as_ptr() as usize;
    let head = Bytes::copy_from_slice(&buf[..len]);
    // The framing headers are this codec's to act on, not the caller's to see: whoever relays
    // the body frames it anew (as `to_client` and every writer here insist).
    let mut said = FramingHeaders::default();
    for h in parsed.headers.iter() {
        let name = crate::mcp::headers::name(h.name.as_bytes()).map_err(|_| "the upstream sent a bad header name")?;
        if name == CONTENT_LENGTH {
            said.length(h.value)?;
            continue;
        }
        if name == TRANSFER_ENCODING {
            // Codings are tokens: a value with other bytes (NBSP, U+3000 around `chunked`) is
            // one no peer reads alike — hyper takes it for no coding at all.
            if !h.value.iter().all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\t') {
                return Err("the upstream sent a bad Transfer-Encoding".into());
            }
            said.transfer_encoding = Some(h.value);
            continue;
        }
        let at = h.value.as_ptr() as usize - start;
        let value = HeaderValue::from_maybe_shared(head.slice(at..at + h.value.len()))
            .map_err(|_| "the upstream sent a bad header value")?;
        headers.append(name, value);
    }
    // RFC 9112 §6.1: an HTTP/1.0 message with a coding has faulty framing (HTTP/1.0 has none).
    if parsed.version == Some(0) && said.transfer_encoding.is_some() {
        return Err("the upstream sent Transfer-Encoding in an HTTP/1.0 response".into());
    }
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts.version = if parsed.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let framing = said.framing(status, head_only);
    let reusable = said.reusable();
    parts.headers = headers;
    Ok(Some((parts, len, framing, reusable)))
}

/// What a response head says about its body's framing.
#[derive(Default)]
struct FramingHeaders<'a> {
    /// The last `Transfer-Encoding` line (its last coding is the one that frames).
    transfer_encoding: Option<&'a [u8]>,
    length: Option<u64>,
}

impl FramingHeaders<'_> {
    /// One `Content-Length` line: a list of equal lengths, or a refusal.
    fn length(&mut self, value: &[u8]) -> Result<(), BoxError> {
        // ASCII digits only (no sign, no Unicode padding), a list only of one length repeated.
        let n = crate::http::framing::content_length_list(value).ok_or("the upstream sent a bad Content-Length")?;
        if self.length.is_some_and(|l| l != n) {
            return Err("the upstream sent conflicting Content-Lengths".into());
        }
        self.length = Some(n);
        Ok(())
    }

    /// A response framed two ways (`Transfer-Encoding` and `Content-Length`) is read by the
    /// coding, as RFC 9112 §6.3 says, but its connection is never used again: whoever sent it
    /// may disagree about where it ended.
    fn reusable(&self) -> bool {
        self.transfer_encoding.is_none() || self.length.is_none()
    }

    /// RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; chunked when the last coding is;
    /// any other coding runs to the close (and wins over a length); else the length, or the close.
    fn framing(&self, status: StatusCode, head_only: bool) -> Framing {
        let bodiless =
            status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
        if head_only || bodiless {
            return Framing::Done;
        }
        if let Some(te) = self.transfer_encoding {
            let last = te.rsplit(|b| *b == b',').next().map_or(&b""[..], crate::http::framing::trim_ows);
            return if last.eq_ignore_ascii_case(b"chunked") { Framing::Chunked(Chunk::Size) } else { Framing::Close };
        }
        match self.length {
            Some(0) => Framing::Done,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    }
}

fn keeps_alive(parts: &http::response::Parts) -> bool {
    let has = |token: &str| {
        parts
            .headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| v.to_str().unwrap_or("").split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if parts.version == Version::HTTP_10 { has("keep-alive") } else { !has("close") }
}

/// A response body read from its connection as the client asks for it; the connection goes
/// back to its thread's pool once the body is complete (and is closed if the body is dropped
/// before that).
pub struct ResponseBody {
    inner: Inner,
}

enum Inner {
    Own(Own),
    Hyper(hyper::body::Incoming),
}

struct Own {
    conn: Option<Conn>,
    framing: Framing,
    /// Where the connection goes back to (`None`: not reused).
    home: Option<Arc<dyn Home>>,
}

impl ResponseBody {
    fn new(conn: Conn, framing: Framing, home: Option<&Arc<dyn Home>>) -> Self {
        let mut own = Own { conn: Some(conn), framing, home: home.cloned() };
        if framing == Framing::Done {
            own.finish();
        }
        ResponseBody { inner: Inner::Own(own) }
    }

    pub fn hyper(body: hyper::body::Incoming) -> Self {
        ResponseBody { inner: Inner::Hyper(body) }
    }
}

impl Own {
    /// The body is complete: the connection is reusable if nothing stray follows it.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let (Some(conn), Some(home)) = (self.conn.take(), self.home.take())
            && conn.buf.is_empty()
        {
            let mut conn = Some(conn);
            home.with_pool(&mut |p| {
                if let Some(conn) = conn.take() {
                    p.put(conn);
                }
            });
        }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else { return Poll::Ready(None) };
            match self.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(left) if !conn.buf.is_empty() => {
                    let n = left.min(conn.buf.len() as u64);
                    let data = conn.buf.split_to(n as usize).freeze();
                    self.framing = Framing::Length(left - n);
                    if left == n {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Framing::Close if !conn.buf.is_empty() => return Poll::Ready(Some(Ok(conn.buf.split().freeze()))),
                Framing::Chunked(state) => match chunked(&mut conn.buf, state)? {
                    Step::Data(data, next) => {
                        self.framing = Framing::Chunked(next);
                        return Poll::Ready(Some(Ok(data)));
                    }
                    Step::Next(next) => {
                        self.framing = Framing::Chunked(next);
                        continue;
                    }
                    Step::End => {
                        self.finish();
                        return Poll::Ready(None);
                    }
                    Step::More => {}
                },
                _ => {}
            }
            let framing = self.framing;
            let Some(conn) = self.conn.as_mut() else { return Poll::Ready(None) };
            if ready!(conn.poll_fill(cx))? == 0 {
                if framing == Framing::Close {
                    self.framing = Framing::Done;
                    self.conn = None;
                    return Poll::Ready(None);
                }
                self.conn = None;
                return Poll::Ready(Some(Err("the upstream closed the connection mid-response".into())));
            }
        }
    }
}

enum Step {
    Data(Bytes, Chunk),
    Next(Chunk),
    End,
    /// More bytes are needed.
    More,
}

/// One step of decoding a chunked body from `buf`.
fn chunked(buf: &mut BytesMut, state: Chunk) -> Result<Step, BoxError> {
    use crate::http::framing::{self, MAX_TRAILERS, Malformed};
    Ok(match state {
        // Hex digits only, as on the server side (`framing::chunk_size`).
        Chunk::Size => match framing::chunk_size(buf) {
            Ok(Some((len, size))) => {
                buf.advance(len);
                Step::Next(if size == 0 { Chunk::Trailers } else { Chunk::Data(size) })
            }
            Ok(None) => Step::More,
            Err(Malformed) => return Err("the upstream sent a bad chunk size".into()),
        },
        Chunk::Data(left) => {
            if buf.is_empty() {
                return Ok(Step::More);
            }
            let n = left.min(buf.len() as u64);
            let data = buf.split_to(n as usize).freeze();
            Step::Data(data, if n == left { Chunk::DataEnd } else { Chunk::Data(left - n) })
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(Step::More);
            }
            if &buf[..2] != b"\r\n" {
                return Err("the upstream sent a chunk without its line end".into());
            }
            buf.advance(2);
            Step::Next(Chunk::Size)
        }
        // Dropped, but read as fields, as on the server side (`framing::trailers`).
        Chunk::Trailers => match framing::trailers(buf) {
            Ok(Some(len)) if len <= MAX_TRAILERS => {
                buf.advance(len);
                Step::End
            }
            Ok(None) if buf.len() <= MAX_TRAILERS => Step::More,
            Ok(_) => return Err("the upstream sent trailer fields too large".into()),
            Err(Malformed) => return Err("the upstream sent malformed trailer fields".into()),
        },
    })
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.inner {
            Inner::Own(own) => own.poll_data(cx).map(|d| d.map(|r| r.map(Frame::data))),
            Inner::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Own(own) => own.framing == Framing::Done,
            Inner::Hyper(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Own(own) => match own.framing {
                Framing::Length(n) => SizeHint::with_exact(n),
                Framing::Done => SizeHint::with_exact(0),
                _ => SizeHint::default(),
            },
            Inner::Hyper(b) => b.size_hint(),
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseBody")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_never_carries_user_info() {
        for (url, host) in [
            ("http://user:secret@example.com:8080/mcp", "example.com:8080"),
            ("http://token@example.com/mcp", "example.com"),
            ("http://example.com:80/mcp", "example.com"),
            ("http://[::1]:3000/mcp", "[::1]:3000"),
            ("http://127.0.0.1:9/mcp?key=v", "127.0.0.1:9"),
        ] {
            let uri: Uri = url.parse().unwrap();
            assert_eq!(host_header(&uri).unwrap(), host, "{url}");
        }
    }

    #[test]
    fn the_callers_framing_headers_never_reach_the_wire() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert("x-tenant", HeaderValue::from_static("a"));
        let uri: Uri = "http://u:p@127.0.0.1:9/mcp?q=1".parse().unwrap();
        let wire = encode(&Method::POST, &uri, &h, &Bytes::from_static(b"{}")).unwrap();
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "POST /mcp?q=1 HTTP/1.1\r\nhost: 127.0.0.1:9\r\nx-tenant: a\r\ncontent-length: 2\r\n\r\n{}"
        );
    }

    /// Every framing a response may use, fed one byte at a time (the worst split the network
    /// can make) and all at once.
    #[test]
    fn chunked_bodies_decode_whatever_the_split() {
        let wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n";
        for step in [1, 3, wire.len()] {
            let mut buf = BytesMut::new();
            let mut state = Chunk::Size;
            let mut out = Vec::new();
            let mut fed = 0;
            loop {
                match chunked(&mut buf, state).unwrap() {
                    Step::Data(d, next) => {
                        out.extend_from_slice(&d);
                        state = next;
                    }
                    Step::Next(next) => state = next,
                    Step::End => break,
                    Step::More => {
                        let end = (fed + step).min(wire.len());
                        assert!(fed < end, "ran out of input at step {step}");
                        buf.extend_from_slice(&wire[fed..end]);
                        fed = end;
                    }
                }
            }
            assert_eq!(out, b"Wikipedia", "split {step}");
            assert!(buf.is_empty());
        }
        // Sizes are hex digits: no sign, no padding, no empty size, no bare LF in an extension.
        for bad in [&b"+5\r\n"[..], b" 5\r\n", b"\r\n", b"5 5\r\n", b"\xc2\xa05\r\n", b"5;a\nb\r\n"] {
            assert!(chunked(&mut BytesMut::from(bad), Chunk::Size).is_err(), "{bad:?}");
        }
        // Trailers are fields ending in CRLF.
        for bad in [&b"bad\r\n\r\n"[..], b"x: a\0b\r\n\r\n", b"x: 1\n\r\n"] {
            assert!(chunked(&mut BytesMut::from(bad), Chunk::Trailers).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let head = |h: &str| format!("HTTP/1.1 200 OK\r\n{h}\r\n");
        let f = |h: &str| parse_head(head(h).as_bytes(), false).map(|p| p.map(|(_, _, f, _)| f));
        let reusable = |h: &str| parse_head(head(h).as_bytes(), false).unwrap().unwrap().3;
        assert_eq!(f("content-length: 12\r\n").unwrap(), Some(Framing::Length(12)));
        assert_eq!(f("content-length: 0\r\n").unwrap(), Some(Framing::Done));
        assert_eq!(f("transfer-encoding: gzip, chunked\r\n").unwrap(), Some(Framing::Chunked(Chunk::Size)));
        assert_eq!(
            f("transfer-encoding: chunked\r\ncontent-length: 5\r\n").unwrap(),
            Some(Framing::Chunked(Chunk::Size))
        );
        assert_eq!(f("transfer-encoding: gzip\r\n").unwrap(), Some(Framing::Close));
        assert_eq!(f("").unwrap(), Some(Framing::Close));
        assert!(f("content-length: 5\r\ncontent-length: 6\r\n").is_err());
        assert!(f("content-length: -1\r\n").is_err());
        // Lengths are ASCII digits: no sign, no Unicode padding; a list only of one length.
        assert!(f("content-length: +5\r\n").is_err());
        assert!(f("content-length: \u{a0}5\r\n").is_err());
        assert!(f("content-length: 5\u{3000}\r\n").is_err());
        assert_eq!(f("content-length: 5, 5\r\n").unwrap(), Some(Framing::Length(5)));
        // A coding is a token: padded with Unicode spaces it is refused (hyper would read such a
        // body to the close, we would have decoded it), as is one in an HTTP/1.0 response.
        assert!(f("transfer-encoding: \u{a0}chunked\r\n").is_err());
        assert!(f("transfer-encoding: gzip\u{3000}, chunked\r\n").is_err());
        assert_eq!(f("transfer-encoding: gzip ,\tchunked \r\n").unwrap(), Some(Framing::Chunked(Chunk::Size)));
        assert!(parse_head(b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", false).is_err());
        // Framed two ways: read by the coding, never reused.
        assert!(!reusable("transfer-encoding: chunked\r\ncontent-length: 5\r\n"));
        assert!(reusable("transfer-encoding: chunked\r\n"));
        assert!(reusable("content-length: 5\r\n"));
        assert_eq!(parse_head(b"HTTP/1.1 204 No Content\r\n\r\n", false).unwrap().unwrap().2, Framing::Done);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false).unwrap().map(|p| p.1), None);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        // The framing is the codec's: the caller gets the other headers only.
        let (parts, _, _, _) =
            parse_head(head("content-length: 2\r\ncontent-type: application/json\r\n").as_bytes(), false)
                .unwrap()
                .unwrap();
        assert_eq!(parts.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["content-type"]);
    }
}
