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
    /// The JSON-RPC response (its `id` is replaced with the client's by the router).
    pub response: oneshot::Receiver<Value>,
    /// The id the server knows the call by (for `notifications/cancelled`).
    pub upstream_id: Value,
}

/// A response as a stdio server wrote it, for a client that sees that server alone: the line,
/// where its id is and whether it is an error — the gateway only splices the client's id in.
pub struct Line {
    pub bytes: bytes::Bytes,
    pub id: std::ops::Range<usize>,
    pub error: bool,
}

/// The answer to a call sent as it came (`Link::call_raw`): the server's line, or one the
/// gateway made (the server died, or answered something that is not a response).
pub enum Reply {
    Line(Line),
    Value(Value),
}

impl Reply {
    /// As the message path's answer (`result` or `error`; the id is replaced anyway).
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
}

/// A raw call on its way: `Link::call_raw`'s answer.
pub type RawCallFuture<'a> =
    Pin<Box<dyn std::future::Future<Output = Result<RawCall, crate::error::Error>> + Send + 'a>>;

/// A call sent as it came, in flight.
pub struct RawCall {
    pub events: EventFeed,
    pub response: oneshot::Receiver<Reply>,
    pub upstream_id: Value,
}

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

/// What the gateway declares it can do when it opens a session of its own with a server (a
/// shared child's, a remote server's listing session): what its clients may be asked, relayed
/// to them, so that a server lists what it offers to such clients.
pub fn gateway_capabilities() -> serde_json::Value {
    serde_json::json!({"elicitation": {}, "sampling": {}})
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
    pub capabilities: Value,
    pub server_info: Value,
    pub instructions: Option<String>,
    pub protocol_version: String,
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
    /// Sends a request on behalf of `client` (`None`: the gateway's own, e.g. a listing).
    fn call(
        &self,
        client: Option<&Arc<Session<Client>>>,
        method: &str,
        params: Value,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<Call, crate::error::Error>> + Send + '_>>;

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

    /// Whether `call_raw` may take requests (checked before a request is rewritten for it).
    fn takes_raw(&self) -> bool {
        false
    }

    /// A request `msg` (parsed from `body`, names already the server's own) sent as it came,
    /// only the id swapped for one of the gateway's, and answered with the server's line as it
    /// was (`None`: not this request, use `call`).
    fn call_raw<'a>(
        &'a self,
        _client: &'a Arc<Session<Client>>,
        _body: &'a [u8],
        _msg: &'a crate::jsonrpc::Envelope<'a>,
    ) -> Option<RawCallFuture<'a>> {
        None
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
