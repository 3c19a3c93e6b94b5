//! 2026-07-28 ("modern") clients on the gateway's endpoints: stateless requests carrying the
//! `_meta` envelope, `server/discover` instead of `initialize`, cacheable listings (`ttlMs`,
//! `cacheScope`), and input-required results instead of server→client requests. Behind the
//! gateway the servers speak 2025: a server's request to the client during a call (elicitation,
//! sampling, roots) parks that call and answers the client with `input_required`, whose
//! `requestState` names the parked call; the client's retry carries the answer, which goes to the
//! server, and the call goes on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::Gateway;
use super::backend::{Call, Event, Outgoing};
use super::queue;
use super::router::{LISTINGS, Routed};
use super::session::{Client, View};
use crate::error::{Error, Kind};
use crate::mcp::modern::{META_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL, META_SERVER_INFO, META_VERSION};
use crate::mcp::session::Session;

/// How long a parked call waits for the client's retry.
const PARKED_FOR: Duration = Duration::from_secs(600);

/// The `requestState` of the gateway's question for a caller's roots, asked before a call (not
/// parked: the retry carries the call and the roots both).
const ROOTS_ASKED: &str = "mcpgate/roots";
/// Sets of roots one caller's sessions are kept for at once (each is a session at the servers):
/// a caller naming more ends the oldest.
const ROOTS_SESSIONS: usize = 16;
/// The largest roots answer taken (as JSON).
const MAX_ROOTS: usize = 64 * 1024;

/// Calls waiting for a modern client's input, by the `requestState` handed out.
#[derive(Default)]
pub struct Parked {
    calls: Mutex<HashMap<String, ParkedCall>>,
}

struct ParkedCall {
    /// The upstream session the call runs in.
    client: Arc<Session<Client>>,
    backend: String,
    call: Call,
    /// Where the answer to the pending input request goes.
    reply: oneshot::Sender<Value>,
    /// The key the input request was given in `inputRequests`.
    key: String,
    timeout: Duration,
    since: Instant,
}

/// The answer, and whether it is a stream of notifications first.
pub struct Reply {
    pub events: Vec<Value>,
    pub answer: Value,
}

impl Gateway {
    /// The session modern clients of a view share towards the servers (a server's own requests
    /// reach the call that caused them, so sharing one upstream session is sound) — one per
    /// caller when the gateway authenticates, whose token it carries; apart for clients that can
    /// send their user to a URL (`url`: a sign-in a server needs is offered to them as such).
    /// Callers who gave their roots (`roots`: the `roots/list` result) have a session per set of
    /// roots, which answers servers with them: a server keeps what a session's client told it.
    fn modern_client(
        &self,
        view: &View,
        owner: Option<&str>,
        url: bool,
        roots: Option<Value>,
    ) -> Result<Arc<Session<Client>>, Error> {
        let print = roots.as_ref().map(|r| {
            let d = ring::digest::digest(&ring::digest::SHA256, r.to_string().as_bytes());
            let mut print = [0u8; 32];
            print.copy_from_slice(d.as_ref());
            print
        });
        let mut all = self.modern_clients.lock().unwrap_or_else(|p| p.into_inner());
        let key = (view.clone(), owner.map(str::to_owned), url, print);
        if let Some(s) = all.get(&key) {
            // Used: not idle (`expire_sessions` ends those idle past `sessionTtl`).
            self.sessions_modern.get(s.id());
            return Ok(s.clone());
        }
        // Room for one more: at most `ROOTS_SESSIONS` of this caller's sets of roots, and at most
        // `maxSessions` in all.
        if print.is_some() {
            let theirs = |k: &super::ModernCaller| k.0 == key.0 && k.1 == key.1 && k.2 == url && k.3.is_some();
            self.make_room(&mut all, theirs, ROOTS_SESSIONS, "sets of roots of one caller")?;
        }
        let max = self.router.config().gateway.sessions.total;
        self.make_room(&mut all, |_| true, max, "sessions for 2026-07-28 callers (maxSessions)")?;
        // Stateless clients share one session per view: it declares what any of them may answer
        // (each request's own `clientCapabilities` decide what its caller is asked).
        let mut init = super::backend::gateway_init();
        init["clientInfo"]["name"] = json!("mcpgate (for 2026-07-28 clients)");
        if !url && let Some(e) = init.pointer_mut("/capabilities/elicitation").and_then(Value::as_object_mut) {
            e.remove("url");
        }
        let mut client = Client::new(view.clone(), owner.map(str::to_owned), init);
        if let Some(r) = roots {
            client = client.with_roots(r);
        }
        let s = self
            .sessions_modern
            .create(crate::connect::CLIENT, &[], client)
            .map_err(|e| Error::new(Kind::TooManySessions, e.to_string()))?
            .session;
        all.insert(key, s.clone());
        Ok(s)
    }

