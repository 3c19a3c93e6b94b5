//! Each message sent whole to our codecs (on real sockets) and to hyper's, and what each read.

use super::grammar::*;
use crate::http::body::{self, RequestBody};
use crate::http::conns::Conns;
use crate::http::limits::{Edge, Limits};
use crate::http::{framing, h1};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Running them.

pub(super) fn runner() -> TestRunner {
    let mut config = Config { failure_persistence: None, ..Config::default() };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x6d63_7067);
    }
    TestRunner::new(config)
}

pub(super) fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

/// What a side did with one request, or the response it read.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Read {
    /// Read it, with this status and body.
    Body(u16, Vec<u8>),
    /// Refused it: the status, or how it failed.
    Refused(String),
}

impl std::fmt::Debug for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Read::Body(status, body) => write!(f, "{status} with the body \"{}\"", body.escape_ascii()),
            Read::Refused(why) => write!(f, "refused ({why})"),
        }
    }
}

/// What a run met: messages both sides read (and how many of them chunked), and those we refuse
/// where hyper reads them, by our reason: how many, and the shortest.
#[derive(Default)]
pub(super) struct Tally {
    read: Cell<usize>,
    chunked: Cell<usize>,
    stricter: RefCell<BTreeMap<String, (usize, String)>>,
}

impl Tally {
    pub(super) fn both_read(&self, msg: &Message) {
        self.read.set(self.read.get() + 1);
        if msg.is_chunked() {
            self.chunked.set(self.chunked.get() + 1);
        }
    }

    pub(super) fn stricter(&self, why: String, msg: &Message) {
        let mut seen = self.stricter.borrow_mut();
        let example = format!("{msg:?}");
        let entry = seen.entry(why).or_insert_with(|| (0, example.clone()));
        entry.0 += 1;
        // The shortest is the clearest.
        if example.len() < entry.1.len() {
            entry.1 = example;
        }
    }

    pub(super) fn print(&self, what: &str, cases: u32) {
        let seen = self.stricter.borrow();
        let stricter: usize = seen.values().map(|(n, _)| n).sum();
        println!(
            "{what}: {cases} cases; both read {} ({} of them chunked); we refuse {stricter} that hyper reads (stricter), by our reason:",
            self.read.get(),
            self.chunked.get(),
        );
        for (why, (n, example)) in seen.iter() {
            println!("  {n:4} × {why}\n         e.g. {example}");
        }
    }
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(s: &[u8]) -> Vec<u8> {
    s.chunks(2).filter_map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok()).collect()
}

/// Writes `wire` whole, closes the writing half, and reads what comes back until the other side
/// closes (or resets: what arrived before is kept).
pub(super) async fn talk(mut io: impl AsyncRead + AsyncWrite + Unpin, wire: &[u8]) -> Vec<u8> {
    // The other side may refuse and close before it has read everything.
    let _ = io.write_all(wire).await;
    let _ = io.shutdown().await;
    let mut out = Vec::new();
    while let Ok(n) = io.read_buf(&mut out).await {
        if n == 0 {
            break;
        }
    }
    out
}

/// The answers to the requests of a connection, in order, as both servers here give them: the
/// body read comes back hex-encoded in `x-body`; interim answers are skipped; a refusal ends the
/// connection.
pub(super) fn answers(mut out: &[u8]) -> Vec<Read> {
    let mut list = Vec::new();
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(len)) = resp.parse(out) else {
            if list.last().is_none_or(|r| matches!(r, Read::Body(..))) {
                list.push(Read::Refused("closed without an answer".into()));
            }
            return list;
        };
        let code = resp.code.unwrap_or(0);
        let field = |n: &str| resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case(n)).map(|h| h.value);
        let length = field("content-length").and_then(framing::content_length).unwrap_or(0) as usize;
        let read = match field("x-body") {
            Some(b) if code == 200 => Read::Body(code, unhex(b)),
            _ => Read::Refused(code.to_string()),
        };
        out = &out[(len + length).min(out.len())..];
        if (100..200).contains(&code) {
            continue;
        }
        let refused = matches!(read, Read::Refused(_));
        list.push(read);
        if refused {
            return list;
        }
    }
}

/// Our server side: `h1::serve` on a socket, with a handler that reads the body whole.
pub(super) struct Ours {
    listener: TcpListener,
    conns: Arc<Conns>,
    edge: Edge,
    shutdown: CancellationToken,
}

