//! `subscriptions/listen` (2026-07-28): one long-lived request whose SSE stream carries the
//! change notifications its caller opted in to — list changes, and updates of the resources it
//! names (the revision's replacement for the GET stream and `resources/subscribe`).
//!
//! Behind the gateway the servers speak 2025, where those notifications come unasked (list
//! changes) or on a subscription a session made (resource updates). A caller's 2026-07-28
//! requests go through the caller's upstream sessions (`modern_client`, modern.rs: one, and one
//! more per set of roots it gave); its listen streams are registered here against the caller
//! (view and user), its first session subscribes at the servers to the resources they name, and
//! each other one when the caller's next call to that server goes through it (`follow`) — so a
//! server that keeps state per session (what it updates, what it lists) sees the caller's calls
//! and subscriptions together, as a 2025 client's would be; what several of them say alike is
//! heard once. `dispatch` (mod.rs)
//! hands every list change and resource update to `Listeners::tell`, which writes each to the
//! streams it concerns, tagged with the subscription's id (the listen request's id). A stream
//! ends when its caller goes, or with the gateway; its subscriptions end with it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Gateway;
use super::backend::Outgoing;
use super::router::Routed;
use super::session::{Caller, Client, View};
use crate::error::{Error, Kind};
use crate::http::body::Body;
use crate::http::wire;
use crate::mcp::modern::{META_SERVER_INFO, META_SUBSCRIPTION_ID};
use crate::mcp::session::Session;
use crate::policy::Access;
use crate::transport::sse;

/// A comment on an idle stream this often keeps proxies from closing it (and the session from
/// being taken for idle).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// SSE events written ahead of a slow reader; past this, the feed gives way as `queue` says.
const BUFFER: usize = 16;

/// What a listen stream carries: the caller's filter, narrowed to what the gateway can deliver.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Filter {
    tools: bool,
    prompts: bool,
    resources: bool,
    /// Resource URIs whose updates are wanted, as the caller names them.
    uris: Vec<String>,
}

impl Filter {
    /// `params.notifications`, which the revision requires: an object of three booleans and a
    /// list of URIs, each optional.
    fn read(params: &Value) -> Result<Filter, Error> {
        let bad = |why: &str| Error::new(Kind::InvalidParams, format!("subscriptions/listen: {why}"));
        let n = params.get("notifications").ok_or_else(|| bad("params.notifications is required"))?;
        let n = n.as_object().ok_or_else(|| bad("params.notifications is an object"))?;
        let flag = |key: &str| match n.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(&format!("notifications.{key} is a boolean"))),
        };
        let uris = match n.get("resourceSubscriptions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => {
                let uris: Option<Vec<String>> = a.iter().map(|u| u.as_str().map(str::to_owned)).collect();
                let mut uris = uris.ok_or_else(|| bad("notifications.resourceSubscriptions lists strings"))?;
                // Each once, in the order given.
                let mut seen = std::collections::HashSet::new();
                uris.retain(|u| seen.insert(u.clone()));
                if uris.len() > super::session::MAX_SUBSCRIPTIONS {
                    let max = super::session::MAX_SUBSCRIPTIONS;
                    return Err(bad(&format!("at most {max} resourceSubscriptions per stream")));
                }
                uris
            }
            Some(_) => return Err(bad("notifications.resourceSubscriptions is an array")),
        };
        Ok(Filter {
            tools: flag("toolsListChanged")?,
            prompts: flag("promptsListChanged")?,
            resources: flag("resourcesListChanged")?,
            uris,
        })
    }

    /// What of it the view's servers can deliver, as their capabilities say (the gateway says
    /// list changes itself; resource updates need a server that takes subscriptions).
    fn honored(mut self, capabilities: &Value) -> Filter {
        let has = |path: &str| capabilities.pointer(path) == Some(&Value::Bool(true));
        self.tools &= has("/tools/listChanged");
        self.prompts &= has("/prompts/listChanged");
        self.resources &= has("/resources/listChanged");
        if !has("/resources/subscribe") {
            self.uris.clear();
        }
        self
    }

    fn is_empty(&self) -> bool {
        !self.tools && !self.prompts && !self.resources && self.uris.is_empty()
    }

    /// The filter as the acknowledgement says it: only what is on.
    fn to_wire(&self) -> Value {
        let mut f = serde_json::Map::new();
        for (key, on) in [
            ("toolsListChanged", self.tools),
            ("promptsListChanged", self.prompts),
            ("resourcesListChanged", self.resources),
        ] {
            if on {
                f.insert(key.into(), Value::Bool(true));
            }
        }
        if !self.uris.is_empty() {
            f.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(f)
    }

    /// Whether a server's notification goes on the stream (logs, progress and the like never do).
    fn passes(&self, note: &Value) -> bool {
        match note.get("method").and_then(Value::as_str) {
            Some("notifications/tools/list_changed") => self.tools,
            Some("notifications/prompts/list_changed") => self.prompts,
            Some("notifications/resources/list_changed") => self.resources,
            Some("notifications/resources/updated") => {
                note.pointer("/params/uri").and_then(Value::as_str).is_some_and(|u| self.uris.iter().any(|w| w == u))
            }
            _ => false,
        }
    }
}