    /// Ends the least recently used of the sessions `counted` counts when they are `max` or
    /// more — one nobody is using (held only by the two tables: no request, no stream) — or
    /// says none can go.
    fn make_room(
        &self,
        all: &mut std::collections::HashMap<super::ModernCaller, super::ModernClient>,
        counted: impl Fn(&super::ModernCaller) -> bool,
        max: usize,
        what: &str,
    ) -> Result<(), Error> {
        let mut counted: Vec<_> = all.iter().filter(|(k, _)| counted(k)).collect();
        if counted.len() < max {
            return Ok(());
        }
        counted.retain(|(_, s)| Arc::strong_count(s) == 2);
        let Some((k, _)) = counted.into_iter().max_by_key(|(_, s)| s.idle_for()) else {
            return Err(Error::new(Kind::TooManySessions, format!("{max} {what} are in use at once")));
        };
        let k = k.clone();
        if let Some(s) = all.remove(&k) {
            tracing::debug!(session = s.label(), "{max} {what}: the least recently used ends");
            self.sessions_modern.remove(s.id());
            self.end(&s);
        }
        Ok(())
    }

    /// Every upstream session of a caller's (one, and one per set of roots it gave).
    pub(super) fn caller_sessions(&self, caller: &super::session::Caller) -> Vec<Arc<Session<Client>>> {
        let all = self.modern_clients.lock().unwrap_or_else(|p| p.into_inner());
        all.values().filter(|s| super::session::Caller::of(s) == *caller).cloned().collect()
    }

    /// The upstream session of a 2026-07-28 caller that declared `caps` (apart for those that
    /// take URL-mode elicitation).
    pub(super) fn modern_session(
        &self,
        view: &View,
        owner: Option<&str>,
        caps: &Value,
        roots: Option<Value>,
    ) -> Result<Arc<Session<Client>>, Error> {
        let url = declared(caps, "elicitation/create", &json!({"mode": "url"}));
        self.modern_client(view, owner, url, roots)
    }

    /// Whether a 2026-07-28 server's tasks reach this caller: only as they are (relayed), and,
    /// where the gateway has users, only from a server that sees each of them — a task is found
    /// by its id alone, and a server that sees one credential for everyone would hand one
    /// user's task to another.
    pub(super) fn tasks_carried(&self, b: &super::router::Backend, client: &Session<Client>) -> bool {
        let users = self.auth.is_some() || self.authz.is_some();
        b.link.modern_relay(client).is_some() && (!users || b.link.sees_each_user())
    }

