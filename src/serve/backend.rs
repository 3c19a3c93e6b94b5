//! What the router needs of one upstream server, whatever its transport: calls that yield the
//! messages related to them (progress, logging, server→client requests) and then a response;
//! notifications; and what the server said it is at `initialize`.

use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::queue::{self, Class, Item};
use super::session::Client;
use crate::mcp::session::Session;

/// Something the server sent in the course of one call.
pub enum Event {
    /// A notification (progress tokens already the client's own).
    Notification(Value),
    /// A server→client request (elicitation, sampling, roots): its answer goes to `reply`, as a
    /// JSON-RPC response object (`result` or `error`; the id is the backend's business).
    Request { method: String, params: Value, reply: oneshot::Sender<Value> },
}

impl Item for Event {
    fn class(&self) -> Class {
        match self {
            Event::Notification(m) => Class::of(m, ""),
            Event::Request { .. } => Class::Request,
        }
    }
}

/// Where a call's events go (bounded: `queue` says what gives way).
pub type Events = queue::Sender<Event>;

/// A call's events, for the one who follows it.
pub type EventFeed = queue::Receiver<Event>;

/// A call in flight.
pub struct Call {
    pub events: EventFeed,
    /// The response, as the server wrote it where the transport keeps its bytes (`Reply::Line`:
    /// the client's id is spliced in), else as a value (its `id` replaced by the front).
    pub response: oneshot::Receiver<Reply>,
    /// The id the server knows the call by (for `notifications/cancelled`).
    pub upstream_id: Value,
}

/// A response as a stdio server wrote it: the line, where its id is and whether it is an
/// error — the gateway only splices the client's id in.
pub struct Line {
    pub bytes: bytes::Bytes,
    pub id: std::ops::Range<usize>,
    pub error: bool,
}

/// A call's answer: the server's line, or a value (a remote server's answer, or one the gateway
/// made: the server died, or answered something that is not a response).
pub enum Reply {
    Line(Line),
    Value(Value),
}

impl Reply {
    /// As a value (`result` or `error`; the id is replaced anyway).
    pub fn into_value(self) -> Value {
        match self {
            Reply::Value(v) => v,
            Reply::Line(l) => serde_json::from_slice(&l.bytes).unwrap_or_else(|_| {
                let e =
                    crate::error::Error::new(crate::error::Kind::UpstreamProtocol, "the server's answer is not JSON");
                crate::http::wire::answer(&e)
            }),
        }
    }

    /// Whether it is an error (for the metrics).
    pub fn is_error(&self) -> bool {
        match self {
            Reply::Line(l) => l.error,
            Reply::Value(v) => v.get("error").is_some(),
        }
    }
}

/// A request as it goes to a server. The gateway's own requests, and those it must read to
/// route, are messages; a client's request to a server already decided goes as it came, and
/// the transport chooses: one that writes bytes (a stdio child) sends them with only the id
/// swapped (and a prefixed name, `rename`), any other reads them (`into_parts`).
pub enum Outgoing<'a> {
    Message { method: &'a str, params: Value },
    AsItCame { method: &'a str, body: &'a [u8], msg: &'a crate::jsonrpc::Envelope<'a>, rename: Option<&'a str> },
}

impl<'a> Outgoing<'a> {
    /// A message with the server's own `name` in its params, for a prefixed one.
    pub fn renamed(method: &'a str, mut params: Value, rename: Option<&str>) -> Self {
        if let (Some(inner), Some(p)) = (rename, params.as_object_mut()) {
            p.insert("name".to_owned(), Value::String(inner.to_owned()));
        }
        Outgoing::Message { method, params }
    }

    pub fn method(&self) -> &'a str {
        match self {
            Outgoing::Message { method, .. } | Outgoing::AsItCame { method, .. } => method,
        }
    }

    /// The method and the params as a value, the server's own name in them.
    pub fn into_parts(self) -> (&'a str, Value) {
        match self {
            Outgoing::Message { method, params } => (method, params),
            Outgoing::AsItCame { method, msg, rename, .. } => {
                Outgoing::renamed(method, msg.params_value(), rename).into_parts()
            }
        }
    }
}

/// A call on its way: `Link::call`'s answer.
pub type CallFuture<'a> = Pin<Box<dyn std::future::Future<Output = Result<Call, crate::error::Error>> + Send + 'a>>;

/// Something a server sent outside any call.
pub struct Unsolicited {
    pub backend: String,
    /// The client session it is for, when the backend keeps one upstream session per client.
    pub session: Option<String>,
    pub message: Value,
    /// For a server→client request: where the client's answer goes.
    pub reply: Option<oneshot::Sender<Value>>,
}

impl Item for Unsolicited {
    fn class(&self) -> Class {
        if self.reply.is_some() {
            return Class::Request;
        }
        Class::of(&self.message, &format!("{} {}", self.backend, self.session.as_deref().unwrap_or("")))
    }
}

/// Where backends send what they send on their own (bounded: `queue` says what gives way).
pub type UnsolicitedTx = queue::Sender<Unsolicited>;

