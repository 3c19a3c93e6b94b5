//! The merged view of many servers: one `initialize` answered by the gateway (capabilities
//! merged), listings each client's own, merged from a cache shared by clients alike (names prefixed
//! `<server><sep><name>`, checked, collisions dropped and reported), and each request routed to
//! the server that owns its tool, prompt or resource. A client of `/servers/<name>/mcp` sees one
//! server as it is: no prefixes, its own capabilities.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::backend::{Call, Link, Outgoing};
use super::session::{Client, Declared, View};
use crate::config::{self, Config, Server};
use crate::error::Error;
use crate::error::Kind;
use crate::mcp::session::Session;
use crate::policy::{Access, What};

pub struct Backend {
    pub cfg: Server,
    pub link: Arc<dyn Link>,
    /// The server asks clients for their roots outside any call (when a session opens, say):
    /// 2026-07-28 callers, who have no stream to be asked on, are asked before their calls.
    pub asks_roots: std::sync::atomic::AtomicBool,
}

impl Backend {
    pub fn new(cfg: Server, link: Arc<dyn Link>) -> Backend {
        Backend { cfg, link, asks_roots: Default::default() }
    }
}

/// The four kinds of listing, by their list method.
pub const LISTINGS: &[(&str, &str)] = &[
    ("tools/list", "tools"),
    ("prompts/list", "prompts"),
    ("resources/list", "resources"),
    ("resources/templates/list", "resourceTemplates"),
];

/// How long a merged listing waits for servers that are still starting.
const START_WAIT: Duration = Duration::from_secs(2);
/// Items of one server's listing kept at most; the rest are left out (and logged).
const MAX_LISTING_ITEMS: usize = 10_000;
/// A listing larger than this (as JSON) is served but not cached: fetched again when asked.
const MAX_CACHED_BYTES: usize = 4 * 1024 * 1024;

struct Listing {
    items: Vec<Value>,
    fetched: Instant,
    ttl: Duration,
}