    /// One modern request (headers already checked against the body).
    pub async fn modern(
        self: &Arc<Self>,
        view: View,
        (access, owner, bearer): (&crate::policy::Access, Option<&str>, Option<&http::HeaderValue>),
        method: &str,
        mut params: Value,
        live: Option<&queue::Sender<Value>>,
        target: super::dispatch::Target,
    ) -> Reply {
        let meta = params.get("_meta").cloned().unwrap_or_default();
        let caps = meta.get(META_CAPABILITIES).cloned().unwrap_or_else(|| json!({}));
        // The envelope is ours to read; legacy servers behind get what they know.
        if let Some(m) = params.get_mut("_meta").and_then(Value::as_object_mut) {
            for k in [META_VERSION, META_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL] {
                m.remove(k);
            }
        }
        // A server that asks for roots on its own hears the caller's, asked for first.
        let roots = match roots_of(&target, &caps, method, &mut params) {
            Ok(roots) => roots,
            Err(answer) => return Reply { events: vec![], answer },
        };
        let client = match self.modern_session(&view, owner, &caps, roots) {
            Ok(c) => c,
            Err(e) => return Reply { events: vec![], answer: err(e) },
        };
        // The caller's token as last sent, for servers that take it (the session is theirs alone).
        client.upstream.set_bearer(bearer);
        // A session for the roots given follows the caller's listen streams (one that began
        // before it did not subscribe it).
        if client.upstream.roots.is_some()
            && let Some((b, _)) = target.server()
        {
            self.follow(&client, &b.cfg.name).await;
        }
        let cfg = self.router.config();
        let ttl = cfg.gateway.cache_ttl.as_millis() as u64;
        match method {
            // Liveness is the gateway's to answer, in this era as in the other (the revision
            // dropped `ping`, and lets a server that has it answer: clients still send it).
            "ping" => Reply { events: vec![], answer: json!({"result": {"resultType": "complete"}}) },
            // Gone in this revision (`server/discover`, `_meta`'s logLevel and
            // `subscriptions/listen` do their work): not methods here (404).
            "initialize" | "logging/setLevel" | "resources/subscribe" | "resources/unsubscribe" => Reply {
                events: vec![],
                answer: err(Error::new(Kind::MethodNotFound, format!("{method} is not a method of 2026-07-28"))),
            },
            // The tasks extension reaches a server only as it is (`tasks_carried`), never through
            // the gateway's translation.
            m if m.starts_with("tasks/") => Reply {
                events: vec![],
                answer: err(Error::new(Kind::MethodNotFound, format!("{method}: tasks are not carried here"))),
            },
            "server/discover" => {
                let init = self.router.initialize(&view, "2025-11-25");
                let r = &init["result"];
                // Subscribing is `subscriptions/listen` here (listen.rs), as the capabilities say;
                // a 2026-07-28 server seen as it is gets its listen requests as they are, and its
                // capabilities say what it does with them.
                let alone = self.router.alone(&view).filter(|b| b.link.modern_relay(&client).is_some());
                let own = match &view {
                    View::One(_) => alone.as_ref().and_then(|b| b.link.info()).and_then(|i| i.discovered),
                    View::All => None,
                };
                let mut capabilities = own.map_or_else(|| r["capabilities"].clone(), |d| d["capabilities"].clone());
                if !alone.is_some_and(|b| self.tasks_carried(&b, &client))
                    && let Some(c) = capabilities.as_object_mut()
                {
                    c.remove("extensions");
                }
                let mut result = json!({
                    "supportedVersions": crate::mcp::era::KNOWN_VERSIONS.iter().rev().collect::<Vec<_>>(),
                    "capabilities": capabilities,
                    "resultType": "complete", "ttlMs": 0, "cacheScope": "private",
                    "_meta": {META_SERVER_INFO: r["serverInfo"]},
                });
                if let Some(i) = r.get("instructions") {
                    result["instructions"] = i.clone();
                }
                Reply { events: vec![], answer: json!({"result": result}) }
            }
            m if LISTINGS.iter().any(|(l, _)| *l == m) => {
                let mut answer = self.router.merged(&client, access, m).await;
                if let Some(r) = answer.get_mut("result") {
                    // Private when a server's listing depends on the user's own token.
                    let private = self.router.visible(&view).iter().any(|b| b.cfg.per_caller_token());
                    r["resultType"] = json!("complete");
                    r["ttlMs"] = json!(ttl);
                    r["cacheScope"] = json!(if private { "private" } else { "public" });
                }
                Reply { events: vec![], answer }
            }
            _ => {
                // A retry of a call that waited for input.
                if let Some(state) = params.get("requestState").and_then(Value::as_str).map(str::to_owned) {
                    // Only its own caller's, on the same endpoint, takes a parked call up again.
                    let parked = {
                        let mut calls = self.parked.calls.lock().unwrap_or_else(|p| p.into_inner());
                        let theirs = calls.get(&state).is_some_and(|p| {
                            p.client.upstream.owner == client.upstream.owner
                                && p.client.upstream.view == client.upstream.view
                        });
                        if theirs { calls.remove(&state) } else { None }
                    };
                    if let Some(p) = parked {
                        let answer = params.get("inputResponses").and_then(|r| r.get(&p.key)).cloned();
                        let reply = match answer {
                            Some(result) => json!({"result": result}),
                            None => err(Error::new(Kind::InvalidParams, "the retry carried no answer")),
                        };
                        let _ = p.reply.send(reply);
                        p.client.upstream.set_bearer(bearer);
                        return self.drive(&p.client, p.backend, p.call, p.timeout, &meta, live).await;
                    }
                    return Reply {
                        events: vec![],
                        answer: err(Error::new(Kind::InvalidParams, "unknown or expired requestState")),
                    };
                }
                let routed = match target.not_routed(method) {
                    Some(e) => Routed::Answer(crate::http::wire::answer(&e)),
                    None => {
                        let server = target.server();
                        let out = Outgoing::renamed(method, params, server.and_then(|(_, inner)| inner));
                        self.router.route(&client, server.map(|(b, _)| b), out).await
                    }
                };
                let mut reply = match routed {
                    Routed::Answer(answer) => Reply { events: vec![], answer: complete(answer) },
                    Routed::Call { backend, call, timeout } => {
                        self.drive(&client, backend, call, timeout, &meta, live).await
                    }
                };
                if method == "resources/read" {
                    cache_hints(&mut reply.answer);
                }
                reply
            }
        }
    }