/// A notification tagged with the subscription it belongs to.
fn tagged(mut note: Value, id: &Value) -> Value {
    if !note.get("params").is_some_and(Value::is_object) {
        note["params"] = json!({});
    }
    let params = &mut note["params"];
    if !params.get("_meta").is_some_and(Value::is_object) {
        params["_meta"] = json!({});
    }
    params["_meta"][META_SUBSCRIPTION_ID] = id.clone();
    note
}

/// The open listen streams, by their caller.
#[derive(Default)]
pub struct Listeners {
    open: std::sync::Mutex<Vec<Listener>>,
    next: std::sync::atomic::AtomicU64,
    /// One stream of a caller at a time subscribes and registers, or unregisters and
    /// unsubscribes: a stream's end must not take back a subscription a new stream of the
    /// caller is counting on. (Striped by caller: a slow server holds up its own callers.)
    changing: [tokio::sync::Mutex<()>; 16],
}

/// One open stream: whose it is, what it wants, where it goes.
struct Listener {
    key: u64,
    caller: Caller,
    filter: Filter,
    to: super::queue::Sender<Value>,
    /// What the caller's sessions said last (the notification's method and URI, the session,
    /// when): a server tells each subscribed session, and the caller hears it once.
    recent: std::collections::VecDeque<(String, String, std::time::Instant)>,
}

/// A notification another of the caller's sessions said this recently is the same news.
const ECHO_WITHIN: Duration = Duration::from_secs(1);
/// Notifications kept per stream to know an echo by.
const RECENT: usize = 8;

/// Streams open at once, over every caller (as the SDK's servers bound them), and per caller
/// (so that one caller cannot take them all).
const MAX_STREAMS: usize = 1024;
const PER_CALLER: usize = 32;

impl Listeners {
    /// Whether any stream is open (`tell` has somewhere to write).
    pub fn any(&self) -> bool {
        !self.open.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// What a server said on its own, to the streams it concerns: a list change to every stream
    /// that sees the server (or, when one upstream session reported it, to the streams of that
    /// session's caller, `from`); a resource update to the streams that name the resource, under
    /// the URI they named it by. Called for every such notification (`dispatch`); cheap when
    /// none is open.
    pub fn tell(&self, router: &super::router::Router, backend: &str, from: Option<(&Caller, &str)>, note: &Value) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.is_empty() {
            return;
        }
        let uri = note.pointer("/params/uri").and_then(Value::as_str);
        let news = format!("{backend} {} {}", note["method"].as_str().unwrap_or_default(), uri.unwrap_or_default());
        for l in open.iter_mut() {
            let sees = match &l.caller.view {
                View::All => true,
                View::One(n) => n == backend,
            };
            if !sees || from.is_some_and(|(c, _)| *c != l.caller) {
                continue;
            }
            // Heard already from another of the caller's sessions, or from the gateway's own
            // (`""`; a server tells every session of a change): an echo.
            let session = from.map_or("", |(_, s)| s);
            let now = std::time::Instant::now();
            l.recent.retain(|(_, _, at)| now.duration_since(*at) < ECHO_WITHIN);
            if l.recent.iter().any(|(n, s, _)| *n == news && s != session) {
                continue;
            }
            if l.recent.len() >= RECENT {
                l.recent.pop_front();
            }
            l.recent.push_back((news.clone(), session.to_owned(), now));
            let mut note = note.clone();
            if let Some(uri) = uri {
                // Under the URI this stream's caller named it by: as the merged endpoint shows
                // it, or as its server wrote it.
                let shown = router.client_uri(&l.caller.view, backend, uri);
                let theirs = if l.filter.uris.contains(&shown) { shown } else { uri.to_owned() };
                note["params"]["uri"] = Value::String(theirs);
            }
            if l.filter.passes(&note) {
                l.to.push(note);
            }
        }
    }

