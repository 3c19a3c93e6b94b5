//! HTTP/1.1 server connections: our own codec for the requests every MCP client sends, hyper for
//! everything else.
//!
//! A client's MCP traffic is POSTs with a `Content-Length` body and answers that are either one
//! JSON document or an event stream. For those the connection's task reads the request into one
//! buffer, parses it in place (header values are slices of that buffer, never copies), calls the
//! handler, and writes a known-length answer — head and body — in a single write. Anything else
//! is handed, with what was read of it, to hyper for the rest of the connection: HTTP/1.0,
//! `Transfer-Encoding` or `Expect` on a request, an `Upgrade`, an h2c preface, a body over
//! `OWN_BODY`, and any request the parser rejects (hyper then answers it as it always did). So
//! the codec here only has to be right about the simple case, and never has to guess.
//!
//! The rules it keeps: `Content-Length`, `Transfer-Encoding` and `Connection` of an answer are
//! set here, never taken from the handler; a stream is sent chunked and each event goes out as it
//! comes; a client that hangs up mid-stream ends the stream; pipelined requests are answered in
//! order; a request head must arrive within `HEAD_TIMEOUT` once it has begun; on shutdown an
//! idle connection closes, a busy one after its answer.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::http::body::{Body, RequestBody};

/// Larger request bodies are streamed by hyper, so the handler can refuse them before they
/// are read whole.
const OWN_BODY: u64 = 1024 * 1024;
/// A request head larger than this is refused (hyper's default limit is about the same).
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// How long a request head may take to arrive once it has begun (slow-loris clients); hyper's
/// default.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// A known-length answer up to this size goes out in one write with its head.
const ONE_WRITE: u64 = 256 * 1024;
const READ_CHUNK: usize = 8 * 1024;

/// How a connection served here ended.
pub enum Ended {
    Closed,
    /// The connection's next request is not one for this codec: hyper takes over, starting with
    /// the bytes already read.
    Handoff(TcpStream, Bytes),
}

/// A request head as parsed: the request without its body, the body's length, and whether the
/// client asked to close the connection after it.
struct Head {
    request: Request<()>,
    body_len: usize,
    close: bool,
}

// One per request, never stored: boxing `Own` would cost an allocation each time.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Own(Head),
    /// Not complete yet.
    Partial,
    /// For hyper.
    Other,
}

/// Serves requests on `stream` until the client closes it, an error ends it, `shutdown` fires
/// (between requests), or a request needs hyper.
pub async fn serve<F, Fut>(mut stream: TcpStream, peer: SocketAddr, handler: &F, shutdown: &CancellationToken) -> Ended
where
    F: Fn(Request<RequestBody>, SocketAddr) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // One wait for the shutdown for the connection's life, not one set up and torn down for
    // each request.
    let stopping = shutdown.cancelled();
    tokio::pin!(stopping);
    loop {
        // 1. Idle until a request begins (or the gateway shuts down).
        if buf.is_empty() {
            buf.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                r = stream.read_buf(&mut buf) => if !matches!(r, Ok(n) if n > 0) { return Ended::Closed },
                () = &mut stopping => return Ended::Closed,
            }
        }
        // 2. The head, whole; then the body.
        // Usually the whole head came with the first read: no timer then.
        let parsed = match parse(&mut buf) {
            Parsed::Own(head) => Ok(Ok(Some(head))),
            Parsed::Other => Ok(Ok(None)),
            Parsed::Partial => tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut buf)).await,
        };
        let head = match parsed {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => return Ended::Handoff(stream, buf.freeze()),
            Ok(Err(Refused::Closed)) => return Ended::Closed,
            Ok(Err(Refused::Status(code))) => return refuse(stream, code).await,
            Err(_) => return refuse(stream, StatusCode::REQUEST_TIMEOUT).await,
        };
        while buf.len() < head.body_len {
            buf.reserve(head.body_len - buf.len());
            if !matches!(stream.read_buf(&mut buf).await, Ok(n) if n > 0) {
                return Ended::Closed;
            }
        }
        let body = buf.split_to(head.body_len).freeze();
        let (parts, ()) = head.request.into_parts();
        let head_only = parts.method == Method::HEAD;
        // 3. The handler, then its answer.
        let resp = handler(Request::from_parts(parts, RequestBody::whole(body)), peer).await;
        let close = head.close || shutdown.is_cancelled();
        if write_response(&mut stream, &mut buf, resp, head_only, close).await.is_err() || close {
            let _ = stream.shutdown().await;
            return Ended::Closed;
        }
    }
}