    /// Follows a call until its response, or until the server asks the client something. Its
    /// notifications go to `live` as they come (a streamed response), else with the answer.
    async fn drive(
        self: &Arc<Self>,
        client: &Arc<Session<Client>>,
        backend: String,
        mut call: Call,
        timeout: Duration,
        meta: &Value,
        live: Option<&queue::Sender<Value>>,
    ) -> Reply {
        let caps = meta.get(META_CAPABILITIES).unwrap_or(&Value::Null);
        // Logs only for a request that asked for them, from the level it named.
        let level = meta.get(META_LOG_LEVEL).and_then(Value::as_str);
        // Without a live stream, notifications wait for the answer, as bounded as on a stream.
        let (kept, mut kept_rx) = queue::bounded::<Value>(queue::CALL);
        let out = live.unwrap_or(&kept);
        let events_of = |rx: &mut queue::Receiver<Value>| std::iter::from_fn(|| rx.try_recv()).collect::<Vec<_>>();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                biased;
                ev = call.events.recv() => match ev {
                    Some(Event::Notification(m)) => if logged(&m, level) { out.push(m); },
                    Some(Event::Request { method, params, reply }) => {
                        if method == "roots/list" && let Some(roots) = &client.upstream.roots {
                            let _ = reply.send(json!({"result": roots}));
                            continue;
                        }
                        if !declared(caps, &method, &params) {
                            let why = format!("{backend} asks the client for {method}, which it did not declare");
                            let _ = reply.send(err(Error::new(Kind::MethodNotFound, why.clone())));
                            // Roots are asked for on the side (servers look whether there are
                            // any, and go on without): the call goes on.
                            if method == "roots/list" {
                                continue;
                            }
                            // A question the call waits on (a user's answer, a sample): the call
                            // ends, for the server (cancelled) and for the client, told what to
                            // declare (-32021, HTTP 400).
                            let needs = required(&method, &params);
                            if let Some(b) = self.router.backend(&backend) {
                                let params = json!({"requestId": call.upstream_id, "reason": why});
                                b.link.notify(client, "notifications/cancelled", params);
                            }
                            let missing = Error::new(Kind::MissingCapability, why).with_data(json!({"requiredCapabilities": needs}));
                            return Reply { events: events_of(&mut kept_rx), answer: err(missing) };
                        }
                        let state = crate::mcp::session::new_id().unwrap_or_default();
                        let key = "input".to_owned();
                        let answer = json!({"result": {
                            "resultType": "input_required",
                            "inputRequests": {key.clone(): {"method": method, "params": params}},
                            "requestState": state,
                        }});
                        self.parked.expire();
                        self.parked.calls.lock().unwrap_or_else(|p| p.into_inner()).insert(
                            state,
                            ParkedCall { client: client.clone(), backend, call, reply, key, timeout, since: Instant::now() },
                        );
                        return Reply { events: events_of(&mut kept_rx), answer };
                    }
                    None => {
                        let r = tokio::time::timeout_at(deadline, &mut call.response).await;
                        let answer = match r {
                            Ok(Ok(a)) => a.into_value(),
                            Ok(Err(_)) => err(Error::dropped(&backend)),
                            Err(_) => err(Error::late(&backend, timeout)),
                        };
                        return Reply { events: events_of(&mut kept_rx), answer: complete(answer) };
                    }
                },
                r = &mut call.response => {
                    while let Some(Event::Notification(m)) = call.events.try_recv() {
                        if logged(&m, level) {
                            out.push(m);
                        }
                    }
                    let answer = r.map_or_else(|_| err(Error::dropped(&backend)), super::backend::Reply::into_value);
                    return Reply { events: events_of(&mut kept_rx), answer: complete(answer) };
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Reply { events: events_of(&mut kept_rx), answer: err(Error::late(&backend, timeout)) };
                }
            }
        }
    }
}

