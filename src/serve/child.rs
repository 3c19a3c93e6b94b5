//! A stdio server started once and shared by every client: the child is initialized by the
//! gateway, requests from all clients are multiplexed on its stdin with ids and progress tokens
//! of the gateway's (mapped back on the way out), and a supervisor restarts it when it dies —
//! 1 s doubling to 30 s with jitter, up to the configured attempts — failing its pending
//! requests at once. A server→client request from the child goes to the client whose call is in
//! flight (the most recent one), since stdio carries no other hint of whom it is for.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::backend::{Call, CallFuture, Event, Health, Line, Link, Outgoing, Reply, ServerInfo, Unsolicited};
use super::session::Client;
use crate::config::Restart;
use crate::error::{Error, Kind};
use crate::http::wire;
use crate::jsonrpc::ids::Ids;
use crate::mcp::session::Session;
use crate::transport::stdio_child::{self, Spec};

pub struct ChildLink {
    name: String,
    /// The client session this child serves alone (a stateful server), if any.
    session: Option<String>,
    /// Whom the child is told it serves at `initialize`: that client's capabilities and
    /// `clientInfo`, or, for a shared child, the gateway's (`backend::gateway_hello`).
    hello: Value,
    spec: Spec,
    restart: Restart,
    /// How long the child may take to answer `initialize`.
    start_timeout: Duration,
    state: Mutex<State>,
    unsolicited: super::backend::UnsolicitedTx,
    stop: CancellationToken,
    /// Restarts so far (for metrics).
    pub restarts: AtomicU64,
    /// Woken when the child is ready (calls made while it starts or restarts wait for it).
    ready: tokio::sync::Notify,
    /// The supervisor gave up: calls fail at once.
    gave_up: std::sync::atomic::AtomicBool,
    /// The last start failed before the server was ready (not found, crashed, refused
    /// `initialize`): calls fail at once until a restart succeeds, rather than wait for it.
    failed: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct State {
    conn: Option<Arc<Conn>>,
    health: Option<Health>,
    info: Option<ServerInfo>,
    /// When the next start is due (while down, between attempts).
    retry_at: Option<tokio::time::Instant>,
}

/// One running child.
struct Conn {
    pid: i32,
    stdin: stdio_child::Stdin,
    ids: Ids,
    /// Calls in flight, by our id (as JSON text).
    pending: Mutex<HashMap<String, Pending>>,
    /// Our progress tokens (as JSON text) → the call's id.
    tokens: Mutex<HashMap<String, String>>,
}

struct Pending {
    events: super::backend::Events,
    response: Option<oneshot::Sender<Reply>>,
    client_token: Option<Value>,
    client: Weak<Session<Client>>,
    started: Instant,
}

impl ChildLink {
    pub fn start(
        name: &str,
        (session, hello): (Option<String>, Value),
        spec: Spec,
        restart: Restart,
        start_timeout: Duration,
        unsolicited: super::backend::UnsolicitedTx,
    ) -> Arc<ChildLink> {
        let link = Arc::new(ChildLink {
            name: name.to_owned(),
            session,
            hello,
            spec,
            restart,
            start_timeout,
            state: Mutex::new(State { health: Some(Health::Starting), ..State::default() }),
            unsolicited,
            stop: CancellationToken::new(),
            restarts: AtomicU64::new(0),
            ready: tokio::sync::Notify::new(),
            gave_up: Default::default(),
            failed: Default::default(),
        });
        tokio::spawn(link.clone().supervise());
        link
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn conn(&self) -> Option<Arc<Conn>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).conn.clone()
    }