    fn changing(&self, caller: &Caller) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let stripe = BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(caller) as usize;
        &self.changing[stripe % self.changing.len()]
    }

    /// Registers a stream; its key takes it away again.
    fn add(&self, caller: Caller, filter: Filter, to: super::queue::Sender<Value>) -> Result<u64, Error> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= MAX_STREAMS || open.iter().filter(|l| l.caller == caller).count() >= PER_CALLER {
            return Err(Error::new(Kind::TooManySessions, "too many subscriptions/listen streams are open"));
        }
        let key = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        open.push(Listener { key, caller, filter, to, recent: Default::default() });
        Ok(key)
    }

    /// Takes a stream away: the URIs only it wanted of its caller's (to unsubscribe from).
    fn remove(&self, key: u64) -> Vec<String> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = open.iter().position(|l| l.key == key) else { return Vec::new() };
        let gone = open.swap_remove(i);
        let kept = |u: &String| open.iter().any(|l| l.caller == gone.caller && l.filter.uris.contains(u));
        gone.filter.uris.into_iter().filter(|u| !kept(u)).collect()
    }

    /// The URIs the caller's streams name (each of its sessions subscribes to them).
    fn uris_of(&self, caller: &Caller) -> Vec<String> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut uris: Vec<String> =
            open.iter().filter(|l| l.caller == *caller).flat_map(|l| l.filter.uris.iter().cloned()).collect();
        uris.sort_unstable();
        uris.dedup();
        uris
    }
}