pub struct Router {
    pub backends: RwLock<BTreeMap<String, Arc<Backend>>>,
    pub config: RwLock<Arc<Config>>,
    /// By server, kind, and whom it was listed for (`Audience`): servers offer tools by what a
    /// client can answer, and some list per session.
    cache: Mutex<HashMap<(String, &'static str, Audience), Listing>>,
    /// (server, client session): the server told this session alone that a listing changed, so
    /// the session's listings of that server are its own from now on.
    diverged: Mutex<std::collections::HashSet<(String, String)>>,
    /// Clients subscribed to each (server, resource URI).
    subscribers: Mutex<HashMap<(String, String), usize>>,
    pub cache_hits: std::sync::atomic::AtomicU64,
    pub cache_misses: std::sync::atomic::AtomicU64,
}

/// What a request needs: an answer now, or a call to a server.
pub enum Routed {
    Answer(Value),
    Call { backend: String, call: Call, timeout: Duration },
}

/// An answer of the gateway's own that is an error.
fn error(kind: Kind, message: impl Into<String>) -> Value {
    crate::http::wire::answer(&crate::error::Error::new(kind, message))
}

impl Router {
    pub fn new(config: Arc<Config>) -> Router {
        Router {
            backends: RwLock::default(),
            config: RwLock::new(config),
            cache: Mutex::default(),
            diverged: Mutex::default(),
            subscribers: Mutex::default(),
            cache_hits: Default::default(),
            cache_misses: Default::default(),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The backends a view sees, enabled ones only, by name.
    pub fn visible(&self, view: &View) -> Vec<Arc<Backend>> {
        let all = self.backends.read().unwrap_or_else(|p| p.into_inner());
        match view {
            View::All => all.values().filter(|b| b.cfg.enabled).cloned().collect(),
            View::One(name) => all.get(name).filter(|b| b.cfg.enabled).cloned().into_iter().collect(),
        }
    }

    pub fn backend(&self, name: &str) -> Option<Arc<Backend>> {
        self.backends.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Whether a tool or prompt (by the name its server knows) is one the configuration shows
    /// and `access` grants: the rule of listings and calls alike.
    pub fn permitted(&self, access: &Access, b: &Backend, what: What, own: &str) -> bool {
        (what != What::Tool || b.cfg.tools.allows(own))
            && (access.is_everything() || access.allows(what, &b.cfg.name, own, &self.merged_name(b, what, own)))
    }

    /// What `/mcp` calls a server's tool, prompt or resource (`<prefix><name>`, or the URI in
    /// the server's namespace).
    fn merged_name(&self, b: &Backend, what: What, own: &str) -> String {
        let prefix = self.prefix(&View::All, b);
        match what {
            _ if prefix.is_empty() => own.to_owned(),
            What::Resource => super::uris::namespaced(&config::resource_namespace(&b.cfg), own),
            What::Tool | What::Prompt => format!("{prefix}{own}"),
        }
    }

    /// The server a resource URI names without asking any server: the one server the client
    /// sees, or the one whose namespace the URI carries on a merged endpoint.
    pub fn resource_server(&self, view: &View, uri: &str) -> Option<(Arc<Backend>, String)> {
        if let Some(b) = self.alone(view) {
            return Some((b, uri.to_owned()));
        }
        let (ns, own) = super::uris::split(uri)?;
        let b = self
            .visible(view)
            .into_iter()
            .find(|b| !self.prefix(view, b).is_empty() && config::resource_namespace(&b.cfg) == ns)?;
        Some((b, own.to_owned()))
    }

    fn prefix(&self, view: &View, b: &Backend) -> String {
        match view {
            View::One(_) => String::new(),
            View::All => {
                let cfg = self.config();
                config::validate_prefix(&b.cfg, cfg.enabled, &cfg.gateway.separator)
            }
        }
    }

    /// The server a view's messages can go to as they are: it sees one server, unprefixed.
    /// (On every request: no allocation.)
    pub fn alone(&self, view: &View) -> Option<Arc<Backend>> {
        let all = self.backends.read().unwrap_or_else(|p| p.into_inner());
        match view {
            View::One(name) => all.get(name).filter(|b| b.cfg.enabled).cloned(),
            View::All => {
                // One server configured (as `prefix` counts them): unprefixed unless a prefix is set.
                if self.config.read().unwrap_or_else(|p| p.into_inner()).enabled != 1 {
                    return None;
                }
                let b = all.values().find(|b| b.cfg.enabled)?;
                b.cfg.prefix.as_deref().is_none_or(str::is_empty).then(|| b.clone())
            }
        }
    }

    /// A server's listings of `kinds` changed (or it came or went): forget them.
    pub fn invalidate(&self, backend: &str, kinds: &[&str]) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(b, kind, _), _| !(b == backend && kinds.contains(kind)));
    }

    /// `backend` told `session` alone that a listing changed (its own upstream session did): that
    /// client's listings of it are its own from now on, never another's from the cache.
    pub fn diverged(&self, backend: &str, session: &str) {
        self.diverged.lock().unwrap_or_else(|p| p.into_inner()).insert((backend.to_owned(), session.to_owned()));
    }

    /// A client session ended: its own listings go, and its subscriptions stop counting.
    pub fn forget_session(&self, session: &str, subscriptions: &Mutex<HashMap<String, (String, String)>>) {
        let subs = std::mem::take(&mut *subscriptions.lock().unwrap_or_else(|p| p.into_inner()));
        if !subs.is_empty() {
            let mut counts = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
            for (_, key) in subs {
                if let Some(n) = counts.get_mut(&key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        counts.remove(&key);
                    }
                }
            }
        }
        self.diverged.lock().unwrap_or_else(|p| p.into_inner()).retain(|(_, s)| s != session);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, _, audience), _| !matches!(audience, Audience::Session(s) if s == session));
    }

    /// Listings in the cache, for `/metrics` (four kinds per server, per set of declared
    /// capabilities among its clients).
    pub fn cached_listings(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Restarts per server, for `/metrics`.
    pub fn restarts(&self) -> Vec<(String, u64)> {
        self.backends
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|b| (b.cfg.name.clone(), b.link.restarts()))
            .collect()
    }

    /// One server's listing of `kind` as `client` sees it, from the cache or fetched (every
    /// page) in the client's own session with the server — so a server that offers tools by what
    /// a client can answer lists what it offers this client; clients that declared the same are
    /// served from one cached listing. A server that does not list `kind` (-32601) lists
    /// nothing, unless it is to be seen `as_it_is`: then its error is the answer, unchanged.
    async fn listing(
        &self,
        b: &Backend,
        (method, kind): (&str, &'static str),
        client: Option<&Arc<Session<Client>>>,
        as_it_is: bool,
    ) -> Result<Vec<Value>, Error> {
        // A listing that depends on the caller's own token is never shared.
        let shared = !b.cfg.per_caller_token();
        let key = (b.cfg.name.clone(), kind, self.audience(b, client));
        if shared {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = cache.get(&key).filter(|l| l.fetched.elapsed() < l.ttl) {
                self.cache_hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok(l.items.clone());
            }
        }
        self.cache_misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut items = Vec::new();
        let mut cursor: Option<Value> = None;
        let mut ttl = self.config().gateway.cache_ttl;
        for _ in 0..100 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            // A child every client shares lists the same for all: asked as the gateway, so that
            // nothing it asks meanwhile is taken for this client's.
            let via = if b.link.shared() { None } else { client };
            let call = b.link.call(via, Outgoing::Message { method, params }).await?;
            let resp = tokio::time::timeout(b.cfg.timeout, answer_of(call, via))
                .await
                .map_err(|_| {
                    Error::new(
                        crate::error::Kind::UpstreamTimeout,
                        format!("server {} did not list its {kind} within {:?}", b.cfg.name, b.cfg.timeout),
                    )
                })?
                .ok_or_else(|| Error::unavailable(&b.cfg.name, "the call was dropped"))?
                .into_value();
            let Some(result) = resp.get("result") else {
                let e = resp.get("error").cloned().unwrap_or_default();
                let code = e.get("code").and_then(Value::as_i64);
                let message = e.get("message").and_then(Value::as_str).unwrap_or("listing failed");
                if as_it_is {
                    return Err(Error::new(crate::error::Kind::Server(code.unwrap_or(-32603)), message));
                }
                // A server without this capability answers -32601: an empty listing.
                if code == Some(-32601) {
                    break;
                }
                return Err(Error::new(
                    crate::error::Kind::Server(e.get("code").and_then(Value::as_i64).unwrap_or(-32603)),
                    format!(
                        "server {}: {}",
                        b.cfg.name,
                        e.get("message").and_then(Value::as_str).unwrap_or("listing failed")
                    ),
                ));
            };
            // The modern era's own cache hints win: a lifetime, and whether a listing may be shared.
            if let Some(ms) = result.get("ttlMs").and_then(Value::as_u64) {
                ttl = Duration::from_millis(ms);
            }
            if result.get("cacheScope").and_then(Value::as_str) == Some("private") {
                ttl = Duration::ZERO;
            }
            items.extend(result.get(kind).and_then(Value::as_array).cloned().unwrap_or_default());
            if items.len() > MAX_LISTING_ITEMS {
                tracing::warn!(server = %b.cfg.name, "more than {MAX_LISTING_ITEMS} {kind}; the rest are left out");
                items.truncate(MAX_LISTING_ITEMS);
                break;
            }
            cursor = result.get("nextCursor").filter(|c| !c.is_null()).cloned();
            if cursor.is_none() {
                break;
            }
        }
        if shared && serde_json::to_vec(&items).map_or(0, |v| v.len()) <= MAX_CACHED_BYTES {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, Listing { items: items.clone(), fetched: Instant::now(), ttl });
        }
        Ok(items)
    }

    /// Whom a listing of `b` for `client` is for: the session alone when `b` is a server of its
    /// own (a stateful server's child) or once `b` told it a listing changed for it alone, else
    /// every client that declared what it did.
    fn audience(&self, b: &Backend, client: Option<&Arc<Session<Client>>>) -> Audience {
        let Some(c) = client else {
            // The gateway's own session declares what `backend::gateway_hello` does.
            return Audience::Declared(Declared::of(&super::backend::gateway_hello()["capabilities"]));
        };
        if b.link.per_client() {
            return Audience::Session(c.id().to_owned());
        }
        let diverged = self.diverged.lock().unwrap_or_else(|p| p.into_inner());
        if !diverged.is_empty() && diverged.contains(&(b.cfg.name.clone(), c.id().to_owned())) {
            return Audience::Session(c.id().to_owned());
        }
        Audience::Declared(c.upstream.declared)
    }

    /// The merged listing a client sees: names prefixed, filtered, checked, deduplicated.
    pub async fn merged(&self, client: &Arc<Session<Client>>, access: &Access, method: &str) -> Value {
        let (answer, problems) = self.merge(&client.upstream.view, Some(client), access, method).await;
        for p in problems {
            tracing::debug!("{p}");
        }
        answer
    }

    /// Lists every server's tools and prompts as the merged endpoint shows them and reports the
    /// names it must leave out (invalid, or colliding): at start, when a server comes or changes,
    /// after a reload — not at every client's listing.
    pub async fn check_names(&self) {
        for method in ["tools/list", "prompts/list"] {
            let (_, problems) = self.merge(&View::All, None, &Access::everything(), method).await;
            for p in problems {
                tracing::warn!("{p}");
            }
        }
    }

    async fn merge(
        &self,
        view: &View,
        client: Option<&Arc<Session<Client>>>,
        access: &Access,
        method: &str,
    ) -> (Value, Vec<String>) {
        let Some((_, kind)) = LISTINGS.iter().find(|(m, _)| *m == method) else {
            return (error(Kind::MethodNotFound, "unknown listing"), Vec::new());
        };
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut sign_ins: Vec<crate::error::SignIn> = Vec::new();
        let visible = self.visible(view);
        let alone = visible.len() == 1;
        // One server's own endpoint is that server as it is: a listing it lacks is its own
        // -32601, not an empty success.
        let as_it_is = matches!(view, View::One(_));
        // One wait for servers still starting, shared by all of them: a server that cannot
        // start never holds the others' listing for longer.
        let starting_until = tokio::time::Instant::now() + START_WAIT;
        for b in visible {
            if (!as_it_is && !has_capability(&*b.link, method)) || (client.is_none() && b.cfg.per_caller_token()) {
                continue;
            }
            // A lone server's listing waits for it (or fails with its reason); among several,
            // one that is not ready is left out, and comes in with a `list_changed` when it is.
            if !alone && !b.link.wait_ready(starting_until).await {
                tracing::debug!(server = %b.cfg.name, "not ready: left out of the {kind} listing");
                continue;
            }
            let items = match self.listing(&b, (method, kind), client, as_it_is).await {
                Ok(items) => items,
                // A lone server's failure is the listing's: never an empty success.
                Err(e) if alone => return (crate::http::wire::answer(&e), problems),
                // A server the user must sign in to first: the listing sends them (below).
                Err(e) if e.kind == Kind::SignInRequired => {
                    sign_ins.extend(e.sign_in.into_iter().flatten());
                    continue;
                }
                // Nor the user's own sign-in, for a client that cannot send them to it: left out
                // (the link is in the error of a call).
                Err(e) if e.sign_in.is_some() => {
                    tracing::debug!(server = %b.cfg.name, "left out of a {kind} listing: the user has not signed in to it");
                    continue;
                }
                Err(e) => {
                    // One server down does not empty everyone's listing (it is left out, logged,
                    // and /readyz reports it).
                    tracing::warn!(server = %b.cfg.name, "listing {kind} failed: {e}");
                    continue;
                }
            };
            let prefix = self.prefix(view, &b);
            for mut item in items {
                if matches!(*kind, "tools" | "prompts") {
                    let Some(name) = item.get("name").and_then(Value::as_str).map(str::to_owned) else { continue };
                    let what = if *kind == "tools" { What::Tool } else { What::Prompt };
                    if !self.permitted(access, &b, what, &name) {
                        continue;
                    }
                    let full = format!("{prefix}{name}");
                    if !config::valid_name(&full) {
                        problems.push(format!(
                            "server {}: {kind} {full:?} is not a valid name (1-128 of A-Z a-z 0-9 _ - . /); left out",
                            b.cfg.name
                        ));
                        continue;
                    }
                    if let Some(other) = seen.get(&full) {
                        problems.push(format!("server {}: {kind} {full:?} is also offered by {other}; left out (give one of them a prefix)", b.cfg.name));
                        continue;
                    }
                    seen.insert(full.clone(), b.cfg.name.clone());
                    item["name"] = Value::String(full);
                } else {
                    let key = if *kind == "resources" { "uri" } else { "uriTemplate" };
                    let uri = item.get(key).and_then(Value::as_str);
                    if !uri.is_some_and(|u| self.permitted(access, &b, What::Resource, u)) && !access.is_everything() {
                        continue;
                    }
                    // A resource's URI names its server, as a tool's name does (`uris`).
                    if let Some(uri) = uri.filter(|_| !prefix.is_empty()) {
                        item[key] = Value::String(super::uris::namespaced(&config::resource_namespace(&b.cfg), uri));
                    }
                }
                out.push(item);
            }
        }
        // Every sign-in the listing waits for, at once (the spec's list of elicitations) — unless
        // the client was sent to each lately: then the other servers' tools are listed.
        if sign_ins.iter().any(|s| !s.again) {
            return (crate::http::wire::answer(&Error::sign_in(sign_ins, true)), problems);
        }
        (json!({"result": {*kind: out}}), problems)
    }

    /// The server owning a prefixed tool or prompt name, and the name it knows.
    pub fn by_name(&self, view: &View, name: &str) -> Option<(Arc<Backend>, String)> {
        let mut best: Option<(Arc<Backend>, String, usize)> = None;
        for b in self.visible(view) {
            let p = self.prefix(view, &b);
            if let Some(rest) = name.strip_prefix(&p) {
                // The longest matching prefix wins (`a__` before an empty one).
                if best.as_ref().is_none_or(|(_, _, len)| p.len() > *len) {
                    best = Some((b.clone(), rest.to_owned(), p.len()));
                }
            }
        }
        best.map(|(b, n, _)| (b, n))
    }

    /// The server of a resource URI as a client names it, and the URI as that server knows it:
    /// the server a merged endpoint's URI names (`uris`), else the one that lists it.
    async fn resource(&self, client: &Arc<Session<Client>>, uri: &str) -> Option<(Arc<Backend>, String)> {
        let view = &client.upstream.view;
        if super::uris::split(uri).is_some()
            && let Some(found) = self.resource_server(view, uri).filter(|_| self.alone(view).is_none())
        {
            return Some(found);
        }
        self.by_uri(client, uri).await.map(|b| (b, uri.to_owned()))
    }

    /// A server's resource URI as a client of `view` names it (`uris`, on the merged endpoint).
    pub fn client_uri(&self, view: &View, backend: &str, uri: &str) -> String {
        match self.backend(backend) {
            Some(b) if !self.prefix(view, &b).is_empty() => {
                super::uris::namespaced(&config::resource_namespace(&b.cfg), uri)
            }
            _ => uri.to_owned(),
        }
    }

    /// The server owning a resource URI: one whose listing has it, else one whose template's
    /// fixed start matches, else the only server.
    async fn by_uri(&self, client: &Arc<Session<Client>>, uri: &str) -> Option<Arc<Backend>> {
        let visible = self.visible(&client.upstream.view);
        if visible.len() == 1 {
            return visible.into_iter().next();
        }
        for b in &visible {
            if let Ok(items) = self.listing(b, ("resources/list", "resources"), Some(client), false).await
                && items.iter().any(|r| r.get("uri").and_then(Value::as_str) == Some(uri))
            {
                return Some(b.clone());
            }
        }
        let mut best: Option<(Arc<Backend>, usize)> = None;
        for b in &visible {
            if let Ok(items) =
                self.listing(b, ("resources/templates/list", "resourceTemplates"), Some(client), false).await
            {
                for t in items {
                    let Some(template) = t.get("uriTemplate").and_then(Value::as_str) else { continue };
                    let fixed = template.split('{').next().unwrap_or("");
                    if !fixed.is_empty()
                        && uri.starts_with(fixed)
                        && best.as_ref().is_none_or(|(_, l)| fixed.len() > *l)
                    {
                        best = Some((b.clone(), fixed.len()));
                    }
                }
            }
        }
        best.map(|(b, _)| b)
    }

    /// The gateway's answer to `initialize`: capabilities merged (or one server's own).
    pub fn initialize(&self, view: &View, client_version: &str) -> Value {
        let backends = self.visible(view);
        let version = match client_version {
            "2024-11-05" | "2025-03-26" | "2025-06-18" | "2025-11-25" => client_version,
            _ => "2025-11-25",
        };
        if let (View::One(_), Some(b)) = (view, backends.first())
            && let Some(info) = b.link.info()
        {
            // The server's own answer as it wrote it, but for the version: the client's, which
            // the gateway speaks to it.
            let mut r = info.result;
            if !r.is_object() {
                r = json!({"capabilities": info.capabilities, "serverInfo": info.server_info});
            }
            r["protocolVersion"] = json!(version);
            return json!({"result": r});
        }
        let mut caps = serde_json::Map::new();
        let mut instructions = Vec::new();
        for b in &backends {
            let Some(info) = b.link.info() else { continue };
            for key in ["tools", "prompts", "resources", "completions", "logging"] {
                if let Some(c) = info.capabilities.get(key) {
                    let entry = caps.entry(key).or_insert_with(|| json!({}));
                    if key == "resources" && c.get("subscribe") == Some(&Value::Bool(true)) {
                        entry["subscribe"] = Value::Bool(true);
                    }
                }
            }
            if let Some(i) = info.instructions {
                instructions.push(format!("{}: {i}", b.cfg.name));
            }
        }
        // Extensions (tasks, say) are a server's own: promised only where requests reach that
        // server as they are (one server, unprefixed).
        if let Some(ext) =
            self.alone(view).and_then(|b| b.link.info()).and_then(|i| i.capabilities.get("extensions").cloned())
        {
            caps.insert("extensions".into(), ext);
        }
        // The gateway announces list changes itself (servers come, go and change).
        for key in ["tools", "prompts", "resources"] {
            caps.entry(key).or_insert_with(|| json!({}))["listChanged"] = Value::Bool(true);
        }
        let mut r = json!({"protocolVersion": version, "capabilities": caps, "serverInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")}});
        if !instructions.is_empty() {
            r["instructions"] = Value::String(instructions.join("\n\n"));
        }
        json!({"result": r})
    }

    /// Sends one client request to `server` when the dispatch step decided it (`out` carries
    /// the name the server knows, for a prefixed one), else to the server found here: by URI, by a
    /// completion's ref, or the only one (the listings and the handshake are the caller's).
    pub async fn route(
        &self,
        client: &Arc<Session<Client>>,
        server: Option<&Arc<Backend>>,
        out: Outgoing<'_>,
    ) -> Routed {
        if let Some(b) = server {
            return self.send(client, b, out).await;
        }
        let (method, mut params) = out.into_parts();
        // What is read and rewritten below must be an object (`params["uri"] = …` on anything else
        // would panic): anything else is the client's error.
        if !params.is_object() {
            return Routed::Answer(error(Kind::InvalidParams, format!("{method}: params must be an object")));
        }
        if matches!(method, "resources/read" | "resources/subscribe" | "resources/unsubscribe")
            && !params.get("uri").is_some_and(Value::is_string)
        {
            return Routed::Answer(error(Kind::InvalidParams, format!("{method}: params.uri must be a string")));
        }
        if method == "completion/complete" && !params.get("ref").is_some_and(Value::is_object) {
            return Routed::Answer(error(Kind::InvalidParams, "completion/complete: params.ref must be an object"));
        }
        let view = client.upstream.view.clone();
        let target = match method {
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                // As the client names it (kept for its subscriptions), and as its server does.
                let uri = params.get("uri").and_then(Value::as_str).unwrap_or_default().to_owned();
                let Some((b, own)) = self.resource(client, &uri).await else {
                    return Routed::Answer(error(Kind::InvalidParams, format!("no server offers the resource {uri}")));
                };
                params["uri"] = Value::String(own.clone());
                if method != "resources/read" {
                    let had = {
                        let mut subs = client.upstream.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
                        if method == "resources/subscribe" {
                            let had = subs.contains_key(&uri);
                            if !had && subs.len() >= super::session::MAX_SUBSCRIPTIONS {
                                let max = super::session::MAX_SUBSCRIPTIONS;
                                let why = format!("this session holds {max} subscriptions already: unsubscribe first");
                                return Routed::Answer(error(Kind::InvalidParams, why));
                            }
                            subs.insert(uri.clone(), (b.cfg.name.clone(), own.clone()));
                            had
                        } else {
                            subs.remove(&uri).is_some()
                        }
                    };
                    let mut counts = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
                    let n = counts.entry((b.cfg.name.clone(), own.clone())).or_default();
                    match (method, had) {
                        ("resources/subscribe", false) => *n += 1,
                        ("resources/unsubscribe", true) => *n = n.saturating_sub(1),
                        _ => {}
                    }
                    let still = *n;
                    if still == 0 {
                        // Kept only while someone subscribes: the table does not grow with every
                        // URI ever named.
                        counts.remove(&(b.cfg.name.clone(), own));
                    }
                    // A server shared by several clients keeps sending updates while one of them
                    // still wants them: the others' unsubscribe stops here.
                    if method == "resources/unsubscribe" && still > 0 && b.link.shared() {
                        return Routed::Answer(json!({"result": {}}));
                    }
                }
                Some(b)
            }
            "completion/complete" => {
                let r = params.get("ref").cloned().unwrap_or_default();
                match r.get("type").and_then(Value::as_str) {
                    Some("ref/prompt") => {
                        let name = r.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                        match self.by_name(&view, &name) {
                            Some((b, inner)) => {
                                params["ref"]["name"] = Value::String(inner);
                                Some(b)
                            }
                            None => {
                                return Routed::Answer(error(Kind::InvalidParams, format!("unknown prompt: {name}")));
                            }
                        }
                    }
                    _ => {
                        let uri = r.get("uri").and_then(Value::as_str).unwrap_or_default().to_owned();
                        let found = self.resource(client, &uri).await;
                        if let Some((_, own)) = &found {
                            params["ref"]["uri"] = Value::String(own.clone());
                        }
                        found.map(|(b, _)| b)
                    }
                }
            }
            _ => {
                // Anything else: the only server, or refused.
                let visible = self.visible(&view);
                if visible.len() == 1 {
                    visible.into_iter().next()
                } else {
                    return Routed::Answer(error(
                        Kind::MethodNotFound,
                        format!("{method} cannot be routed to one server"),
                    ));
                }
            }
        };
        let Some(b) = target else { return Routed::Answer(error(Kind::InvalidParams, "no server to route this to")) };
        self.send(client, &b, Outgoing::Message { method, params }).await
    }

    /// Sends a client's request to the server found for it.
    async fn send(&self, client: &Arc<Session<Client>>, b: &Arc<Backend>, out: Outgoing<'_>) -> Routed {
        match b.link.call(Some(client), out).await {
            Ok(call) => Routed::Call { backend: b.cfg.name.clone(), call, timeout: b.cfg.timeout },
            Err(e) => Routed::Answer(crate::http::wire::answer(&e)),
        }
    }

    /// `logging/setLevel`: every server the client sees that logs gets it. One server's own
    /// endpoint answers as that server does (its -32601 when it does not log).
    pub async fn set_level(&self, client: &Arc<Session<Client>>, params: Value) -> Value {
        let as_it_is = matches!(client.upstream.view, View::One(_));
        for b in self.visible(&client.upstream.view) {
            if !as_it_is && b.link.info().is_none_or(|i| i.capabilities.get("logging").is_none()) {
                continue;
            }
            let out = Outgoing::Message { method: "logging/setLevel", params: params.clone() };
            let answer = match b.link.call(Some(client), out).await {
                Ok(call) => match tokio::time::timeout(b.cfg.timeout, call.response).await {
                    Ok(Ok(reply)) => reply.into_value(),
                    Ok(Err(_)) => crate::http::wire::answer(&Error::dropped(&b.cfg.name)),
                    Err(_) => crate::http::wire::answer(&Error::late(&b.cfg.name, b.cfg.timeout)),
                },
                Err(e) => crate::http::wire::answer(&e),
            };
            if as_it_is {
                return answer;
            }
        }
        json!({"result": {}})
    }
}

