//! `mcpgate stdio URL`: a bridge for clients that launch a command. Newline-delimited JSON-RPC on
//! stdin/stdout (logs only on stderr), relayed to a remote MCP server through the same engine as
//! `connect`, in-process: each stdin message becomes a request to the `Proxy`, whose answer
//! (JSON, or an SSE stream of related messages) goes back out as lines. Session recovery, the
//! credential and its 401 retry, HTTP+SSE upstreams and the modern era come with the engine.
//!
//! Requests run concurrently (a long tool call must not block the client's answer to an
//! elicitation it triggers); notifications and responses are sent in order, one after another.
//! After `initialize`, a GET stream carries what the server sends on its own.
//!
//! What waits for the client to read its stdout is a bounded queue (`mcp::queue`, `OUT`
//! messages): a server flooding logs to a client that does not read drops the oldest logs,
//! never a response. Responses answer the client's own requests; while `OUT` of them wait,
//! stdin is not read, so a client that writes requests and never reads is slowed to its own
//! pace instead of growing the bridge.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connect::{Proxy, StartError, UpstreamOptions};
use crate::http::body::{Body, BoxError};
use crate::http::guard::Guard;
use crate::jsonrpc::{self, Payload, codes};
use crate::mcp::era::{self, Detected, Era};
use crate::mcp::headers::{LAST_EVENT_ID, PROTOCOL_VERSION, SESSION_ID};
use crate::mcp::queue;
use crate::transport::sse;

mod modern;

/// The engine's path; never on a network.
pub(crate) const PATH: &str = "/mcp";
/// Largest message accepted on stdin.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// How long in-flight requests may finish after stdin closes.
const DRAIN: Duration = Duration::from_secs(30);
/// How many times a response stream that ended unanswered is resumed.
const RESUME_ATTEMPTS: usize = 5;
/// Messages waiting for the client to read its stdout, at most; as many responses waiting stop
/// the reading of stdin until the client reads.
const OUT: usize = 1024;

/// How a response stream ended: what resuming it needs.
#[derive(Default)]
struct StreamEnd {
    last_event_id: Option<String>,
    /// The server's `retry` (ms): how long to wait before resuming.
    retry: Option<u64>,
    relayed: usize,
}

pub struct Options {
    pub upstream: UpstreamOptions,
    pub banner: bool,
}

struct Bridge {
    proxy: Arc<Proxy>,
    out: queue::Sender<Bytes>,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    listening: Mutex<bool>,
    shutdown: CancellationToken,
    /// Set when the server speaks only the modern era (see `modern`).
    modern: std::sync::OnceLock<Arc<modern::Modern>>,
}

pub async fn run(opts: Options, shutdown: CancellationToken) -> Result<(), StartError> {
    let proxy =
        crate::connect::engine(&opts.upstream, PATH, Guard::new(true, &[], &[]), MAX_MESSAGE, shutdown.clone()).await?;
    if opts.banner {
        tracing::info!("bridging stdio ↔ {}", proxy.upstream.display);
    }
    let (out, lines_out) = queue::bounded(OUT);
    let writer = tokio::spawn(write_lines(lines_out));
    let bridge = Arc::new(Bridge {
        proxy,
        out,
        session: Mutex::new(None),
        version: Mutex::new(None),
        listening: Mutex::new(false),
        shutdown: shutdown.clone(),
        modern: std::sync::OnceLock::new(),
    });
    let mut in_flight = JoinSet::new();
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        // Finished requests are let go of as they finish, not kept until stdin closes.
        while in_flight.try_join_next().is_some() {}
        // The client is not reading its stdout: neither is the bridge reading its stdin.
        while bridge.out.responses() >= OUT && !shutdown.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        line.clear();
        let mut limited = (&mut stdin).take(MAX_MESSAGE as u64 + 1);
        let read = tokio::select! {
            r = limited.read_until(b'\n', &mut line) => r,
            () = shutdown.cancelled() => break,
        };
        match read {
            Ok(0) => break,
            Ok(_) if line.len() > MAX_MESSAGE => {
                bridge.emit(jsonrpc::error_response(None, codes::INVALID_REQUEST, "message too large"));
                // Skip the rest of the oversized line.
                let mut rest = Vec::new();
                let _ = stdin.read_until(b'\n', &mut rest).await;
            }
            Ok(_) => bridge.clone().dispatch(Bytes::copy_from_slice(line.trim_ascii()), &mut in_flight).await,
            Err(e) => {
                tracing::warn!("reading stdin failed: {e}");
                break;
            }
        }
    }
    // stdin closed: let what was asked finish, then end the session upstream.
    let _ = tokio::time::timeout(DRAIN, async { while in_flight.join_next().await.is_some() {} }).await;
    shutdown.cancel();
    bridge.proxy.end_all_sessions().await;
    drop(bridge);
    let _ = writer.await;
    Ok(())
}

