//! A client of the gateway: what it said at `initialize`, the stream that carries what servers
//! send it on their own, and the server→client requests waiting for its answers.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::oneshot;

use super::queue;
use crate::jsonrpc::ids::Ids;

/// Cancellations kept for calls not here yet, per session, and for how long.
const EARLY: usize = 8;
const EARLY_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a client's call is.
enum Flight {
    /// On its way to its server; `cancelled` when the client cancelled it meanwhile.
    Sending { cancelled: bool },
    /// With `backend`, which knows it as `upstream_id`.
    Sent { backend: String, upstream_id: Value },
}

/// Which servers a client sees: all (the merged endpoint) or one (`/servers/<name>/mcp`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum View {
    All,
    One(String),
}

pub struct Client {
    pub view: View,
    /// The user who opened it (`sub`), when the gateway authenticates: only they may use it.
    /// (The session 2026-07-28 callers share without authentication: a hash of their token.)
    pub owner: Option<String>,
    /// The client's `initialize` params (its capabilities decide what servers may ask of it),
    /// as compact JSON text: read rarely (a server's question, opening an upstream session),
    /// and a tree of maps would cost every idle session a kilobyte more.
    init: Box<serde_json::value::RawValue>,
    /// What it declared it can answer, as far as servers offer tools by it.
    pub declared: Declared,
    /// Messages for the client's GET stream (bounded: `queue` says what gives way).
    outbound: queue::Sender<Value>,
    outbound_rx: Mutex<Option<queue::Receiver<Value>>>,
    /// A newer GET stream asks the open one to end; the open one says it has.
    stream_superseded: tokio::sync::Notify,
    stream_returned: tokio::sync::Notify,
    /// Server→client requests sent to this client, by the id the gateway gave them.
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    ids: Ids,
    /// Resource URIs the client subscribed to (as it names them), each with its server and the
    /// URI as that server knows it: what the session's end takes back. At most
    /// `MAX_SUBSCRIPTIONS`.
    pub subscriptions: Mutex<HashMap<String, (String, String)>>,
    /// The client's own bearer token, as last sent (for servers that take the caller's token).
    bearer: Mutex<Option<http::HeaderValue>>,
    /// Calls in flight, by the client's request id (as JSON text).
    in_flight: Mutex<HashMap<String, Flight>>,
    /// Cancellations of calls not here yet, and when they came.
    early: Mutex<Vec<(String, std::time::Instant)>>,
    /// The SSE streams written for its calls, kept for resumption when it leaves one midway.
    pub streams: std::sync::Arc<super::stream::Streams>,
    /// The roots the client gave once (a `roots/list` result), answered for it to every server
    /// that asks: the session of 2026-07-28 callers who named these roots (they have no stream
    /// a server could ask them on).
    pub roots: Option<Value>,
}

impl Client {
    pub fn new(view: View, owner: Option<String>, init: Value) -> Client {
        let (tx, rx) = queue::bounded(queue::SESSION);
        // No GET stream open yet: logs and the like have nobody to go to.
        rx.listen(false);
        Client {
            view,
            owner,
            declared: Declared::of(init.get("capabilities").unwrap_or(&Value::Null)),
            init: serde_json::value::to_raw_value(&init)
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
            outbound: tx,
            outbound_rx: Mutex::new(Some(rx)),
            stream_superseded: tokio::sync::Notify::new(),
            stream_returned: tokio::sync::Notify::new(),
            waiting: Mutex::new(HashMap::new()),
            ids: Ids::default(),
            subscriptions: Mutex::new(HashMap::new()),
            bearer: Mutex::new(None),
            in_flight: Mutex::new(HashMap::new()),
            early: Mutex::new(Vec::new()),
            streams: Default::default(),
            roots: None,
        }
    }

    /// The session answers servers' `roots/list` with `roots` itself.
    pub fn with_roots(mut self, roots: Value) -> Client {
        self.roots = Some(roots);
        self
    }

