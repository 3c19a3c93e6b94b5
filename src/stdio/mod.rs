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
//! A client is handed to the gateway's translation as `connect` hands one (connect/translate.rs,
//! which tells the server's era from its answer to the client's `initialize`): a 2025 client in
//! front of a server that speaks only 2026-07-28 — its session, requests, GET stream and end go
//! there as an HTTP client's would, and the translation turns input-required results into the
//! client's elicitation, sampling and roots requests, and the server's `subscriptions/listen`
//! news into list changes — and a 2026-07-28 client in front of a 2025 server
//! (`modern_client`).
//!
//! What waits for the client to read its stdout is a bounded queue (`mcp::queue`, `OUT`
//! messages): a server flooding logs to a client that does not read drops the oldest logs,
//! never a response. Responses answer the client's own requests; while `OUT` of them wait,
//! stdin is not read, so a client that writes requests and never reads is slowed to its own
//! pace instead of growing the bridge.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Response, StatusCode};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connect::{Forward, Proxy, StartError, UpstreamOptions};
use crate::error::{Error, Kind};
use crate::http::body::Body;
use crate::http::wire;
use crate::jsonrpc::{self, Payload};
use crate::mcp::headers::SESSION_ID;
use crate::mcp::queue;
use crate::transport::answer;

mod modern_client;

/// Largest message accepted on stdin.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// How long in-flight requests may finish after stdin closes.
const DRAIN: Duration = Duration::from_secs(30);
/// The client's one session at the translation lives as long as the bridge (a desktop client
/// may sit idle for days).
const SESSION_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Messages waiting for the client to read its stdout, at most; as many responses waiting stop
/// the reading of stdin until the client reads.
const OUT: usize = 1024;

pub struct Options {
    pub upstream: UpstreamOptions,
    pub banner: bool,
    /// What serves a 2026-07-28 client in front of a 2025 server (`None`: sent as it came).
    pub translation: Option<crate::connect::translate::Translation>,
}

struct Bridge {
    proxy: Arc<Proxy>,
    out: queue::Sender<Bytes>,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    listening: Mutex<bool>,
    shutdown: CancellationToken,
    /// A 2026-07-28 client's requests (`modern_client`), and a 2025 client's session when the
    /// server speaks only 2026-07-28.
    translate: Option<crate::connect::translate::Translate>,
}