/// Writes each message with its own write and flush: a bridge must not hold a message back.
/// (The TypeScript SDK's stdio client handles notifications a microtask later than responses, so
/// a progress notification it reads in the same chunk as its request's result is dropped. It does
/// that with servers it launches directly too: the last of three progress notifications was lost
/// in 5 of 12 parallel runs against server-everything's own stdio mode, 7 of 12 through this bridge.)
async fn write_lines(mut lines: queue::Receiver<Bytes>) {
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.recv().await {
        let written = async {
            let mut framed = Vec::with_capacity(line.len() + 1);
            framed.extend_from_slice(&line);
            framed.push(b'\n');
            stdout.write_all(&framed).await?;
            stdout.flush().await?;
            std::io::Result::Ok(())
        };
        if let Err(e) = written.await {
            tracing::warn!("writing stdout failed: {e}");
            return;
        }
    }
    let _ = stdout.flush().await;
}

impl Bridge {
    /// One message out, on one line (a message spread over several `data:` lines is re-encoded).
    fn emit(&self, msg: impl Into<Bytes>) {
        let msg: Bytes = msg.into();
        let msg = if msg.contains(&b'\n') {
            match serde_json::from_slice::<serde_json::Value>(&msg) {
                Ok(v) => Bytes::from(v.to_string()),
                Err(_) => return,
            }
        } else {
            msg
        };
        self.out.push(msg);
    }

    async fn dispatch(self: Arc<Self>, body: Bytes, in_flight: &mut JoinSet<()>) {
        if body.is_empty() {
            return;
        }
        if let Some(m) = self.modern.get().cloned() {
            return self.modern_dispatch(m, body, in_flight).await;
        }
        let (is_init, pending, id) = match Payload::parse(&body) {
            Ok(p) => (p.is_initialize(), p.request_ids(), p.error_id().map(ToOwned::to_owned)),
            Err(e) => {
                self.emit(jsonrpc::error_response(None, codes::PARSE_ERROR, &e.to_string()));
                return;
            }
        };
        let has_requests = !pending.is_empty();
        let exchange = self.clone().exchange(body, pending, is_init, id);
        if has_requests {
            in_flight.spawn(exchange);
        } else {
            exchange.await;
        }
    }