/// Whether a server offers what a listing method lists (an unknown server is asked anyway).
fn has_capability(link: &dyn Link, method: &str) -> bool {
    let Some(info) = link.info() else { return true };
    let key = match method {
        "tools/list" => "tools",
        "prompts/list" => "prompts",
        _ => "resources",
    };
    info.capabilities.get(key).is_some()
}

/// Whom a cached listing is for.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Audience {
    /// Every client that declared this.
    Declared(Declared),
    /// One client session, whose listing the server changed for it alone.
    Session(String),
}

/// A call's answer, what the server asks meanwhile put to `client` (on its GET stream: a listing
/// has no stream of its own) — a child started for the client asks for its roots at once — or,
/// with no client, answered as refused; its notifications dropped.
async fn answer_of(call: Call, client: Option<&Arc<Session<Client>>>) -> Option<super::backend::Reply> {
    let Call { mut events, response, .. } = call;
    tokio::pin!(response);
    loop {
        tokio::select! {
            r = &mut response => return r.ok(),
            ev = events.recv() => match ev {
                Some(super::backend::Event::Request { method, params, reply }) => match client {
                    Some(c) => {
                        if let Some(m) = c.upstream.request(&method, params, reply) {
                            c.upstream.send(m);
                        }
                    }
                    None => drop(reply),
                },
                Some(super::backend::Event::Notification(_)) => {}
                None => return response.await.ok(),
            },
        }
    }
}
