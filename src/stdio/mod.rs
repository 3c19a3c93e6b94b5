//! `mcpgate stdio URL`: a bridge for clients that launch a command. Newline-delimited JSON-RPC on
//! stdin/stdout (logs only on stderr), relayed to a remote MCP server through the same engine as
//! `connect`, in-process: each stdin message becomes a request to the `Proxy`, whose answer
//! (JSON, or an SSE stream of related messages) goes back out as lines. Session recovery, the
//! credential and its 401 retry, HTTP+SSE upstreams and the modern era come with the engine.
//!
//! Requests run concurrently (a long tool call must not block the client's answer to an
//! elicitation it triggers); notifications and responses are sent in order, one after another.
//! After `initialize`, a GET stream carries what the server sends on its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connect::{Proxy, StartError, UpstreamOptions};
use crate::http::body::Body;
use crate::http::guard::Guard;
use crate::jsonrpc::{self, Payload, codes};
use crate::mcp::headers::{LAST_EVENT_ID, PROTOCOL_VERSION, SESSION_ID};
use crate::transport::sse;

/// The engine's path; never on a network.
const PATH: &str = "/mcp";
/// Largest message accepted on stdin.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// How long in-flight requests may finish after stdin closes.
const DRAIN: Duration = Duration::from_secs(30);

pub struct Options {
    pub upstream: UpstreamOptions,
    pub banner: bool,
}

struct Bridge {
    proxy: Arc<Proxy>,
    out: mpsc::UnboundedSender<Bytes>,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    listening: Mutex<bool>,
    shutdown: CancellationToken,
}

pub async fn run(opts: Options, shutdown: CancellationToken) -> Result<(), StartError> {
    let proxy =
        crate::connect::engine(&opts.upstream, PATH, Guard::new(true, &[], &[]), MAX_MESSAGE, shutdown.clone()).await?;
    if opts.banner {
        tracing::info!("bridging stdio ↔ {}", proxy.upstream.display);
    }
    let (out, lines_out) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_lines(lines_out));
    let bridge = Arc::new(Bridge {
        proxy,
        out,
        session: Mutex::new(None),
        version: Mutex::new(None),
        listening: Mutex::new(false),
        shutdown: shutdown.clone(),
    });
    let mut in_flight = JoinSet::new();
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    loop {
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
async fn write_lines(mut lines: mpsc::UnboundedReceiver<Bytes>) {
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
        let _ = self.out.send(msg);
    }

    async fn dispatch(self: Arc<Self>, body: Bytes, in_flight: &mut JoinSet<()>) {
        if body.is_empty() {
            return;
        }
        let (is_init, has_requests, id) = match Payload::parse(&body) {
            Ok(p) => (p.is_initialize(), p.has_requests(), p.error_id().map(ToOwned::to_owned)),
            Err(e) => {
                self.emit(jsonrpc::error_response(None, codes::PARSE_ERROR, &e.to_string()));
                return;
            }
        };
        let exchange = self.clone().exchange(body, is_init, id);
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

    async fn exchange(self: Arc<Self>, body: Bytes, is_init: bool, id: Option<Box<serde_json::value::RawValue>>) {
        let resp = self.proxy.clone().handle(self.request(Method::POST, body)).await;
        let ok = resp.status().is_success();
        if is_init && ok {
            *self.session.lock().unwrap_or_else(|p| p.into_inner()) = resp.headers().get(SESSION_ID).cloned();
        }
        let status = resp.status();
        let mut first = true;
        let relayed = self
            .relay(resp, |msg| {
                if is_init && ok && std::mem::take(&mut first) {
                    self.learn_version(msg);
                }
            })
            .await;
        if relayed == 0 && !ok && status != StatusCode::ACCEPTED {
            // Not a JSON-RPC answer (e.g. an upstream's bare 401): answer the request ourselves.
            let message = format!("upstream answered HTTP {status}");
            self.emit(jsonrpc::error_response(id.as_deref(), codes::UPSTREAM_PROTOCOL, &message));
        }
        if is_init && ok {
            self.clone().start_listening();
        }
    }

    /// Writes every JSON-RPC message of a response (JSON body or SSE events) to stdout; returns how
    /// many. `seen` looks at each first.
    async fn relay(&self, resp: Response<Body>, mut seen: impl FnMut(&[u8])) -> usize {
        let is_sse = resp.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let mut body = resp.into_body();
        let mut count = 0;
        if !is_sse {
            let Ok(bytes) = body.collect().await.map(|c| c.to_bytes()) else { return 0 };
            if Payload::parse(&bytes).is_ok() {
                seen(&bytes);
                self.emit(bytes);
                count += 1;
            }
            return count;
        }
        let mut parser = sse::Parser::new();
        let mut events = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Some(data) = frame.data_ref() else { continue };
            parser.feed(data, &mut events);
            for ev in events.drain(..) {
                if ev.data.trim().is_empty() {
                    continue; // a priming event
                }
                seen(ev.data.as_bytes());
                self.emit(ev.data);
                count += 1;
            }
        }
        count
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
        if let Some(v) = serde_json::from_slice::<Init>(msg).ok().and_then(|i| i.result) {
            if let Ok(v) = HeaderValue::try_from(v.protocol_version) {
                *self.version.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
            }
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
                let mut req = self.request(Method::GET, Bytes::new());
                req.headers_mut().remove(CONTENT_TYPE);
                req.headers_mut().insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
                if let Some(id) = last_event.as_deref().and_then(|i| HeaderValue::try_from(i).ok()) {
                    req.headers_mut().insert(LAST_EVENT_ID, id);
                }
                let resp = self.proxy.clone().handle(req).await;
                match resp.status() {
                    StatusCode::OK => {
                        backoff = Duration::from_millis(500);
                        last_event = self.relay_stream(resp).await.or(last_event);
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

    /// Relays a GET stream until it ends; returns the last event id seen.
    async fn relay_stream(&self, resp: Response<Body>) -> Option<String> {
        let mut body = resp.into_body();
        let mut parser = sse::Parser::new();
        let mut events = Vec::new();
        let mut last = None;
        while let Some(Ok(frame)) = body.frame().await {
            let Some(data) = frame.data_ref() else { continue };
            parser.feed(data, &mut events);
            for ev in events.drain(..) {
                if ev.id.is_some() {
                    last = ev.id.clone();
                }
                if !ev.data.trim().is_empty() {
                    self.emit(ev.data);
                }
            }
        }
        last
    }
}