impl Ours {
    pub(super) async fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        Ours { listener, conns: Arc::default(), edge: Edge::new(Limits::default()), shutdown: CancellationToken::new() }
    }

    pub(super) async fn serve(&self, wire: &[u8]) -> Vec<Read> {
        let addr = self.listener.local_addr().expect("an address");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), self.listener.accept());
        let (client, (stream, peer)) = (client.expect("connected"), accepted.expect("accepted"));
        let ticket = self.conns.admit(peer.ip(), &Limits::default(), 1024).expect("room for a connection");
        let conn = h1::Conn { peer, ticket: &ticket, edge: &self.edge, shutdown: &self.shutdown };
        let handler = |req: Request<RequestBody>, _: SocketAddr| async move {
            let answer = match body::read_limited(req.into_body(), usize::MAX).await {
                Ok(b) => Response::builder().header("x-body", hex(&b)),
                Err(_) => Response::builder().status(500),
            };
            answer.body(body::empty()).expect("a valid response")
        };
        let (_, out) = tokio::join!(h1::serve(stream, conn, &handler), talk(client, wire));
        answers(&out)
    }

    /// Our client: `transport::http1` (a new pool each time), against a server that answers
    /// `wire` and closes.
    pub(super) async fn fetch(&self, wire: &[u8]) -> Read {
        let addr = self.listener.local_addr().expect("an address");
        let client = crate::transport::http_client::build(Duration::from_secs(5));
        let req = Request::get(format!("http://{addr}/mcp")).body(Full::new(Bytes::new())).expect("a valid request");
        let upstream = async {
            let Ok((mut s, _)) = self.listener.accept().await else { return };
            let _ = read_head(&mut s).await;
            let _ = s.write_all(wire).await;
            let _ = s.shutdown().await;
        };
        let fetch = async { read_response(client.request(req).await).await };
        tokio::join!(upstream, fetch).1
    }
}

/// Reads a request head (so that closing after the answer resets nothing).
pub(super) async fn read_head(io: &mut (impl AsyncRead + Unpin)) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if io.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(())
}

/// hyper's server on a pipe, with a service that reads the body whole.
pub(super) async fn hyper_serves(wire: &[u8]) -> Vec<Read> {
    let (client, server) = tokio::io::duplex(1 << 16);
    let service = service_fn(|req: Request<Incoming>| async move {
        let b = req.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>(
            Response::builder().header("x-body", hex(&b)).body(Empty::<Bytes>::new()).expect("a valid response"),
        )
    });
    // The client closes its writing half after the request: hyper must still answer.
    let conn =
        hyper::server::conn::http1::Builder::new().half_close(true).serve_connection(TokioIo::new(server), service);
    let (_, out) = tokio::join!(conn, talk(client, wire));
    answers(&out)
}

/// hyper's client on a pipe, against a server that answers `wire` and closes.
pub(super) async fn hyper_fetches(wire: &[u8]) -> Read {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(client)).await
    else {
        return Read::Refused("no handshake".into());
    };
    let upstream = async move {
        let _ = read_head(&mut server).await;
        let _ = server.write_all(wire).await;
        let _ = server.shutdown().await;
    };
    let fetch = async move {
        let req = Request::get("/mcp").header("host", "a").body(Empty::<Bytes>::new()).expect("a valid request");
        read_response(sender.send_request(req).await).await
    };
    tokio::join!(conn, upstream, fetch).2
}

pub(super) fn refusal(read: &Read) -> &str {
    match read {
        Read::Refused(why) => why,
        Read::Body(..) => "read",
    }
}

pub(super) async fn within<T>(what: &str, f: impl Future<Output = T>) -> Result<T, TestCaseError> {
    tokio::time::timeout(HANG, f).await.map_err(|_| TestCaseError::fail(format!("{what} hung")))
}

/// What a client read: the status and the whole body, or why it gave up.
async fn read_response<B, E>(sent: Result<Response<B>, E>) -> Read
where
    B: http_body::Body,
    B::Error: std::fmt::Display,
    E: std::fmt::Display,
{
    let resp = match sent {
        Ok(resp) => resp,
        Err(e) => return Read::Refused(e.to_string()),
    };
    let status = resp.status().as_u16();
    match resp.into_body().collect().await {
        Ok(b) => Read::Body(status, b.to_bytes().to_vec()),
        Err(e) => Read::Refused(format!("{status}, then the body: {e}")),
    }
}