pub async fn run(opts: Options, shutdown: CancellationToken) -> Result<(), StartError> {
    let proxy = crate::connect::engine(&opts.upstream, MAX_MESSAGE, shutdown.clone()).await?;
    if opts.banner {
        tracing::info!("bridging stdio ↔ {}", proxy.upstream.display);
    }
    let (out, lines_out) = queue::bounded(OUT);
    let writer = tokio::spawn(write_lines(lines_out));
    let translate = opts.translation.map(|t| crate::connect::translate::Translate::new(proxy.clone(), t, SESSION_TTL));
    let bridge = Arc::new(Bridge {
        proxy,
        out,
        session: Mutex::new(None),
        version: Mutex::new(None),
        listening: Mutex::new(false),
        shutdown: shutdown.clone(),
        translate,
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
                bridge.emit(wire::message(&Error::new(Kind::BadRequest, "message too large"), None));
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
    bridge.end().await;
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
        if let Some(headers) = modern_client::headers(&body) {
            in_flight.spawn(async move { self.modern_client(headers, body).await });
            return;
        }
        let (is_init, pending) = match Payload::parse(&body) {
            Ok(p) => (p.is_initialize(), p.request_ids()),
            Err(e) => {
                self.emit(wire::message(&Error::new(Kind::Parse, e.to_string()), None));
                return;
            }
        };
        let has_requests = !pending.is_empty();
        let exchange = self.clone().exchange(body, pending, is_init);
        if has_requests {
            in_flight.spawn(exchange);
        } else {
            exchange.await;
        }
    }

    /// What a message comes with: the engine session and the negotiated version.
    fn to(&self) -> Forward {
        Forward {
            session: self.session.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            version: self.version.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            ..Default::default()
        }
    }

    /// Sends one stdin message; `pending` holds the ids of the requests in it.
    async fn exchange(self: Arc<Self>, body: Bytes, mut pending: Vec<String>, is_init: bool) {
        let status = if is_init {
            let answer = self.initialize(body).await;
            if answer.status.is_success() {
                *self.session.lock().unwrap_or_else(|p| p.into_inner()) = answer.session.clone();
            }
            for m in answer.messages {
                self.deliver(m, &mut pending);
            }
            answer.status
        } else {
            let resp = self.send(body).await;
            let status = resp.status();
            tracing::debug!(status = status.as_u16(), requests = pending.len(), "message sent upstream");
            if pending.is_empty() {
                // Notifications and responses get 202 and no answer; a server that answers anyway
                // (some reply 200 with an id-less body) must not put that on stdout.
                if !status.is_success() {
                    tracing::debug!("the server answered a notification or response with {status}");
                }
                return;
            }
            self.relay(resp, &mut pending).await;
            status
        };
        self.unanswered(status, pending);
        if is_init && status.is_success() {
            self.clone().start_listening();
        }
    }

    /// Resumed as far as it could be (`relay`): what is still unanswered never will be. An
    /// answer that was no JSON-RPC (an upstream's bare 401, say) is said to be what it was.
    fn unanswered(&self, status: StatusCode, pending: Vec<String>) {
        let why = if modern_client::answered(status) {
            "the server ended the response stream without answering".to_owned()
        } else {
            format!("upstream answered HTTP {status}")
        };
        for id in pending {
            let raw = serde_json::value::RawValue::from_string(id).ok();
            self.emit(wire::message(&Error::new(Kind::UpstreamProtocol, why.clone()), raw.as_deref()));
        }
    }

    /// Sends the client's `initialize` through `connect`'s `Translate`, which tells the server's
    /// era as `connect` does (connect/translate.rs: the `initialize` sent so that a
    /// 2026-07-28-only server says what it is, `era::detect` on its answer) and, for a server of
    /// that revision only, hands the client's session to the translation. A legacy server's
    /// answer comes back as it is (the negotiated version learnt from it); a refusal too (the
    /// engine has tried HTTP+SSE already, `--transport auto`). A client that initializes again
    /// while translated: its session at the translation ends first.
    async fn initialize(&self, init: Bytes) -> InitAnswer {
        let method = Some(HeaderValue::from_static("initialize"));
        let Some(t) = &self.translate else {
            let to = Forward { method, ..self.to() };
            return read_initialize(self.proxy.send(&to, init).await).await;
        };
        if let Some(eras) = t.session()
            && self.session.lock().unwrap_or_else(|p| p.into_inner()).is_some()
        {
            drop(eras.delete(&self.to().headers()).await);
            *self.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        let headers = Forward { method, ..Forward::default() }.headers();
        let answer = read_initialize(t.post(&headers, init).await).await;
        if answer.status.is_success() {
            self.learn_version(&answer.response);
        }
        answer
    }

    /// Sends a message of the client's session: to the engine, or to the translation (as an
    /// HTTP client of it would) when the server speaks only 2026-07-28.
    async fn send(&self, body: Bytes) -> Response<Body> {
        match self.translation() {
            Some(eras) => eras.post(&self.to().headers(), body).await,
            None => self.proxy.send(&self.to(), body).await,
        }
    }

    /// Opens the session's GET stream (resumed after `last`), at the engine or the translation.
    async fn listen(&self, last: Option<HeaderValue>) -> Response<Body> {
        match self.translation() {
            Some(eras) => {
                let mut h = self.to().headers();
                h.insert(http::header::ACCEPT, HeaderValue::from_static("text/event-stream"));
                if let Some(last) = last {
                    h.insert(crate::mcp::headers::LAST_EVENT_ID, last);
                }
                eras.get(&h).await
            }
            None => self.proxy.listen(&self.to(), last).await,
        }
    }

    /// The translation, when the client's session is its (the server speaks only 2026-07-28).
    fn translation(&self) -> Option<&dyn crate::connect::translate::Eras> {
        self.translate.as_ref()?.session()
    }

    /// Ends the client's session: at the translation, and the engine's.
    async fn end(&self) {
        if let Some(eras) = self.translation()
            && self.session.lock().unwrap_or_else(|p| p.into_inner()).is_some()
        {
            drop(eras.delete(&self.to().headers()).await);
        }
        self.proxy.end_all_sessions().await;
    }
}

/// What an answer to `initialize` holds, read as far as its response (a server ends the stream
/// there).
async fn read_initialize(resp: Response<Body>) -> InitAnswer {
    let (status, session) = (resp.status(), resp.headers().get(SESSION_ID).cloned());
    let (mut messages, mut response) = (Vec::new(), Bytes::new());
    answer::read(resp, answer::MAX_JSON, |m| {
        let is_response = Payload::parse(&m).is_ok_and(|p| p.has_response());
        if is_response {
            response = m.clone();
        }
        messages.push(m);
        !is_response
    })
    .await;
    InitAnswer { status, session, messages, response }
}

impl Bridge {
    /// Writes every JSON-RPC message of a response (JSON body or SSE events) to stdout, crossing
    /// answered requests off `pending`, until none is left. A stream that ends first is resumed
    /// (`answer::read_resuming`: since 2025-11-25 a server may end one on purpose and expect
    /// the client to resume it with `Last-Event-ID`).
    async fn relay(&self, resp: Response<Body>, pending: &mut Vec<String>) -> answer::End {
        let reopen = |last: HeaderValue, wait: Duration| async move {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.cancelled() => return None,
            }
            Some(self.listen(Some(last)).await)
        };
        answer::read_resuming(resp, answer::MAX_JSON, reopen, |m| {
            self.deliver(m, pending);
            !pending.is_empty()
        })
        .await
    }

    /// One message to stdout; a response crosses its request off `pending`.
    fn deliver(&self, msg: Bytes, pending: &mut Vec<String>) {
        let Ok(payload) = Payload::parse(&msg) else { return };
        for m in payload.messages() {
            if m.kind() == jsonrpc::Kind::Response
                && let Some(id) = m.id
            {
                pending.retain(|p| p != id.get());
            }
        }
        self.emit(msg);
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
                let last = last_event.as_deref().and_then(|i| HeaderValue::try_from(i).ok());
                let resp = self.listen(last).await;
                match resp.status() {
                    StatusCode::OK => {
                        backoff = Duration::from_millis(500);
                        let end = answer::read(resp, answer::MAX_JSON, |m| {
                            self.deliver(m, &mut Vec::new());
                            true
                        })
                        .await;
                        last_event = end.last_event_id.or(last_event);
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

/// What the engine answered to an `initialize`.
struct InitAnswer {
    status: StatusCode,
    /// The engine's session, when it opened one.
    session: Option<HeaderValue>,
    /// The messages of the answer up to its response, the response included.
    messages: Vec<Bytes>,
    /// The response (empty when there was none).
    response: Bytes,
}