impl Gateway {
    /// A `subscriptions/listen` request (its `_meta` already checked): the stream, or the error
    /// that refuses it.
    pub async fn listen(
        self: &Arc<Self>,
        (view, access, owner): (View, &Access, Option<&str>),
        caps: &Value,
        id: Value,
        params: &Value,
    ) -> Response<Body> {
        let raw_id = serde_json::value::to_raw_value(&id).ok();
        let refuse = |e: &Error| wire::error(e, raw_id.as_deref());
        let init = self.router.initialize(&view, "2025-11-25");
        let filter = match Filter::read(params) {
            Ok(f) => f.honored(&init["result"]["capabilities"]),
            Err(e) => return refuse(&e),
        };
        let client = match self.modern_session(&view, owner, caps, None) {
            Ok(c) => c,
            Err(e) => return refuse(&e),
        };
        // Set up in a task of its own: a caller that leaves meanwhile leaves nothing subscribed
        // (the stream, finding nobody to write to, ends and takes it back).
        let (tx, rx) = mpsc::channel::<Bytes>(BUFFER);
        let (ready_tx, ready) = tokio::sync::oneshot::channel::<Result<(), Error>>();
        let (gateway, access, info) = (self.clone(), access.clone(), init["result"]["serverInfo"].clone());
        tokio::spawn(async move {
            let caller = Caller::of(&client);
            let (key, feed, filter) = {
                let _one = gateway.listeners.changing(&caller).lock().await;
                let mut filter = filter;
                filter.uris = gateway.subscribe(&client, &access, filter.uris).await;
                let (to, feed) = super::queue::bounded::<Value>(super::queue::SESSION);
                match gateway.listeners.add(caller.clone(), filter.clone(), to) {
                    // The caller's other sessions (for the sets of roots it gave) follow at their
                    // next call (`follow`).
                    Ok(key) => (key, feed, filter),
                    Err(e) => {
                        gateway.unsubscribe(&client, filter.uris).await;
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
            };
            tracing::debug!(session = client.label(), "subscriptions/listen: {}", filter.to_wire());
            let _ = ready_tx.send(Ok(()));
            gateway.deliver(client, (key, feed), filter, (id, info), tx).await;
        });
        match ready.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return refuse(&e),
            Err(_) => return refuse(&Error::new(Kind::Internal, "the listen stream ended before it began")),
        }
        let mut resp = Response::new(http_body_util::BodyExt::boxed_unsync(super::front::Channel::new(rx)));
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        resp.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }

    /// Subscribes the caller's session to each URI the caller may read, at the server that
    /// offers it: the URIs it is subscribed to (one no server offers, or that its server
    /// refused, is left out of the acknowledgement).
    async fn subscribe(&self, session: &Arc<Session<Client>>, access: &Access, uris: Vec<String>) -> Vec<String> {
        let mut kept = Vec::with_capacity(uris.len());
        for uri in uris {
            if !self.router.may_use_resource(&session.upstream.view, access, &uri) {
                continue;
            }
            let answer = self.ask(session, "resources/subscribe", &uri).await;
            match answer.get("error") {
                None => kept.push(uri),
                Some(e) => {
                    tracing::debug!(session = session.label(), "subscriptions/listen: {uri} left out: {e}");
                    // Not kept counted for the session (the router counted it on the way out).
                    self.ask(session, "resources/unsubscribe", &uri).await;
                }
            }
        }
        kept
    }

    async fn unsubscribe(&self, session: &Arc<Session<Client>>, uris: Vec<String>) {
        for uri in uris {
            self.ask(session, "resources/unsubscribe", &uri).await;
        }
    }

    /// A call of the caller's goes to `backend` through `session`, one of the caller's other
    /// sessions (for a set of roots it gave): subscribed there first to what the caller's
    /// streams name at that server, as its first session is — a server that keeps what it
    /// updates per session (server-everything) updates the session the call made the request in.
    /// (The URIs were checked against the caller's rights when its stream began.)
    pub(super) async fn follow(&self, session: &Arc<Session<Client>>, backend: &str) {
        if !self.listeners.any() {
            return;
        }
        let caller = Caller::of(session);
        let missing = || -> Vec<String> {
            let held = session.upstream.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
            let at =
                |u: &String| self.router.resource_server(&caller.view, u).is_some_and(|(b, _)| b.cfg.name == backend);
            self.listeners.uris_of(&caller).into_iter().filter(|u| !held.contains_key(u) && at(u)).collect()
        };
        if missing().is_empty() {
            return;
        }
        let _one = self.listeners.changing(&caller).lock().await;
        for uri in missing() {
            if self.ask(session, "resources/subscribe", &uri).await.get("error").is_some() {
                self.ask(session, "resources/unsubscribe", &uri).await;
            }
        }
    }

    /// `resources/subscribe` or `unsubscribe` for `uri` in `session`, through the router (which
    /// finds the server and keeps the session's count), and its answer.
    async fn ask(&self, session: &Arc<Session<Client>>, method: &'static str, uri: &str) -> Value {
        let out = Outgoing::Message { method, params: json!({"uri": uri}) };
        match self.router.route(session, None, out).await {
            Routed::Answer(a) => a,
            Routed::Call { backend, call, timeout } => match tokio::time::timeout(timeout, call.response).await {
                Ok(Ok(reply)) => reply.into_value(),
                _ => wire::answer(&Error::late(&backend, timeout)),
            },
        }
    }

    /// Writes the stream: the acknowledgement, then what `Listeners::tell` sends it, until the
    /// caller goes or the gateway stops (a last result says the stream is complete); then its
    /// subscriptions end.
    async fn deliver(
        &self,
        session: Arc<Session<Client>>,
        (key, mut feed): (u64, super::queue::Receiver<Value>),
        filter: Filter,
        (id, info): (Value, Value),
        tx: mpsc::Sender<Bytes>,
    ) {
        let event = |v: &Value| sse::encode(v.to_string().as_bytes(), None);
        let ack = json!({
            "jsonrpc": "2.0",
            "method": "notifications/subscriptions/acknowledged",
            "params": {"notifications": filter.to_wire()},
        });
        let done = json!({
            "jsonrpc": "2.0", "id": id,
            "result": {"resultType": "complete", "_meta": {META_SUBSCRIPTION_ID: id, META_SERVER_INFO: info}},
        });
        let mut open = tx.send(event(&tagged(ack, &id))).await.is_ok();
        // Nothing to deliver: acknowledged, and complete at once.
        let mut finish = filter.is_empty();
        let mut expired = false;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        while open && !finish {
            tokio::select! {
                m = feed.recv() => match m {
                    Some(m) => open = tx.send(event(&tagged(m, &id))).await.is_ok(),
                    None => finish = true,
                },
                _ = tick.tick() => {
                    // The session is in use while a stream follows it; one a reload ended ends
                    // the stream.
                    if self.sessions_modern.get(session.id()).is_none() {
                        (finish, expired) = (true, true);
                    } else {
                        open = tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_ok();
                    }
                }
                () = tx.closed() => open = false,
                () = self.shutdown.cancelled() => finish = true,
            }
        }
        if open {
            let _ = tx.send(event(&done)).await;
        }
        let caller = Caller::of(&session);
        let _one = self.listeners.changing(&caller).lock().await;
        let only_ours = self.listeners.remove(key);
        // From each of the caller's sessions that holds them (an ended session took its
        // subscriptions back: asking again would open a new one).
        let live = self.caller_sessions(&caller).into_iter().filter(|s| !expired || !Arc::ptr_eq(s, &session));
        for s in live {
            let held: Vec<String> = {
                let subs = s.upstream.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
                only_ours.iter().filter(|u| subs.contains_key(*u)).cloned().collect()
            };
            self.unsubscribe(&s, held).await;
        }
        tracing::debug!(session = session.label(), "subscriptions/listen ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_is_read_strictly_and_narrowed_to_what_servers_deliver() {
        let f =
            Filter::read(&json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["a", "b"]}}));
        let f = f.unwrap_or_default();
        assert_eq!(f, Filter { tools: true, prompts: false, resources: false, uris: vec!["a".into(), "b".into()] });
        for bad in [
            json!({}),
            json!({"notifications": []}),
            json!({"notifications": {"toolsListChanged": "yes"}}),
            json!({"notifications": {"resourceSubscriptions": "a"}}),
            json!({"notifications": {"resourceSubscriptions": [1]}}),
        ] {
            assert!(Filter::read(&bad).is_err(), "{bad}");
        }
        let caps = json!({"tools": {"listChanged": true}, "resources": {"listChanged": true}});
        let honored = f.honored(&caps);
        assert_eq!(honored.to_wire(), json!({"toolsListChanged": true}));
        assert!(!honored.passes(&json!({"method": "notifications/prompts/list_changed"})));
        assert!(honored.passes(&json!({"method": "notifications/tools/list_changed"})));
        assert!(!honored.passes(&json!({"method": "notifications/message", "params": {}})));
    }

    /// A server tells each subscribed session of a caller's (one per set of roots it gave): the
    /// caller hears the news once; the same session saying it again is news again.
    #[test]
    fn a_callers_stream_hears_news_once_however_many_sessions_say_it() {
        let cfg = crate::config::parse(r#"{"mcpServers": {"s": {"url": "http://127.0.0.1:9/mcp"}}}"#, &|_| None);
        let router = super::super::router::Router::new(Arc::new(cfg.unwrap_or_else(|p| panic!("{p:?}"))));
        let listeners = Listeners::default();
        let caller = Caller { view: View::All, owner: None };
        let other = Caller { view: View::All, owner: Some("someone else".into()) };
        let filter = Filter { tools: true, prompts: false, resources: false, uris: vec!["u".into()] };
        let (to, mut feed) = super::super::queue::bounded::<Value>(16);
        feed.listen(true);
        listeners.add(caller.clone(), filter, to).unwrap();
        let updated = json!({"method": "notifications/resources/updated", "params": {"uri": "u"}});
        let changed = json!({"method": "notifications/tools/list_changed"});
        // Each told, then what the stream got (drained: a queue keeps one of alike notes).
        type From<'a> = Option<(&'a Caller, &'a str)>;
        let told: [(From<'_>, &Value, usize); 6] = [
            (Some((&caller, "session-1")), &updated, 1),
            (Some((&caller, "session-2")), &updated, 0),
            (Some((&other, "session-3")), &updated, 0),
            (Some((&caller, "session-1")), &updated, 1),
            (Some((&caller, "session-2")), &changed, 1),
            // The same news from the gateway's own session: an echo too.
            (None, &changed, 0),
        ];
        for (i, (from, note, heard)) in told.into_iter().enumerate() {
            listeners.tell(&router, "s", from, note);
            assert_eq!(std::iter::from_fn(|| feed.try_recv()).count(), heard, "told #{i}: {note}");
        }
    }

    #[test]
    fn each_notification_carries_the_subscription_id() {
        let id = json!(7);
        let t = tagged(json!({"method": "notifications/tools/list_changed"}), &id);
        assert_eq!(t.pointer("/params/_meta/io.modelcontextprotocol~1subscriptionId"), Some(&id));
        let t = tagged(
            json!({"method": "notifications/resources/updated", "params": {"uri": "u", "_meta": {"k": 1}}}),
            &id,
        );
        assert_eq!(t["params"]["_meta"], json!({"k": 1, "io.modelcontextprotocol/subscriptionId": 7}));
    }
}