    /// The running child; while it starts or restarts, waits for it (up to the start timeout),
    /// so a client never sees the restart — unless the supervisor gave up.
    async fn await_conn(&self) -> Result<Arc<Conn>, Error> {
        let deadline = tokio::time::Instant::now() + self.start_timeout;
        loop {
            let notified = self.ready.notified();
            if let Some(c) = self.conn() {
                return Ok(c);
            }
            let why = || match self.health() {
                Health::Down(r) => r,
                _ => "starting".into(),
            };
            if self.gave_up.load(Ordering::Relaxed) || self.failed.load(Ordering::Relaxed) || self.stop.is_cancelled() {
                return Err(Error::unavailable(&self.name, why()));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::unavailable(&self.name, why()));
            }
        }
    }

    /// Starts the child, keeps it running, restarts it with backoff when it dies.
    async fn supervise(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            // A server that could not start stays "down" (with its reason) while it is tried
            // again: it is not coming up until it answers.
            if !self.failed.load(Ordering::Relaxed) {
                self.set(|s| {
                    s.health = Some(Health::Starting);
                    s.retry_at = None;
                });
            }
            let reason = match self.run_once(&mut failures).await {
                Ok(reason) => reason,
                Err(e) => {
                    // It never came up: whoever waits for it is told now, not at the timeout.
                    self.failed.store(true, Ordering::Relaxed);
                    self.ready.notify_waiters();
                    e
                }
            };
            if self.stop.is_cancelled() {
                return;
            }
            failures += 1;
            tracing::warn!(server = %self.name, "stdio server {reason}");
            if failures > self.restart.max_attempts {
                let why = format!("{reason}; gave up after {} attempts", self.restart.max_attempts);
                tracing::error!(server = %self.name, "{why}");
                self.set(|s| s.health = Some(Health::Down(why)));
                self.gave_up.store(true, Ordering::Relaxed);
                self.ready.notify_waiters();
                return;
            }
            let delay = backoff(self.restart, failures);
            self.set(|s| {
                s.health = Some(Health::Down(reason));
                s.retry_at = Some(tokio::time::Instant::now() + delay);
            });
            tracing::info!(server = %self.name, "restarting in {delay:?} (attempt {failures} of {})", self.restart.max_attempts);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => return,
            }
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One life of the child: start, initialize, serve until it exits. Returns how it ended.
    async fn run_once(&self, failures: &mut u32) -> Result<String, String> {
        let running =
            stdio_child::spawn(&self.spec).map_err(|e| format!("could not be started ({}): {e}", self.spec.command))?;
        let stdio_child::Running { pid, stdin, mut stdout, mut exited } = running;
        let conn =
            Arc::new(Conn { pid, stdin, ids: Ids::default(), pending: Mutex::default(), tokens: Mutex::default() });
        // The handshake, bounded.
        let init_id = conn.ids.next().value();
        let init = json!({"jsonrpc":"2.0","id":init_id,"method":"initialize","params":{
            "protocolVersion":"2025-11-25",
            "capabilities": self.hello.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            "clientInfo": self.hello.get("clientInfo").cloned().unwrap_or_else(|| json!({"name":"mcpgate"}))}});
        conn.write(&init);
        let deadline = tokio::time::sleep(self.start_timeout);
        tokio::pin!(deadline);
        let answer = loop {
            tokio::select! {
                line = stdout.recv() => match line {
                    Some(l) => match serde_json::from_slice::<Value>(&l) {
                        Ok(v) if v.get("id") == Some(&init_id) => break v,
                        _ => continue,
                    },
                    None => {
                        let how = (&mut exited).await.unwrap_or_else(|_| "exited".into());
                        return Err(format!("{how} before answering initialize"));
                    }
                },
                () = &mut deadline => {
                    stdio_child::stop_group(pid, Duration::from_secs(2)).await;
                    return Err(format!("did not answer initialize within {:?}", self.start_timeout));
                }
                () = self.stop.cancelled() => {
                    stdio_child::stop_group(pid, Duration::from_secs(2)).await;
                    return Ok("stopped".into());
                }
            }
        };
        let Some(result) = answer.get("result") else {
            stdio_child::stop_group(pid, Duration::from_secs(2)).await;
            return Err(format!("refused initialize: {}", answer.get("error").cloned().unwrap_or_default()));
        };
        let info = ServerInfo {
            result: result.clone(),
            capabilities: result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            server_info: result.get("serverInfo").cloned().unwrap_or_else(|| json!({})),
            instructions: result.get("instructions").and_then(Value::as_str).map(str::to_owned),
            protocol_version: result.get("protocolVersion").and_then(Value::as_str).unwrap_or("2025-11-25").to_owned(),
            discovered: None,
        };
        conn.write(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
        *failures = 0;
        self.failed.store(false, Ordering::Relaxed);
        tracing::info!(server = %self.name, pid, "stdio server ready");
        self.set(|s| {
            s.conn = Some(conn.clone());
            s.info = Some(info);
            s.health = Some(Health::Ready);
        });
        self.ready.notify_waiters();
        self.announce_change();
        // Serve until the child's stdout ends.
        loop {
            tokio::select! {
                line = stdout.recv() => match line {
                    Some(l) => self.incoming(&conn, &l),
                    None => break,
                },
                () = self.stop.cancelled() => break,
            }
        }
        let how = if self.stop.is_cancelled() {
            stdio_child::stop_group(pid, Duration::from_secs(5)).await;
            "stopped".to_owned()
        } else {
            match tokio::time::timeout(Duration::from_secs(5), &mut exited).await {
                Ok(Ok(how)) => how,
                _ => {
                    stdio_child::stop_group(pid, Duration::from_secs(2)).await;
                    "closed its stdout".to_owned()
                }
            }
        };
        self.set(|s| {
            s.conn = None;
            s.info = None;
        });
        conn.fail_all(&format!("server {} {how}", self.name));
        if !self.stop.is_cancelled() {
            self.announce_change();
        }
        Ok(how)
    }

    /// The server came or went: clients' listings change.
    fn announce_change(&self) {
        if self.session.is_some() {
            // A client's own child: the gateway's shared one speaks for the listings.
            return;
        }
        super::backend::announce_lists_changed(&self.unsolicited, &self.name);
    }

    /// One message from the child.
    fn incoming(&self, conn: &Arc<Conn>, line: &Bytes) {
        // A response is looked at only as far as its id, in case it goes out as it came.
        if let Ok(env) = serde_json::from_slice::<crate::jsonrpc::Envelope>(line)
            && env.kind() == crate::jsonrpc::Kind::Response
            && let Some(raw_id) = env.id
        {
            let key = serde_json::from_str::<Value>(raw_id.get()).map(|v| v.to_string()).unwrap_or_default();
            let pending = conn.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            let Some(mut p) = pending else { return };
            conn.tokens.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, v| *v != key);
            if let Some(tx) = p.response.take()
                && let Some(id) = crate::jsonrpc::span_of(line, raw_id.get())
            {
                let _ = tx.send(Reply::Line(Line { bytes: line.clone(), id, error: env.error.is_some() }));
            }
            return;
        }
        let Ok(mut msg) = serde_json::from_slice::<Value>(line) else {
            tracing::debug!(server = %self.name, "ignoring a line that is not JSON");
            return;
        };
        let id = msg.get("id").cloned();
        let method = msg.get("method").and_then(Value::as_str).map(str::to_owned);
        match (method, id) {
            // A response to one of our calls that is not one (neither result nor error): the
            // caller makes it an error.
            (None, Some(id)) => {
                let key = id.to_string();
                let pending = conn.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                if let Some(mut p) = pending {
                    conn.tokens.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, v| *v != key);
                    if let Some(tx) = p.response.take() {
                        let _ = tx.send(Reply::Value(msg));
                    }
                }
            }
            (Some(method), None) if method == "notifications/progress" => {
                let token = msg.pointer("/params/progressToken").map(Value::to_string).unwrap_or_default();
                let call = conn.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&token).cloned();
                let pending = conn.pending.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(p) = call.and_then(|c| pending.get(&c)) {
                    if let (Some(t), Some(params)) = (p.client_token.clone(), msg.get_mut("params")) {
                        params["progressToken"] = t;
                    }
                    p.events.push(Event::Notification(msg));
                }
            }
            (Some(_), None) => {
                self.unsolicited.push(Unsolicited {
                    backend: self.name.clone(),
                    session: self.session.clone(),
                    message: msg,
                    reply: None,
                });
            }
            // A request from the child: to the client of the most recent call in flight.
            (Some(method), Some(id)) => {
                let params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
                let target = {
                    let pending = conn.pending.lock().unwrap_or_else(|p| p.into_inner());
                    pending
                        .values()
                        .filter(|p| p.client.strong_count() > 0)
                        .max_by_key(|p| p.started)
                        .map(|p| p.events.clone())
                };
                let conn = conn.clone();
                let (tx, rx) = oneshot::channel();
                match target {
                    Some(events) => {
                        events.push(Event::Request { method, params, reply: tx });
                    }
                    None if method == "ping" => {
                        conn.write(&json!({"jsonrpc":"2.0","id":id,"result":{}}));
                        return;
                    }
                    // Outside any call: to a client that can answer, as the dispatcher finds one
                    // (this child's own client, for a stateful server's).
                    None => {
                        let message = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
                        let session = self.session.clone();
                        self.unsolicited.push(Unsolicited {
                            backend: self.name.clone(),
                            session,
                            message,
                            reply: Some(tx),
                        });
                    }
                }
                tokio::spawn(async move {
                    let answer = rx
                        .await
                        .unwrap_or_else(|_| wire::answer(&Error::new(Kind::Unanswered, "the client went away")));
                    let mut out = json!({"jsonrpc":"2.0","id":id});
                    for k in ["result", "error"] {
                        if let Some(v) = answer.get(k) {
                            out[k] = v.clone();
                        }
                    }
                    conn.write(&out);
                });
            }
            (None, None) => {}
        }
    }
}