enum Refused {
    Closed,
    Status(StatusCode),
}

/// Reads until `buf` holds a whole request head, and parses it (its bytes leave `buf`);
/// `None`: the request is hyper's (`buf` untouched).
async fn read_head(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Option<Head>, Refused> {
    loop {
        match parse(buf) {
            Parsed::Own(head) => return Ok(Some(head)),
            Parsed::Other => return Ok(None),
            Parsed::Partial if buf.len() > MAX_HEAD => {
                return Err(Refused::Status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
            }
            Parsed::Partial => {}
        }
        buf.reserve(READ_CHUNK);
        if !matches!(stream.read_buf(buf).await, Ok(n) if n > 0) {
            return Err(Refused::Closed);
        }
    }
}

/// Parses the request head at the start of `buf`; on success its bytes are split off, and the
/// header values point into them.
fn parse(buf: &mut BytesMut) -> Parsed {
    // Uninitialised slots: zeroing a hundred of them cost more than parsing the head.
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if req.version != Some(1) {
        return Parsed::Other;
    }
    let (Some(method), Some(path)) = (req.method, req.path) else { return Parsed::Other };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else { return Parsed::Other };
    // Checked before anything is consumed: a request we cannot take is still whole for hyper.
    let mut body_len: Option<u64> = None;
    let mut close = false;
    let is = |name: &str, n: &HeaderName| name.eq_ignore_ascii_case(n.as_str());
    for h in req.headers.iter() {
        if is(h.name, &TRANSFER_ENCODING) || is(h.name, &EXPECT) || is(h.name, &UPGRADE) {
            return Parsed::Other;
        }
        if is(h.name, &CONTENT_LENGTH) {
            let Some(l) = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<u64>().ok()) else {
                return Parsed::Other;
            };
            if body_len.is_some_and(|b| b != l) || l > OWN_BODY {
                return Parsed::Other;
            }
            body_len = Some(l);
        }
        if is(h.name, &CONNECTION) {
            let v = std::str::from_utf8(h.value).unwrap_or("");
            if v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")) {
                return Parsed::Other;
            }
            close |= v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
    }
    // Where the path and each header sit in `buf`, so that they can be taken as slices of the
    // head once it is split off (its memory does not move).
    if len > usize::from(u16::MAX) {
        return Parsed::Other;
    }
    let start = buf.as_ptr() as usize;
    // Within the head, so under 64 KiB: u16 keeps this array small to clear.
    let span = |s: &[u8]| ((s.as_ptr() as usize - start) as u16, s.len() as u16);
    let mut spans = [((0u16, 0u16), (0u16, 0u16)); MAX_HEADERS];
    let count = req.headers.len();
    for (slot, h) in spans.iter_mut().zip(req.headers.iter()) {
        *slot = (span(h.name.as_bytes()), span(h.value));
    }
    let path = span(path.as_bytes());
    let head = buf.split_to(len).freeze();
    let slice = |(at, n): (u16, u16)| head.slice(usize::from(at)..usize::from(at) + usize::from(n));
    let Ok(uri) = Uri::from_maybe_shared(slice(path)) else {
        // Already consumed; hyper would answer 400 too.
        return Parsed::Own(bad_request());
    };
    let mut headers = HeaderMap::with_capacity(count);
    for &(name, value) in &spans[..count] {
        // httparse accepted both, so neither fails here in practice.
        let name = crate::mcp::headers::name(&slice(name));
        // The length is this codec's (the body comes whole); the handler gets the rest.
        if name.as_ref().is_ok_and(|n| *n == CONTENT_LENGTH) {
            continue;
        }
        match (name, HeaderValue::from_maybe_shared(slice(value))) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => return Parsed::Own(bad_request()),
        }
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Parsed::Own(Head { request, body_len: body_len.unwrap_or(0) as usize, close })
}

/// A request that cannot be served: the handler sees a request for a path nothing answers
/// (404), and the connection closes after it.
fn bad_request() -> Head {
    let mut request = Request::new(());
    *request.uri_mut() = Uri::from_static("/.invalid");
    Head { request, body_len: 0, close: true }
}

async fn refuse(mut stream: TcpStream, code: StatusCode) -> Ended {
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or("")
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.shutdown().await;
    Ended::Closed
}

/// Writes `resp`: a known length in one write with its head, a stream chunked and event by
/// event. While a stream is open the client's side is watched, so that a client hanging up ends
/// it (what arrives meanwhile — a pipelined request — stays in `buf`).
async fn write_response(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    resp: Response<Body>,
    head_only: bool,
    close: bool,
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
        super::date::with(|d| header(&mut out, "date", d.as_bytes()));
    }
    if close {
        header(&mut out, "connection", b"close");
    }
    let chunked = !bodiless && exact.is_none();
    match exact {
        _ if bodiless => {}
        Some(n) => {
            out.extend_from_slice(b"content-length: ");
            crate::transport::http1::decimal(&mut out, n);
            out.extend_from_slice(b"\r\n");
        }
        None => header(&mut out, "transfer-encoding", b"chunked"),
    }
    out.extend_from_slice(b"\r\n");
    if head_only || bodiless {
        return stream.write_all(&out).await;
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
        return stream.write_all(&out).await;
    }
    stream.write_all(&out).await?;
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
            stream.write_all(&chunk).await?;
        } else {
            stream.write_all(&data).await?;
        }
    }
    if chunked {
        stream.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
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
    use super::*;

    fn parsed(wire: &str) -> Parsed {
        parse(&mut BytesMut::from(wire))
    }

    #[test]
    fn what_this_codec_takes_and_what_it_leaves_to_hyper() {
        let own = |w: &str| matches!(parsed(w), Parsed::Own(_));
        let other = |w: &str| matches!(parsed(w), Parsed::Other);
        assert!(own("POST /mcp HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\n{}"));
        assert!(own("GET /mcp HTTP/1.1\r\nhost: a\r\n\r\n"));
        assert!(matches!(parsed("POST /mcp HTTP/1.1\r\nhost: a\r\ncontent-le"), Parsed::Partial));
        for w in [
            "POST /mcp HTTP/1.0\r\ncontent-length: 2\r\n\r\n{}",
            "POST /mcp HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "POST /mcp HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n",
            "GET /mcp HTTP/1.1\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n",
            "POST /mcp HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n",
            "POST /mcp HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
            "POST /mcp HTTP/1.1\r\ncontent-length: 99999999\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            assert!(other(w), "{w:?}");
        }
    }

    #[test]
    fn a_parsed_head_keeps_its_headers_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            "POST /mcp?x=1 HTTP/1.1\r\nHost: a:1\r\nMcp-Session-Id: s1\r\nConnection: close\r\ncontent-length: 2\r\n\r\n{}",
        );
        let Parsed::Own(head) = parse(&mut buf) else { panic!("not parsed") };
        assert_eq!(&buf[..], b"{}");
        assert_eq!(head.body_len, 2);
        assert!(head.close);
        assert_eq!(head.request.method(), Method::POST);
        assert_eq!(head.request.uri().path(), "/mcp");
        assert_eq!(head.request.uri().query(), Some("x=1"));
        assert_eq!(head.request.headers()["mcp-session-id"], "s1");
        assert_eq!(head.request.headers()["host"], "a:1");
        // The length was the codec's to act on; the handler gets the body whole.
        assert!(!head.request.headers().contains_key("content-length"));
    }
}