    /// A call of the client's is on its way to a server (sent, perhaps, before the server's
    /// id for it is known): a cancellation now is kept for `track`.
    pub fn sending(&self, key: &str) {
        let cancelled = self.cancelled_before(key);
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned(), Flight::Sending { cancelled });
    }

    /// Whether the client cancelled `key` before the gateway had its call (the cancellation
    /// overtook the request on another connection).
    fn cancelled_before(&self, key: &str) -> bool {
        let mut early = self.early.lock().unwrap_or_else(|p| p.into_inner());
        if early.is_empty() {
            return false;
        }
        early.retain(|(_, at)| at.elapsed() < EARLY_FOR);
        let found = early.iter().position(|(k, _)| k == key);
        found.map(|i| early.remove(i)).is_some()
    }

    /// The call (`key`: its id as JSON text) is with `backend` under `upstream_id`; true if the
    /// client cancelled it while it was being sent: the caller passes the cancellation on now.
    pub fn track(&self, key: &str, backend: &str, upstream_id: Value) -> bool {
        let mut flights = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let sent = Flight::Sent { backend: backend.to_owned(), upstream_id };
        match flights.get_mut(key) {
            Some(flight) => matches!(std::mem::replace(flight, sent), Flight::Sending { cancelled: true }),
            None => {
                flights.insert(key.to_owned(), sent);
                false
            }
        }
    }

    /// The call ended (or was cancelled): where it was, if it had reached its server.
    pub fn untrack(&self, key: &str) -> Option<(String, Value)> {
        match self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(key)? {
            Flight::Sent { backend, upstream_id } => Some((backend, upstream_id)),
            Flight::Sending { .. } => None,
        }
    }

    /// The client cancelled the call `key`: where it is, if it has reached its server; a call
    /// still being sent is marked, and `track` says so.
    pub fn cancel(&self, key: &str) -> Option<(String, Value)> {
        let mut flights = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let Some(flight) = flights.get_mut(key) else {
            // Not here yet, perhaps: kept briefly for the call it names (`sending`). Briefly: a
            // late cancellation of a call that ended must not cancel a later one of the same id.
            drop(flights);
            let mut early = self.early.lock().unwrap_or_else(|p| p.into_inner());
            if early.len() == EARLY {
                early.remove(0);
            }
            early.push((key.to_owned(), std::time::Instant::now()));
            return None;
        };
        match flight {
            Flight::Sending { cancelled } => {
                *cancelled = true;
                None
            }
            Flight::Sent { .. } => match flights.remove(key)? {
                Flight::Sent { backend, upstream_id } => Some((backend, upstream_id)),
                Flight::Sending { .. } => None,
            },
        }
    }

    /// Remembers the `Authorization` of the client's latest request (it may refresh it).
    pub fn set_bearer(&self, value: Option<&http::HeaderValue>) {
        if let Some(v) = value {
            let mut v = v.clone();
            v.set_sensitive(true);
            *self.bearer.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
        }
    }

    pub fn bearer(&self) -> Option<http::HeaderValue> {
        self.bearer.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The client's `initialize` params.
    pub fn init(&self) -> Value {
        serde_json::from_str(self.init.get()).unwrap_or_else(|_| Value::Object(Default::default()))
    }

    pub fn capability(&self, name: &str) -> bool {
        self.init().pointer(&format!("/capabilities/{name}")).is_some_and(|v| !v.is_null())
    }

    /// Queues a message for the GET stream (kept until one opens, within the queue's bounds:
    /// while none is open, only what must not be lost or replaces its like).
    pub fn send(&self, msg: Value) {
        self.outbound.push(msg);
    }

    /// `send` for a message told to many sessions, of a class known already: copied only for
    /// those that keep it.
    pub fn send_shared(&self, class: &queue::Class, msg: &Value) {
        self.outbound.push_as(class.clone(), || msg.clone());
    }

    /// The GET stream's feed, one stream at a time. The newest GET wins: a stream still open
    /// (perhaps on a connection its client left without the gateway knowing yet) is told to
    /// end, and its feed is handed over when it has; `None` if that takes longer than `wait`.
    pub async fn take_stream(&self, wait: std::time::Duration) -> Option<queue::Receiver<Value>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let returned = self.stream_returned.notified();
            if let Some(rx) = self.outbound_rx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                rx.listen(true);
                return Some(rx);
            }
            self.stream_superseded.notify_waiters();
            // Told again now and then: the open stream listens only between its sends.
            let again = (tokio::time::Instant::now() + std::time::Duration::from_millis(50)).min(deadline);
            if tokio::time::timeout_at(again, returned).await.is_err() && tokio::time::Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Resolves when a newer GET stream wants this one's feed.
    pub async fn superseded(&self) {
        self.stream_superseded.notified().await;
    }

    /// A GET stream ended: its feed goes back for the next one (nothing queued is lost; until
    /// the next one opens, logs and the like are not kept).
    pub fn return_stream(&self, rx: queue::Receiver<Value>) {
        rx.listen(false);
        *self.outbound_rx.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx);
        self.stream_returned.notify_waiters();
    }

    /// A server's request to this client, under an id of the gateway's, its answer awaited by
    /// `reply` — or `None`, and `reply` told why, when the client did not declare it can answer
    /// such a request (a server asks what the gateway declared for all its clients).
    pub fn request(&self, method: &str, params: Value, reply: oneshot::Sender<Value>) -> Option<Value> {
        if let Err(lacking) = self.can_answer(method, &params) {
            let e = crate::error::Error::new(
                crate::error::Kind::MethodNotFound,
                format!("the client cannot answer {method}: it did not declare the {lacking} capability"),
            );
            let _ = reply.send(crate::http::wire::answer(&e));
            return None;
        }
        let id = self.ids.next().text();
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), reply);
        let mut msg = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method});
        // A request the server sent without params goes without (`null` is not valid params).
        if !params.is_null() {
            msg["params"] = params;
        }
        Some(msg)
    }

    /// Whether the client declared it can answer a server's `method` (`Err`: the capability it
    /// lacks). An elicitation in URL mode needs `elicitation.url`; one in form mode, any
    /// `elicitation` (an empty one means form, as before 2025-11-25).
    pub fn can_answer(&self, method: &str, params: &Value) -> Result<(), &'static str> {
        let needed = match method {
            "roots/list" => "roots",
            "sampling/createMessage" => "sampling",
            "elicitation/create" if params.get("mode").and_then(Value::as_str) == Some("url") => "elicitation/url",
            // Form mode: `elicitation.form`, or an empty `elicitation` (as before 2025-11-25); one
            // that names only `url` takes no forms.
            "elicitation/create" => {
                let e = self.init().pointer("/capabilities/elicitation").cloned().unwrap_or(Value::Null);
                let form = e.get("form").is_some() || e.as_object().is_some_and(serde_json::Map::is_empty);
                return if form { Ok(()) } else { Err("elicitation/form") };
            }
            _ => return Ok(()),
        };
        if self.capability(needed) { Ok(()) } else { Err(needed) }
    }

    /// The client answered one of those requests: hands the answer over. False if no such request.
    pub fn answer(&self, msg: Value) -> bool {
        let Some(id) = msg.get("id").and_then(Value::as_str).map(str::to_owned) else { return false };
        let Some(reply) = self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) else { return false };
        let _ = reply.send(msg);
        true
    }
}

/// Whom a 2026-07-28 caller's upstream sessions are for: a view and the user (`sub`; `None`
/// without authentication) — whose `subscriptions/listen` streams hear what any of them is told.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Caller {
    pub view: View,
    pub owner: Option<String>,
}

impl Caller {
    pub fn of(session: &crate::mcp::session::Session<Client>) -> Caller {
        Caller { view: session.upstream.view.clone(), owner: session.upstream.owner.clone() }
    }
}

/// Subscriptions one session may hold: each is an entry the gateway keeps (and a server may be
/// told of) until the session unsubscribes or ends.
pub const MAX_SUBSCRIPTIONS: usize = 1024;

/// What a client declared it can answer, as far as servers offer tools by it — elicitation (and
/// in URL mode), sampling, roots: clients alike in this are offered alike, so one listing serves
/// them all.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Declared(u8);

impl Declared {
    pub fn of(capabilities: &Value) -> Declared {
        let has = |p: &str| capabilities.pointer(p).is_some_and(|v| !v.is_null());
        let bits = [has("/elicitation"), has("/elicitation/url"), has("/sampling"), has("/roots")];
        Declared(bits.iter().enumerate().fold(0, |acc, (i, b)| acc | (u8::from(*b) << i)))
    }
}