    fn request(
        &self,
        method: Method,
        body: Bytes,
    ) -> Request<http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>> {
        let body = if body.is_empty() { Empty::new().boxed_unsync() } else { Full::new(body).boxed_unsync() };
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = http::Uri::from_static(PATH);
        let h = req.headers_mut();
        h.insert(HOST, HeaderValue::from_static("localhost"));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        if let Some(s) = self.session.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            h.insert(SESSION_ID, s);
        }
        if let Some(v) = self.version.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            h.insert(PROTOCOL_VERSION, v);
        }
        req
    }

    /// Sends one stdin message; `pending` holds the ids of the requests in it.
    async fn exchange(
        self: Arc<Self>,
        body: Bytes,
        mut pending: Vec<String>,
        is_init: bool,
        id: Option<Box<serde_json::value::RawValue>>,
    ) {
        let resp = if is_init {
            match self.initialize(body.clone()).await {
                Ok(resp) => resp,
                Err(version) => return self.start_modern(&body, version.to_owned()).await,
            }
        } else {
            self.proxy.clone().handle(self.request(Method::POST, body)).await
        };
        let ok = resp.status().is_success();
        let status = resp.status();
        if pending.is_empty() {
            // Notifications and responses get 202 and no answer; a server that answers anyway
            // (some reply 200 with an id-less body) must not put that on stdout.
            if !ok {
                tracing::debug!("the server answered a notification or response with {status}");
            }
            return;
        }
        if is_init && ok {
            *self.session.lock().unwrap_or_else(|p| p.into_inner()) = resp.headers().get(SESSION_ID).cloned();
        }
        let end = self.relay(resp, &mut pending, false).await;
        if end.relayed == 0 && !ok && status != StatusCode::ACCEPTED {
            // Not a JSON-RPC answer (e.g. an upstream's bare 401): answer the request ourselves.
            let message = format!("upstream answered HTTP {status}");
            self.emit(jsonrpc::error_response(id.as_deref(), codes::UPSTREAM_PROTOCOL, &message));
            pending.clear();
        }
        if !pending.is_empty() {
            self.resume(end, pending).await;
        }
        if is_init && ok {
            self.clone().start_listening();
        }
    }

    /// Sends the client's `initialize`, with the revision it asks for in `MCP-Protocol-Version`
    /// (so that a modern-only server can tell what it is talking to), and tells the server's era
    /// from the answer (`era::detect`). A legacy server's answer comes back whole, to be relayed
    /// as it is (with the negotiated version learnt); `Err` names the revision to speak to a
    /// modern-only server. A 400, 404 or 405 that is no modern error is relayed too: the engine
    /// has tried HTTP+SSE already (`--transport auto`), and the client sees the refusal.
    ///
    /// Some legacy servers check the header on `initialize` too, against the revisions they know:
    /// one older than the client refuses it (400), where without the header it would negotiate.
    /// Such a refusal is followed by the `initialize` once more, without the header, as before.
    async fn initialize(&self, init: Bytes) -> Result<Response<Body>, &'static str> {
        let asked = asked_version(&init);
        let (mut resp, mut answer) = self.send_initialize(init.clone(), asked.clone()).await;
        let mut detected = era::detect(resp.status().as_u16(), &answer);
        if detected == Detected::HttpSse && resp.status() == StatusCode::BAD_REQUEST && asked.is_some() {
            tracing::debug!("initialize with MCP-Protocol-Version refused (400); sending it again without");
            (resp, answer) = self.send_initialize(init, None).await;
            detected = era::detect(resp.status().as_u16(), &answer);
        }
        match detected {
            Detected::Modern(version) => {
                if resp.status().is_success() {
                    self.forget_engine_session(resp.headers().get(SESSION_ID).cloned()).await;
                }
                Err(version)
            }
            Detected::AsIs | Detected::HttpSse => {
                if resp.status().is_success() {
                    self.learn_version(&answer);
                }
                Ok(resp)
            }
        }
    }

    /// One `initialize` through the engine, with `version` as `MCP-Protocol-Version` (or none),
    /// read as far as its answer (`read_answer`).
    async fn send_initialize(&self, init: Bytes, version: Option<HeaderValue>) -> (Response<Body>, Bytes) {
        let mut req = self.request(Method::POST, init);
        req.headers_mut().remove(PROTOCOL_VERSION);
        if let Some(v) = version {
            req.headers_mut().insert(PROTOCOL_VERSION, v);
        }
        read_answer(self.proxy.clone().handle(req).await).await
    }

    /// The engine opened a session for an `initialize` a modern-only server answered with a
    /// 2xx: it is of no use (the modern era has none), so it is ended, in-process.
    async fn forget_engine_session(&self, id: Option<HeaderValue>) {
        let Some(id) = id else { return };
        let mut req = self.request(Method::DELETE, Bytes::new());
        req.headers_mut().insert(SESSION_ID, id);
        drop(self.proxy.clone().handle(req).await);
    }

    /// A response stream ended before answering every request. Since 2025-11-25 a server may
    /// close a stream on purpose and expect the client to resume it: wait the stream's `retry`,
    /// then GET with `Last-Event-ID`, until the answers arrive (a few attempts). Without an event
    /// id there is nothing to resume: the requests are answered with an error, never left hanging.
    async fn resume(&self, mut end: StreamEnd, mut pending: Vec<String>) {
        for _ in 0..RESUME_ATTEMPTS {
            let Some(last) = end.last_event_id.clone().and_then(|i| HeaderValue::try_from(i).ok()) else { break };
            let wait = Duration::from_millis(end.retry.unwrap_or(1000).min(30_000));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.cancelled() => return,
            }
            let mut req = self.stream_request();
            req.headers_mut().insert(LAST_EVENT_ID, last);
            let resp = self.proxy.clone().handle(req).await;
            if resp.status() != StatusCode::OK {
                tracing::debug!("resuming a response stream was refused ({})", resp.status());
                break;
            }
            let next = self.relay(resp, &mut pending, true).await;
            if pending.is_empty() {
                return;
            }
            end = StreamEnd {
                last_event_id: next.last_event_id.or(end.last_event_id),
                retry: next.retry.or(end.retry),
                relayed: 0,
            };
        }
        for id in pending {
            let raw = serde_json::value::RawValue::from_string(id).ok();
            self.emit(jsonrpc::error_response(
                raw.as_deref(),
                codes::UPSTREAM_PROTOCOL,
                "the server ended the response stream without answering",
            ));
        }
    }

    /// Writes every JSON-RPC message of a response (JSON body or SSE events) to stdout, crossing
    /// answered requests off `pending`; with `until_answered`, stops reading once none is left
    /// (a resumed stream may stay open).
    async fn relay(&self, resp: Response<Body>, pending: &mut Vec<String>, until_answered: bool) -> StreamEnd {
        let is_sse = is_event_stream(resp.headers());
        let mut body = resp.into_body();
        let mut end = StreamEnd::default();
        let deliver = |msg: Bytes, end: &mut StreamEnd, pending: &mut Vec<String>| {
            let Ok(payload) = Payload::parse(&msg) else { return };
            for m in payload.messages() {
                if m.kind() == jsonrpc::Kind::Response
                    && let Some(id) = m.id
                {
                    pending.retain(|p| p != id.get());
                }
            }
            self.emit(msg);
            end.relayed += 1;
        };
        if !is_sse {
            if let Ok(bytes) = body.collect().await.map(|c| c.to_bytes()) {
                deliver(bytes, &mut end, pending);
            }
            return end;
        }
        let mut parser = sse::Parser::new();
        let mut events = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Some(data) = frame.data_ref() else { continue };
            parser.feed(data, &mut events);
            for ev in events.drain(..) {
                if ev.id.is_some() {
                    end.last_event_id = ev.id.clone();
                }
                if ev.retry.is_some() {
                    end.retry = ev.retry;
                }
                if !ev.data.trim().is_empty() {
                    deliver(Bytes::from(ev.data), &mut end, pending);
                }
            }
            if until_answered && pending.is_empty() {
                break;
            }
        }
        end
    }

    /// A GET for an event stream of the session.
    fn stream_request(&self) -> Request<http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>> {
        let mut req = self.request(Method::GET, Bytes::new());
        req.headers_mut().remove(CONTENT_TYPE);
        req.headers_mut().insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        req
    }

    /// Sends `MCP-Protocol-Version` from now on, as the initialize result negotiated it.
    fn learn_version(&self, msg: &[u8]) {
        #[derive(Deserialize)]
        struct Init {
            result: Option<Version>,
        }
        #[derive(Deserialize)]
        struct Version {
            #[serde(rename = "protocolVersion")]
            protocol_version: String,
        }
        if let Some(v) = serde_json::from_slice::<Init>(msg).ok().and_then(|i| i.result)
            && let Ok(v) = HeaderValue::try_from(v.protocol_version)
        {
            *self.version.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
        }
    }

    /// Opens (once) the GET stream for messages the server sends on its own, and keeps it open:
    /// reopened with `Last-Event-ID` when it ends, with backoff when refused.
    fn start_listening(self: Arc<Self>) {
        if std::mem::replace(&mut *self.listening.lock().unwrap_or_else(|p| p.into_inner()), true) {
            return;
        }
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            let mut last_event: Option<String> = None;
            while !self.shutdown.is_cancelled() {
                let mut req = self.stream_request();
                if let Some(id) = last_event.as_deref().and_then(|i| HeaderValue::try_from(i).ok()) {
                    req.headers_mut().insert(LAST_EVENT_ID, id);
                }
                let resp = self.proxy.clone().handle(req).await;
                match resp.status() {
                    StatusCode::OK => {
                        backoff = Duration::from_millis(500);
                        last_event = self.relay(resp, &mut Vec::new(), false).await.last_event_id.or(last_event);
                    }
                    // The server offers no GET stream: nothing to listen to.
                    StatusCode::METHOD_NOT_ALLOWED => return,
                    status => {
                        tracing::debug!("the server's GET stream was refused ({status}); retrying in {backoff:?}");
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = self.shutdown.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// The revision a client's `initialize` asks for, as the header for it: a legacy revision this
/// gateway knows (the engine refuses any other, and a modern one on `initialize` is a
/// contradiction modern servers refuse with -32020).
fn asked_version(init: &[u8]) -> Option<HeaderValue> {
    let init: serde_json::Value = serde_json::from_slice(init).ok()?;
    let asked = init.pointer("/params/protocolVersion")?.as_str()?;
    (era::era_of(Some(asked)) == Ok(Era::Legacy)).then(|| HeaderValue::from_str(asked).ok())?
}

/// Reads a response as far as its JSON-RPC response message (a JSON body whole; an event stream
/// up to the event that carries it) and gives it back whole, to be relayed as it is, with that
/// message (empty when there is none).
async fn read_answer(resp: Response<Body>) -> (Response<Body>, Bytes) {
    let (parts, mut body) = resp.into_parts();
    if !is_event_stream(&parts.headers) {
        let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        return (Response::from_parts(parts, crate::http::body::full(bytes.clone())), bytes);
    }
    let mut read = VecDeque::new();
    let mut parser = sse::Parser::new();
    let mut events = Vec::new();
    let mut answer = Bytes::new();
    let mut rest = None;
    // A body that fails ends where it failed, as `relay` would read it.
    while let Some(Ok(frame)) = body.frame().await {
        let Some(data) = frame.data_ref() else { continue };
        read.push_back(data.clone());
        parser.feed(data, &mut events);
        let response = |ev: &sse::Event| {
            Payload::parse(ev.data.as_bytes())
                .is_ok_and(|p| p.messages().iter().any(|m| m.kind() == jsonrpc::Kind::Response))
        };
        if let Some(ev) = events.drain(..).find(response) {
            answer = Bytes::from(ev.data);
            rest = Some(body);
            break;
        }
    }
    (Response::from_parts(parts, ReadAhead { read, rest }.boxed_unsync()), answer)
}

/// A body read ahead: what was read, then the rest.
struct ReadAhead {
    read: VecDeque<Bytes>,
    rest: Option<Body>,
}

impl http_body::Body for ReadAhead {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(data) = self.read.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }
}