impl Parked {
    /// Drops calls whose client never came back (their server gets an error).
    fn expire(&self) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let old: Vec<String> =
            calls.iter().filter(|(_, c)| c.since.elapsed() > PARKED_FOR).map(|(k, _)| k.clone()).collect();
        for k in old {
            if let Some(c) = calls.remove(&k) {
                let _ = c.reply.send(err(Error::new(Kind::Unanswered, "the client never answered")));
            }
        }
    }
}

/// The roots a request carries, taken out of its params (the retry of the gateway's question):
/// `Ok(None)` when it carries none and needs none; `Err` with the answer to give — the question,
/// when the server it goes to asks for roots on its own (`asks_roots`) and has a session per
/// client (a shared child keeps one client's roots for all), or why the roots given are refused.
fn roots_of(
    target: &super::dispatch::Target,
    caps: &Value,
    method: &str,
    params: &mut Value,
) -> Result<Option<Value>, Value> {
    let asked = target
        .server()
        .is_some_and(|(b, _)| b.asks_roots.load(std::sync::atomic::Ordering::Relaxed) && !b.link.shared())
        && declared(caps, "roots/list", &Value::Null)
        && !LISTINGS.iter().any(|(l, _)| *l == method);
    if params.get("requestState").and_then(Value::as_str) == Some(ROOTS_ASKED) {
        let answer = params.get("inputResponses").and_then(|r| r.get("roots")).cloned();
        if let Some(p) = params.as_object_mut() {
            p.remove("requestState");
            p.remove("inputResponses");
        }
        // Roots nobody asked for (where the question is not put) are not taken: a session per
        // set is for a server that asks.
        if !asked {
            return Ok(None);
        }
        let fits = |r: &Value| r.get("roots").is_some_and(Value::is_array) && r.to_string().len() <= MAX_ROOTS;
        return match answer {
            Some(r) if fits(&r) => Ok(Some(r)),
            _ => Err(err(Error::new(
                Kind::InvalidParams,
                format!("the retry's inputResponses.roots is not a roots/list result of at most {MAX_ROOTS} bytes"),
            ))),
        };
    }
    // The retry of a call that waited for input: asked already, or not at all.
    if params.get("requestState").is_some() || !asked {
        return Ok(None);
    }
    Err(json!({"result": {
        "resultType": "input_required",
        "inputRequests": {"roots": {"method": "roots/list", "params": {}}},
        "requestState": ROOTS_ASKED,
    }}))
}

/// Whether a modern client's capabilities cover a server's request (the spec's rule for servers).
fn declared(caps: &Value, method: &str, params: &Value) -> bool {
    match method {
        "elicitation/create" => {
            let Some(e) = caps.get("elicitation") else { return false };
            match params.get("mode").and_then(Value::as_str) {
                Some("url") => e.get("url").is_some(),
                _ => e.get("form").is_some() || e.as_object().is_some_and(|m| m.is_empty()),
            }
        }
        "sampling/createMessage" => caps.get("sampling").is_some(),
        "roots/list" => caps.get("roots").is_some(),
        _ => false,
    }
}