impl Conn {
    /// A call in flight under our id `key`: where its events and response go.
    fn register(
        &self,
        key: String,
        response: oneshot::Sender<Reply>,
        client_token: Option<Value>,
        client: Weak<Session<Client>>,
    ) -> super::backend::EventFeed {
        let (events, rx) = super::queue::bounded(super::queue::CALL);
        let p = Pending { events, response: Some(response), client_token, client, started: Instant::now() };
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(key, p);
        rx
    }

    /// Writes a message of the gateway's own (a notification, an answer to the child); one the
    /// child has no room for is dropped: it is not reading anyway.
    fn write(&self, msg: &Value) {
        if let Err(e) = self.stdin.send(Bytes::from(msg.to_string())) {
            tracing::debug!(pid = self.pid, "a message to a stdio server was not sent: {e}");
        }
    }

    /// Sends a call registered under `key`; if the child has no room for it, the call is
    /// forgotten and fails now.
    fn send_call(&self, server: &str, key: &str, line: Bytes) -> Result<(), Error> {
        let Err(e) = self.stdin.send(line) else { return Ok(()) };
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, v| v.as_str() != key);
        Err(Error::unavailable(server, e))
    }

    fn fail_all(&self, why: &str) {
        let drained: Vec<Pending> =
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, p)| p).collect();
        for mut p in drained {
            if let Some(r) = p.response.take() {
                let _ = r.send(Reply::Value(wire::answer(&Error::new(Kind::UpstreamUnreachable, why))));
            }
        }
    }
}