/// What the gateway says of itself when it opens a session of its own with a server (a shared
/// child's, a remote server's listing session): its `clientInfo`, and as capabilities what any
/// of its clients may be able to answer — elicitation (form and URL), sampling, roots — so that a
/// server offers what needs them. A server's question goes to a client that declared it can
/// answer; one that did not is answered for it with an error naming what it lacks
/// (`Client::request`).
pub fn gateway_hello() -> serde_json::Value {
    serde_json::json!({
        "capabilities": {"elicitation": {"form": {}, "url": {}}, "sampling": {}, "roots": {"listChanged": true}},
        "clientInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// The gateway's own `initialize` params: `gateway_hello` at the revision it speaks to servers.
pub fn gateway_init() -> serde_json::Value {
    let mut init = gateway_hello();
    init["protocolVersion"] = serde_json::json!("2025-11-25");
    init
}

/// What a client's own server session is told of it (a stateful server's child): the client's
/// own capabilities and `clientInfo`, as its `initialize` gave them.
pub fn client_hello(init: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "capabilities": init.get("capabilities").cloned().unwrap_or_else(|| serde_json::json!({})),
        "clientInfo": init.get("clientInfo").cloned().unwrap_or_else(|| gateway_hello()["clientInfo"].clone()),
    })
}

/// The notifications that say a server's listings changed.
pub const LIST_CHANGED: [&str; 3] =
    ["notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed"];

/// Tells the router that `backend`'s listings changed (it came, went, or was reconfigured).
pub fn announce_lists_changed(tx: &UnsolicitedTx, backend: &str) {
    for method in LIST_CHANGED {
        let message = serde_json::json!({"jsonrpc": "2.0", "method": method});
        tx.push(Unsolicited { backend: backend.to_owned(), session: None, message, reply: None });
    }
}

/// What a server answered to `initialize`.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    /// The result as the server wrote it (its members, their order): what one server's own
    /// endpoint answers.
    pub result: Value,
    pub capabilities: Value,
    pub server_info: Value,
    pub instructions: Option<String>,
    pub protocol_version: String,
    /// A 2026-07-28 server's own `server/discover` result (its capabilities as they are: its
    /// 2026-07-28 clients reach it as it is).
    pub discovered: Option<Value>,
}

/// Where a lone server's passthrough message goes: the engine that takes it, and the session.
pub type Destination<'a> = (&'a crate::connect::Proxy, crate::connect::Forward);

/// Where a lone server's passthrough message goes, if it can go as it is.
pub enum Passthrough<'a> {
    /// This transport cannot take it as it is: use `call`.
    No,
    Ready(Destination<'a>),
    /// Once the client's upstream session is open (`None`: it could not be, or the server
    /// turned out to take no passthrough). Boxed: rare, and opening runs a whole initialize.
    Opening(Pin<Box<dyn std::future::Future<Output = Option<Destination<'a>>> + Send + 'a>>),
}

/// The interface each transport implements.
pub trait Link: Send + Sync {
    /// Sends a request on behalf of `client` (`None`: the gateway's own, e.g. a listing): the
    /// one way a request reaches a server, whatever its transport; what it can send as it came
    /// it sends so (`Outgoing`).
    fn call<'a>(&'a self, client: Option<&'a Arc<Session<Client>>>, out: Outgoing<'a>) -> CallFuture<'a>;

    /// Sends a notification on behalf of `client` (`notifications/cancelled` and the like).
    fn notify(&self, client: &Arc<Session<Client>>, method: &str, params: Value);

    /// What the server is, once it has answered `initialize`.
    fn info(&self) -> Option<ServerInfo>;

    /// The client session ended: release what the backend keeps for it.
    fn forget(&self, client: &Session<Client>);

    /// Healthy, starting, or why not.
    fn health(&self) -> Health;

    /// How many times the server was restarted.
    fn restarts(&self) -> u64 {
        0
    }

    /// While the server is down: how long until the next attempt to start it.
    fn retry_in(&self) -> Option<std::time::Duration> {
        None
    }

    /// The server could not be started (and has not come up since): calls fail at once.
    fn start_failed(&self) -> bool {
        false
    }

    /// Waits until the server is ready, at most until `deadline`; false if it is not (down, or
    /// still starting then). Polled: this waits only on a listing's bounded start-up wait.
    fn wait_ready<'a>(
        &'a self,
        deadline: tokio::time::Instant,
    ) -> Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            loop {
                match self.health() {
                    Health::Ready => return true,
                    Health::Down(_) => return false,
                    Health::Starting if tokio::time::Instant::now() >= deadline => return false,
                    Health::Starting => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
                }
            }
        })
    }

    /// One upstream connection serves every client (a shared stdio child): what one client
    /// changes there (subscriptions) changes it for all.
    fn shared(&self) -> bool {
        false
    }

    /// Each client has a server of its own (a stateful server's children, started with that
    /// client's roots and `clientInfo`): what it lists is that client's alone.
    fn per_client(&self) -> bool {
        false
    }

    /// When the client sees this server alone and unprefixed, where its message goes as it
    /// came (with the client's own `MCP-Protocol-Version`, `version`), to be answered as the
    /// server answers. The fast path: nothing parsed or rewritten.
    fn passthrough<'a>(
        &'a self,
        _client: &'a Arc<Session<Client>>,
        _version: Option<http::HeaderValue>,
    ) -> Passthrough<'a> {
        Passthrough::No
    }

    /// For a 2026-07-28 client's request to a server that speaks that revision too: the engine
    /// that sends it as it came (its `_meta`, its headers) and how; the server's answer — its
    /// input-required results, its tasks, its streams — is the client's as the server wrote it.
    /// `None`: not such a server, or one whose requests the gateway must carry itself (a token
    /// it exchanges or a user's own: `call`).
    fn modern_relay<'a>(&'a self, _client: &Session<Client>) -> Option<Destination<'a>> {
        None
    }

    /// Whether the server is told which user each request is for (their own token, or one
    /// exchanged for it): only then can it keep what one user starts (a task) from another.
    fn sees_each_user(&self) -> bool {
        false
    }

    /// Stops the server (children: their process group) within `grace`.
    fn stop(&self, grace: std::time::Duration) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready,
    Starting,
    /// Down, with the reason; it may come back (restarts) or not (gave up).
    Down(String),
}