/// Whether a notification of a call goes to a 2026-07-28 client that asked for logs at `level`
/// (`_meta`'s logLevel; none: no logs): everything but logs does.
fn logged(note: &Value, level: Option<&str>) -> bool {
    const LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
    if note.get("method").and_then(Value::as_str) != Some("notifications/message") {
        return true;
    }
    let rank = |l: Option<&str>| l.and_then(|l| LEVELS.iter().position(|x| *x == l));
    match (rank(level), rank(note.pointer("/params/level").and_then(Value::as_str))) {
        (Some(wanted), Some(said)) => said >= wanted,
        // No level asked for (or none there is): no logs. A log of no known level: kept.
        (None, _) => false,
        (Some(_), None) => true,
    }
}

/// The client capabilities a server's request needs, as `requiredCapabilities` names them.
fn required(method: &str, params: &Value) -> Value {
    match method {
        "elicitation/create" if params.get("mode").and_then(Value::as_str) == Some("url") => {
            json!({"elicitation": {"url": {}}})
        }
        "elicitation/create" => json!({"elicitation": {}}),
        "sampling/createMessage" => json!({"sampling": {}}),
        _ => json!({}),
    }
}

/// What a 2026-07-28 request must be, checked before anything is done with it (HTTP 400 else):
/// `_meta` naming the revision (the one `MCP-Protocol-Version` names, and one spoken here) and
/// the client's capabilities; a retry's `inputResponses` an object of answers and its
/// `requestState` a string.
pub fn check_request(params: &Value, header: Option<&str>) -> Result<(), Error> {
    let meta = params.get("_meta");
    let version = meta.and_then(|m| m.get(META_VERSION)).and_then(Value::as_str);
    let caps = meta.and_then(|m| m.get(META_CAPABILITIES)).filter(|c| c.is_object());
    let (Some(version), Some(_)) = (version, caps) else {
        return Err(Error::new(
            Kind::InvalidParams,
            "a 2026-07-28 request carries _meta with io.modelcontextprotocol/protocolVersion and an object io.modelcontextprotocol/clientCapabilities",
        ));
    };
    // The header is what intermediaries act on, the body what is carried out: they must agree.
    if let Some(h) = header
        && h != version
    {
        return Err(Error::new(
            Kind::HeaderMismatch,
            format!("the MCP-Protocol-Version header ({h:?}) does not match _meta's protocolVersion ({version:?})"),
        ));
    }
    // The gateway answers as the one modern revision it knows.
    if version != crate::mcp::era::FIRST_MODERN {
        return Err(crate::mcp::era::UnsupportedVersion(version.chars().take(40).collect()).into());
    }
    if let Some(r) = params.get("inputResponses")
        && !r.as_object().is_some_and(|answers| answers.values().all(Value::is_object))
    {
        return Err(Error::new(Kind::InvalidParams, "inputResponses is an object of answers, each an object"));
    }
    if params.get("requestState").is_some_and(|s| !s.is_string()) {
        return Err(Error::new(Kind::InvalidParams, "requestState is a string"));
    }
    Ok(())
}

/// A read's result says how long it may be kept, and by whom: as its server said, else not at
/// all and by this caller alone (the gateway knows nothing of the resource's life).
fn cache_hints(answer: &mut Value) {
    if let Some(r) = answer.get_mut("result").and_then(Value::as_object_mut) {
        r.entry("ttlMs").or_insert(json!(0));
        r.entry("cacheScope").or_insert(json!("private"));
    }
}

/// A modern result says it is complete.
fn complete(mut answer: Value) -> Value {
    if let Some(r) = answer.get_mut("result").and_then(Value::as_object_mut) {
        r.insert("resultType".into(), json!("complete"));
    }
    answer
}

/// An answer of the gateway's own that is an error.
fn err(e: Error) -> Value {
    crate::http::wire::answer(&e)
}