/// 1 s doubling to the maximum, ±25 % jitter (so restarted servers do not march in step).
fn backoff(r: Restart, failures: u32) -> Duration {
    let base = r.initial.saturating_mul(1u32 << (failures.saturating_sub(1)).min(16)).min(r.max);
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    base.mul_f64(0.75 + f64::from(b[0]) / 510.0)
}

impl Link for ChildLink {
    fn call<'a>(&'a self, client: Option<&'a Arc<Session<Client>>>, out: Outgoing<'a>) -> CallFuture<'a> {
        let client = client.map(Arc::downgrade).unwrap_or_default();
        // A request as it came is written as it came, only its id (and a prefixed name) swapped.
        if let Some(raw) = as_it_came(&out) {
            return Box::pin(async move {
                let conn = self.await_conn().await?;
                let ours = conn.ids.next();
                let id = ours.json();
                let line = raw.line(id.as_bytes());
                let (response_tx, response) = oneshot::channel();
                let events = conn.register(id.clone(), response_tx, None, client);
                conn.send_call(&self.name, &id, Bytes::from(line))?;
                Ok(Call { events, response, upstream_id: ours.value() })
            });
        }
        let (method, mut params) = out.into_parts();
        Box::pin(async move {
            let conn = self.await_conn().await?;
            let id = conn.ids.next().value();
            let client_token = params.pointer("/_meta/progressToken").cloned();
            if client_token.is_some() {
                // The request's own id stands for the client's token (tokens are a namespace of
                // their own): the child is shared, the client's could collide with another's.
                params["_meta"]["progressToken"] = id.clone();
                let ours = id.to_string();
                conn.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(ours.clone(), ours);
            }
            let (response_tx, response) = oneshot::channel();
            let key = id.to_string();
            let events = conn.register(key.clone(), response_tx, client_token, client);
            let line = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string();
            conn.send_call(&self.name, &key, Bytes::from(line))?;
            Ok(Call { events, response, upstream_id: id })
        })
    }

    fn notify(&self, _client: &Arc<Session<Client>>, method: &str, params: Value) {
        let Some(conn) = self.conn() else { return };
        if method == "notifications/cancelled" {
            // The server need not answer a cancelled request: the call ends here.
            if let Some(id) = params.get("requestId") {
                let key = id.to_string();
                conn.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                conn.tokens.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, v| *v != key);
            }
        }
        conn.write(&json!({"jsonrpc":"2.0","method":method,"params":params}));
    }

    fn info(&self) -> Option<ServerInfo> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).info.clone()
    }

    fn forget(&self, _client: &Session<Client>) {}

    fn health(&self) -> Health {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).health.clone().unwrap_or(Health::Starting)
    }

    fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    fn retry_in(&self) -> Option<Duration> {
        let at = self.state.lock().unwrap_or_else(|p| p.into_inner()).retry_at?;
        Some(at.saturating_duration_since(tokio::time::Instant::now()))
    }

    fn start_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed) || self.gave_up.load(Ordering::Relaxed)
    }

    fn shared(&self) -> bool {
        self.session.is_none()
    }

    fn stop(&self, grace: Duration) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.stop.cancel();
            if let Some(conn) = self.conn() {
                stdio_child::stop_group(conn.pid, grace).await;
            }
        })
    }
}

/// A client's request a child can be sent as it came: its bytes, with where its id (and a
/// prefixed name) lie, and what goes there.
struct AsItCame<'a> {
    body: &'a [u8],
    id: std::ops::Range<usize>,
    name: Option<(std::ops::Range<usize>, String)>,
}

/// `out` as it came, unless it must be read: a progress token must become one of ours (the
/// child is shared, the client's could collide with another's), and a message of the gateway's
/// own has no bytes.
fn as_it_came<'a>(out: &Outgoing<'a>) -> Option<AsItCame<'a>> {
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        name: &'a serde_json::value::RawValue,
    }
    let Outgoing::AsItCame { body, msg, rename, .. } = out else { return None };
    // (Read when in doubt: a key may be written with escapes, `progress\u0054oken`.)
    if msg.params.is_some_and(|p| p.get().contains("progressToken") || p.get().contains('\\')) {
        return None;
    }
    let id = crate::jsonrpc::span_of(body, msg.id?.get())?;
    let name = match rename {
        None => None,
        Some(inner) => {
            let raw = serde_json::from_str::<Named>(msg.params?.get()).ok()?.name;
            Some((crate::jsonrpc::span_of(body, raw.get())?, serde_json::to_string(inner).ok()?))
        }
    };
    Some(AsItCame { body, id, name })
}

impl AsItCame<'_> {
    /// The line to write, with the gateway's `id` (and the server's own name) in place.
    fn line(&self, id: &[u8]) -> Vec<u8> {
        use crate::jsonrpc::splice_line;
        let Some((name_span, name)) = &self.name else { return splice_line(self.body, self.id.clone(), id) };
        // The later span first: the earlier one's offsets stay true.
        let (first, second) = if self.id.start > name_span.start {
            ((self.id.clone(), id), (name_span.clone(), name.as_bytes()))
        } else {
            ((name_span.clone(), name.as_bytes()), (self.id.clone(), id))
        };
        splice_line(&splice_line(self.body, first.0, first.1), second.0, second.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_maximum_with_jitter() {
        let r = Restart::default();
        for (n, base) in [(1u32, 1.0f64), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (40, 30.0)] {
            let d = backoff(r, n).as_secs_f64();
            assert!(d >= base * 0.75 - 1e-9 && d <= base * 1.25 + 1e-9, "attempt {n}: {d}");
        }
    }

    #[test]
    fn a_request_as_it_came_has_its_id_and_prefixed_name_swapped_and_nothing_else() {
        // Key order, spacing and unknown keys as the client wrote them; a pretty-printed body
        // becomes one line.
        let cases: &[(&str, Option<&str>, &str)] = &[
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"fs__read","z":1,"arguments":{"b":2,"a":1}}}"#,
                Some("read"),
                r#"{"jsonrpc":"2.0","id":"mcpgate-1","method":"tools/call","params":{"name":"read","z":1,"arguments":{"b":2,"a":1}}}"#,
            ),
            (
                // The name before the id.
                r#"{"params":{"arguments":{},"name":"fs__read"},"method":"tools/call","id":"x","jsonrpc":"2.0"}"#,
                Some("read"),
                r#"{"params":{"arguments":{},"name":"read"},"method":"tools/call","id":"mcpgate-1","jsonrpc":"2.0"}"#,
            ),
            (
                "{\"jsonrpc\": \"2.0\",\n \"id\": 1, \"method\": \"tools/call\", \"params\": {\"name\": \"echo\"}}",
                None,
                r#"{"jsonrpc": "2.0",  "id": "mcpgate-1", "method": "tools/call", "params": {"name": "echo"}}"#,
            ),
        ];
        for (body, rename, want) in cases {
            let payload = crate::jsonrpc::Payload::parse(body.as_bytes()).unwrap();
            let msg = payload.single().unwrap();
            let out = Outgoing::AsItCame { method: "tools/call", body: body.as_bytes(), msg, rename: *rename };
            let raw = as_it_came(&out).expect("sent as it came");
            assert_eq!(String::from_utf8(raw.line(br#""mcpgate-1""#)).unwrap(), *want);
        }
        // A progress token must become the gateway's: the message is read instead.
        let body =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":1}}}"#;
        let payload = crate::jsonrpc::Payload::parse(body).unwrap();
        let out = Outgoing::AsItCame { method: "tools/call", body, msg: payload.single().unwrap(), rename: None };
        assert!(as_it_came(&out).is_none());
    }
}
