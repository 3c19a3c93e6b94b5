//! A remote server (Streamable HTTP or legacy HTTP+SSE) behind the `connect` engine, in-process:
//! the engine brings credentials and their refresh, session recovery, the HTTP+SSE fallback and
//! streaming. Each client gets its own upstream session, so a server's requests and notifications
//! for one client never reach another; the gateway keeps one more session of its own, for what
//! it asks on everyone's behalf (listings) and to know the server is up.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http::header::HeaderValue;
use rustc_hash::FxBuildHasher;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::backend::{Call, CallFuture, Event, Health, Link, Outgoing, Passthrough, Reply, ServerInfo, Unsolicited};
use super::session::Client;
use crate::connect::{Forward, Proxy};
use crate::error::{Error, Kind};
use crate::http::body::Body;
use crate::http::wire;
use crate::jsonrpc::ids::Ids;
use crate::mcp::headers::SESSION_ID;
use crate::mcp::session::Session;
use crate::transport::answer;

/// How long opening a session waits for its event stream to open.
const LISTEN_WAIT: Duration = Duration::from_secs(2);

pub struct RemoteLink {
    name: String,
    proxy: Arc<Proxy>,
    /// Set when the server speaks only the 2026-07-28 revision: stateless calls, no sessions.
    /// One for the server's life: it keeps the `x-mcp-header` marks its tools were listed with,
    /// which each call of a tool then carries as `Mcp-Param-*` headers.
    modern: std::sync::OnceLock<Arc<crate::connect::modern::ModernUpstream>>,
    /// What the server is sent of each client's own token.
    client_token: ClientToken,
    /// Upstream sessions by the gateway's client session id ("" is the gateway's own): ids it
    /// issued, so the Fx hash is safe here (see `mcp::session`'s table).
    sessions: Mutex<HashMap<String, Arc<Upstream>, FxBuildHasher>>,
    opening: tokio::sync::Mutex<()>,
    state: Mutex<(Health, Option<ServerInfo>)>,
    unsolicited: super::backend::UnsolicitedTx,
    ids: Ids,
    stop: CancellationToken,
    /// Calls whose answer is being read, by the id the server knows them by: a cancelled one
    /// ends at once (the server need not answer it, and most do not).
    reading: Arc<Mutex<HashMap<String, tokio::task::AbortHandle, FxBuildHasher>>>,
    /// For a 2026-07-28 server: the log level each 2025-era client set (`logging/setLevel`, a
    /// method that revision dropped), by client session; sent as each request's `_meta`
    /// logLevel.
    levels: Mutex<HashMap<String, String, FxBuildHasher>>,
    /// For a 2026-07-28 server: the resources each 2025-era client subscribed to.
    subscriptions: Arc<super::remote_listen::Subscriptions>,
}

/// What a server is sent of each client's own token: nothing (the gateway's credential, if any,
/// goes instead), the token itself (`forwardClientToken`: the server validates users itself), or
/// a token exchanged for it (RFC 8693, `tokenExchange`).
pub enum ClientToken {
    No,
    Forward,
    Exchange(Arc<crate::oauth_client::exchange::Exchanger>),
    /// Each user's own token for this server, from their sign-in to it through the gateway
    /// (`perUser`); a user without one is sent to sign in.
    User(Arc<crate::authz::upstream::UserTokens>),
}

struct Upstream {
    session: Option<HeaderValue>,
    version: Option<HeaderValue>,
    stop: CancellationToken,
    /// The engine's session held while this link uses it (an engine with a sweeper, `connect`'s,
    /// would otherwise end it when idle: the link ends it itself).
    _lease: Option<crate::mcp::session::Lease<crate::connect::UpstreamSession>>,
}

impl Upstream {
    /// What a message in this session comes with, as the gateway's own.
    fn to(&self) -> Forward {
        Forward { session: self.session.clone(), version: self.version.clone(), ..Default::default() }
    }
}

impl RemoteLink {
    pub fn start(
        name: &str,
        proxy: Arc<Proxy>,
        client_token: ClientToken,
        unsolicited: super::backend::UnsolicitedTx,
        modern_only: Option<&str>,
    ) -> Arc<RemoteLink> {
        // A server known to speak only 2026-07-28 is not asked its era again.
        let modern = std::sync::OnceLock::new();
        if let Some(version) = modern_only {
            let _ = modern.set(Arc::new(crate::connect::modern::ModernUpstream::new(proxy.clone(), version)));
        }
        let link = Arc::new(RemoteLink {
            name: name.to_owned(),
            modern,
            proxy,
            client_token,
            sessions: Mutex::default(),
            opening: tokio::sync::Mutex::new(()),
            state: Mutex::new((Health::Starting, None)),
            unsolicited,
            ids: Ids::default(),
            stop: CancellationToken::new(),
            reading: Arc::default(),
            levels: Mutex::default(),
            subscriptions: Default::default(),
        });
        if let ClientToken::User(u) = &link.client_token {
            // A client session sent to sign in is told when its user has.
            let (tx, backend) = (link.unsolicited.clone(), link.name.clone());
            u.on_signed_in(Box::new(move |session, message| {
                tx.push(super::backend::Unsolicited {
                    backend: backend.clone(),
                    session: Some(session.to_owned()),
                    message,
                    reply: None,
                });
            }));
        }
        if !matches!(link.client_token, ClientToken::No) {
            // Without a user's token there is nothing to ask on everyone's behalf: each client's
            // session says what the server is.
            *link.state.lock().unwrap_or_else(|p| p.into_inner()) = (Health::Ready, None);
        } else {
            tokio::spawn(link.clone().keep_gateway_session());
        }
        link
    }

    /// Opens the gateway's own session, retrying with backoff until it works.
    async fn keep_gateway_session(self: Arc<Self>) {
        let mut delay = Duration::from_secs(1);
        loop {
            let init = super::backend::gateway_init();
            match self.open("", &init, None).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(server = %self.name, "{e}; retrying in {delay:?}");
                    *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (Health::Down(e.message.clone()), None);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    /// What a message in session `up` comes with: the client's own token, or the one exchanged
    /// for it (`ready_token` made it), when this server takes it.
    fn to(&self, up: Option<&Upstream>, client: Option<&Session<Client>>) -> Forward {
        let bearer = match &self.client_token {
            ClientToken::No => None,
            ClientToken::Forward => client.and_then(|c| c.upstream.bearer()),
            ClientToken::Exchange(x) => client.and_then(|c| c.upstream.bearer()).and_then(|b| x.cached(&b)),
            ClientToken::User(u) => client.and_then(|c| c.upstream.owner.as_deref()).and_then(|sub| u.cached(sub)),
        };
        Forward { bearer, ..up.map(Upstream::to).unwrap_or_default() }
    }

    /// Exchanges the client's token for this server's, unless one is at hand (`to` then finds
    /// it); a caller without a token, or whose token the issuer will not exchange, is refused.
    async fn ready_token(&self, client: Option<&Session<Client>>) -> Result<(), Error> {
        match &self.client_token {
            ClientToken::Exchange(x) => {
                let Some(bearer) = client.and_then(|c| c.upstream.bearer()) else {
                    return Err(Error::new(
                        Kind::Credential,
                        format!("server {} needs the caller's token to exchange; none was sent", self.name),
                    ));
                };
                x.exchange(&bearer).await.map(drop).map_err(|e| {
                    tracing::warn!(server = %self.name, "token exchange failed: {e}");
                    Error::new(
                        Kind::Credential,
                        format!("server {}: the caller's token could not be exchanged: {e}", self.name),
                    )
                })
            }
            ClientToken::User(u) => {
                let Some(sub) = client.and_then(|c| c.upstream.owner.as_deref()) else {
                    return Err(Error::new(
                        Kind::Credential,
                        format!("server {} takes each user's own sign-in, and this request names no user", self.name),
                    ));
                };
                match u.ready(sub).await {
                    Ok(()) => Ok(()),
                    Err(crate::authz::upstream::Needed::SignIn) => Err(self.sign_in_needed(client, sub, u)),
                    Err(crate::authz::upstream::Needed::Failed(why)) => {
                        tracing::warn!(server = %self.name, "a user's token could not be had: {why}");
                        Err(Error::new(
                            Kind::Credential,
                            format!("server {}: your sign-in cannot be used now", self.name),
                        ))
                    }
                }
            }
            ClientToken::No | ClientToken::Forward => Ok(()),
        }
    }

    /// Whether a message of `client` must wait for its token to be exchanged first.
    fn exchange_due(&self, client: &Session<Client>) -> bool {
        match &self.client_token {
            ClientToken::Exchange(x) => client.upstream.bearer().is_none_or(|b| x.cached(&b).is_none()),
            _ => false,
        }
    }

    /// Where a passthrough message of `client` goes in the engine: its session there, the
    /// version the client speaks on this request as it said it (transparent) or else the
    /// session's, and the client's own token when this server takes it.
    fn forward_to(&self, client: &Session<Client>, up: &Upstream, version: Option<HeaderValue>) -> Option<Forward> {
        up.session.as_ref()?;
        let mut to = self.to(Some(up), Some(client));
        to.version = version.or(to.version);
        to.whole_call = true;
        Some(to)
    }

    /// The upstream session for `key`, if it is open.
    fn opened(&self, key: &str) -> Option<Arc<Upstream>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    async fn open(&self, key: &str, init: &Value, client: Option<&Session<Client>>) -> Result<Arc<Upstream>, Error> {
        if let Some(up) = self.opened(key) {
            return Ok(up);
        }
        let _one = self.opening.lock().await;
        if let Some(up) = self.opened(key) {
            return Ok(up);
        }
        // A server found (or known) to speak only 2026-07-28 is not asked its era again.
        if let Some(version) = self.modern.get().map(|m| m.version.clone()) {
            return self.open_modern(key, init, &version).await;
        }
        let id = self.ids.next().text();
        let body = json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":init}).to_string();
        let resp = self.sender(client).send(&self.proxy, self.to(None, client), Bytes::from(body)).await?;
        let (status, session) = (resp.status(), resp.headers().get(SESSION_ID).cloned());
        let answer = first_response(resp, &id).await;
        // A server that speaks only 2026-07-28 says so in its answer (`era::detect`'s evidence:
        // -32022 naming the revision, -32020, -32601, or a result of that revision's).
        let said = answer.as_ref().map(Value::to_string).unwrap_or_default();
        if let crate::mcp::era::Detected::Modern(version) = crate::mcp::era::detect(status.as_u16(), said.as_bytes()) {
            if status.is_success() && session.is_some() {
                // The engine's session for it is of no use: the revision has none.
                self.proxy.end(&Forward { session, ..self.to(None, client) }).await;
            }
            return self.open_modern(key, init, version).await;
        }
        let result = match answer.as_ref().and_then(|a| a.get("result")) {
            Some(r) if status.is_success() => r.clone(),
            _ => {
                let why = answer
                    .and_then(|a| a.get("error").cloned())
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| format!("HTTP {status}"));
                return Err(Error::unavailable(&self.name, format!("initialize failed: {why}")));
            }
        };
        let info = ServerInfo {
            result: result.clone(),
            capabilities: result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            server_info: result.get("serverInfo").cloned().unwrap_or_else(|| json!({})),
            instructions: result.get("instructions").and_then(Value::as_str).map(str::to_owned),
            protocol_version: result.get("protocolVersion").and_then(Value::as_str).unwrap_or("2025-03-26").to_owned(),
            discovered: None,
        };
        let version = HeaderValue::try_from(info.protocol_version.as_str()).ok();
        let lease = session.as_ref().and_then(|id| self.proxy.lease(id));
        let up = Arc::new(Upstream { session, version, stop: self.stop.child_token(), _lease: lease });
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string();
        drop(self.proxy.send(&self.to(Some(&up), client), Bytes::from(note)).await);
        if key.is_empty() {
            *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (Health::Ready, Some(info));
            tracing::info!(server = %self.name, "remote server ready");
            // Clients' listings change: a server came.
            super::backend::announce_lists_changed(&self.unsolicited, &self.name);
        }
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned(), up.clone());
        let (listening, ready) = oneshot::channel();
        tokio::spawn(listen(
            self.proxy.clone(),
            self.name.clone(),
            key.to_owned(),
            (up.clone(), self.to(Some(&up), client)),
            self.unsolicited.clone(),
            listening,
        ));
        // The session's event stream first: what the server sends on it about the client's
        // first call (a list change, say) would be lost on a stream not yet open.
        let _ = tokio::time::timeout(LISTEN_WAIT, ready).await;
        Ok(up)
    }
}

impl RemoteLink {
    /// A modern-only server: no session to open; `server/discover` says what it is.
    async fn open_modern(&self, key: &str, init: &Value, version: &str) -> Result<Arc<Upstream>, Error> {
        let modern = self
            .modern
            .get_or_init(|| Arc::new(crate::connect::modern::ModernUpstream::new(self.proxy.clone(), version)));
        if self.info().is_none() {
            let env = crate::mcp::modern::ClientEnvelope::from_initialize(init, &modern.version);
            let found = modern
                .call(&env, None, "server/discover", json!({}), &NoClient)
                .await
                .map_err(|e| Error::unavailable(&self.name, e))?;
            let Some(result) = found.get("result") else {
                return Err(Error::unavailable(
                    &self.name,
                    format!("server/discover failed: {}", found.get("error").cloned().unwrap_or_default()),
                ));
            };
            // Listened for with the gateway's own credential: not where the server takes only
            // its users' own (their streams would be theirs to open).
            let listened = matches!(self.client_token, ClientToken::No);
            let changes = ["tools", "prompts", "resources"].map(|k| {
                listened && result.pointer(&format!("/capabilities/{k}/listChanged")) == Some(&Value::Bool(true))
            });
            let mut legacy = crate::mcp::modern::initialize_result(result, "2025-11-25");
            // Its list changes reach 2025 clients: the gateway listens for them (`listen_modern`).
            for (k, on) in ["tools", "prompts", "resources"].into_iter().zip(changes) {
                if on && let Some(c) = legacy.pointer_mut(&format!("/capabilities/{k}")).and_then(Value::as_object_mut)
                {
                    c.insert("listChanged".into(), Value::Bool(true));
                }
            }
            let info = ServerInfo {
                result: legacy.clone(),
                capabilities: legacy.get("capabilities").cloned().unwrap_or_else(|| json!({})),
                server_info: legacy.get("serverInfo").cloned().unwrap_or_else(|| json!({})),
                instructions: legacy.get("instructions").and_then(Value::as_str).map(str::to_owned),
                protocol_version: modern.version.clone(),
                discovered: Some(result.clone()),
            };
            *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (Health::Ready, Some(info));
            tracing::info!(server = %self.name, "remote server ready; it speaks only {}", modern.version);
            if changes.contains(&true) {
                let env = crate::mcp::modern::ClientEnvelope::from_initialize(
                    &super::backend::gateway_init(),
                    &modern.version,
                );
                let [tools, prompts, resources] = changes;
                let filter = json!({
                    "toolsListChanged": tools, "promptsListChanged": prompts, "resourcesListChanged": resources,
                });
                let out =
                    super::remote_listen::Out { name: self.name.clone(), session: None, to: self.unsolicited.clone() };
                let proxy = self.proxy.clone();
                tokio::spawn(super::remote_listen::listen(proxy, (env, filter), out, self.stop.clone(), None));
            }
            super::backend::announce_lists_changed(&self.unsolicited, &self.name);
        }
        let up = Arc::new(Upstream { session: None, version: None, stop: self.stop.child_token(), _lease: None });
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned(), up.clone());
        Ok(up)
    }

    /// A call to a modern-only server, through as many rounds of input as it needs.
    fn modern_call(&self, client: Option<&Arc<Session<Client>>>, method: String, params: Value) -> Result<Call, Error> {
        let Some(modern) = self.modern.get() else { return Err(Error::unavailable(&self.name, "not discovered")) };
        let key = client.map_or("", |c| c.id());
        let level = {
            let mut levels = self.levels.lock().unwrap_or_else(|p| p.into_inner());
            if method == "logging/setLevel" {
                // Kept, and said on each request from now on (the revision's way).
                let Some(level) = params.get("level").and_then(Value::as_str) else {
                    return Err(Error::new(Kind::InvalidParams, "logging/setLevel: params.level is a string"));
                };
                levels.insert(key.to_owned(), level.to_owned());
                return Ok(answered(json!({"result": {}})));
            }
            levels.get(key).cloned()
        };
        let init = client.map(|c| c.upstream.init()).unwrap_or_else(|| json!({"capabilities":{}}));
        let env = crate::mcp::modern::ClientEnvelope::from_initialize(&init, &modern.version);
        if let (Some(c), "resources/subscribe" | "resources/unsubscribe") = (client, method.as_str()) {
            return self.subscription(c, env, &method, &params);
        }
        let (events_tx, events) = super::queue::bounded(super::queue::CALL);
        let (response_tx, response) = oneshot::channel();
        let upstream_id = self.ids.next().text();
        let modern = modern.clone();
        tokio::spawn(async move {
            let asker = ToEvents { events: events_tx };
            let answer = match modern.call(&env, level.as_deref(), &method, params, &asker).await {
                Ok(a) => a,
                Err(e) => wire::answer(&Error::new(Kind::UpstreamProtocol, e)),
            };
            let _ = response_tx.send(Reply::Value(answer));
        });
        Ok(Call { events, response, upstream_id: Value::String(upstream_id) })
    }
}

impl RemoteLink {
    /// A 2025-era client's `resources/subscribe` or `unsubscribe` at a 2026-07-28 server, which
    /// has neither: its session's `subscriptions/listen` stream there names the resources
    /// (remote_listen.rs); answered once the server acknowledged it.
    fn subscription(
        &self,
        client: &Arc<Session<Client>>,
        env: crate::mcp::modern::ClientEnvelope,
        method: &str,
        params: &Value,
    ) -> Result<Call, Error> {
        let Some(uri) = params.get("uri").and_then(Value::as_str).map(str::to_owned) else {
            return Err(Error::new(Kind::InvalidParams, format!("{method}: params.uri is a string")));
        };
        let on = method == "resources/subscribe";
        let (response_tx, response) = oneshot::channel();
        let (proxy, stop, session) = (self.proxy.clone(), self.stop.clone(), client.id().to_owned());
        let out = super::remote_listen::Out {
            name: self.name.clone(),
            session: Some(session.clone()),
            to: self.unsolicited.clone(),
        };
        let link = self.subscriptions.clone();
        tokio::spawn(async move {
            let ask = super::remote_listen::Ask { session: &session, env, proxy: &proxy, out, stop: &stop };
            let answer = match link.change(ask, &uri, on).await {
                Ok(()) => json!({"result": {}}),
                Err(why) => wire::answer(&Error::new(Kind::InvalidParams, why)),
            };
            let _ = response_tx.send(Reply::Value(answer));
        });
        let (_, events) = super::queue::bounded(1);
        Ok(Call { events, response, upstream_id: Value::Null })
    }
}

/// A call the link answers itself, at once.
fn answered(answer: Value) -> Call {
    let (_, events) = super::queue::bounded(1);
    let (tx, response) = oneshot::channel();
    let _ = tx.send(Reply::Value(answer));
    Call { events, response, upstream_id: Value::Null }
}

/// How a request of a client's is sent, and what becomes of the server's refusal (401/403).
struct Sender {
    server: String,
    /// A user's own token (`perUser`).
    user: Option<AsUser>,
}

/// Whose own token a request carries, in which client session, whether it can open URLs.
struct AsUser {
    tokens: Arc<crate::authz::upstream::UserTokens>,
    sub: String,
    /// The session to tell when its user has signed in (one that takes URL elicitation).
    told: Option<String>,
    url_capable: bool,
}

impl RemoteLink {
    fn sender(&self, client: Option<&Session<Client>>) -> Sender {
        let user = match (&self.client_token, client) {
            (ClientToken::User(u), Some(c)) => c.upstream.owner.clone().map(|sub| AsUser {
                tokens: u.clone(),
                sub,
                told: url_capable(client).then(|| c.id().to_owned()),
                url_capable: url_capable(client),
            }),
            _ => None,
        };
        Sender { server: self.name.clone(), user }
    }

    /// A user's own token was refused, or is missing: where to sign in.
    fn sign_in_needed(
        &self,
        client: Option<&Session<Client>>,
        sub: &str,
        tokens: &crate::authz::upstream::UserTokens,
    ) -> Error {
        let told = client.filter(|c| url_capable(Some(c))).map(|c| c.id());
        Error::sign_in(vec![tokens.sign_in(sub, told)], url_capable(client))
    }
}

impl Sender {
    /// Sends `body` to `to`. A refusal reaches the client as an error — never as an empty
    /// success: a user's own token refused (401) is renewed and the request sent once more, and
    /// refused again, dropped and the user sent to sign in; any other refusal as it was,
    /// challenge included (but a user's: the server's challenge names its own authorization
    /// server, which is the gateway's to deal with).
    async fn send(&self, engine: &Proxy, mut to: Forward, body: Bytes) -> Result<Response<Body>, Error> {
        let resp = engine.send(&to, body.clone()).await;
        let Some(r) = refusal(&resp) else { return Ok(resp) };
        let Some(u) = &self.user else { return Err(Error::refused(&self.server, r)) };
        let r = match r.status {
            401 => match u.tokens.refused(&u.sub, to.bearer.as_ref()).await {
                Some(fresh) => {
                    to.bearer = Some(fresh);
                    let resp = engine.send(&to, body).await;
                    match refusal(&resp) {
                        None => return Ok(resp),
                        Some(r) => r,
                    }
                }
                None => r,
            },
            _ => r,
        };
        if r.status == 401 {
            tracing::info!(server = %self.server, "the server refused a user's token; they sign in again");
            u.tokens.forget(&u.sub).await;
            return Err(Error::sign_in(vec![u.tokens.sign_in(&u.sub, u.told.as_deref())], u.url_capable));
        }
        let scope =
            r.www_authenticate.as_deref().and_then(crate::oauth_client::Challenge::from_value).and_then(|c| c.scope);
        let lacking = scope.map(|s| format!(" (it asks for {s})")).unwrap_or_default();
        Err(Error::new(
            Kind::Credential,
            format!("server {} refused the request with your account (HTTP {}){lacking}", self.server, r.status),
        ))
    }
}

/// Whether `client` declared it can send its user to a URL (URL-mode elicitation).
fn url_capable(client: Option<&Session<Client>>) -> bool {
    client.is_some_and(|c| c.upstream.can_answer("elicitation/create", &json!({"mode": "url"})).is_ok())
}

/// The gateway's own questions have nobody to put a server's question to.
struct NoClient;

impl crate::connect::modern::Asker for NoClient {
    fn ask(
        &self,
        method: String,
        _params: Value,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send + '_>> {
        Box::pin(std::future::ready(Err(format!("no client to answer {method}"))))
    }
    fn notify(&self, _msg: Value) {}
}

/// A client's call: the server's questions become events of the call, as with 2025 servers.
struct ToEvents {
    events: super::backend::Events,
}

impl crate::connect::modern::Asker for ToEvents {
    fn ask(
        &self,
        method: String,
        params: Value,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send + '_>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            if !self.events.push(Event::Request { method: method.clone(), params, reply: tx }) {
                return Err("the call ended".to_owned());
            }
            let answer = rx.await.map_err(|_| "the client went away".to_owned())?;
            answer.get("result").cloned().ok_or_else(|| {
                format!("the client refused {method}: {}", answer.get("error").cloned().unwrap_or_default())
            })
        })
    }
    fn notify(&self, msg: Value) {
        self.events.push(Event::Notification(msg));
    }
}

/// An upstream's 401/403, with its challenge.
fn refusal(resp: &Response<Body>) -> Option<crate::error::Refusal> {
    let status = resp.status().as_u16();
    matches!(status, 401 | 403).then(|| crate::error::Refusal {
        status,
        www_authenticate: resp
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    })
}

/// The first JSON-RPC response with `id` in a response (JSON body or SSE events).
async fn first_response(resp: Response<Body>, id: &str) -> Option<Value> {
    let mut found = None;
    let _ = answer::read_messages(resp, |m| {
        if m.get("id").and_then(Value::as_str) == Some(id) && m.get("method").is_none() {
            found = Some(m);
            return false;
        }
        true
    })
    .await;
    found
}

/// Keeps the session's GET stream open; what arrives on it goes to the router.
async fn listen(
    proxy: Arc<Proxy>,
    name: String,
    key: String,
    (up, to): (Arc<Upstream>, Forward),
    out: super::backend::UnsolicitedTx,
    listening: oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
    let mut last_seen: Option<String> = None;
    let mut delay = Duration::from_millis(500);
    while !up.stop.is_cancelled() {
        let last = last_seen.as_deref().and_then(|i| HeaderValue::try_from(i).ok());
        let resp = tokio::select! {
            r = proxy.listen(&to, last) => r,
            () = up.stop.cancelled() => return,
        };
        // Open, or refused: either way the session's first call need not wait for it.
        if let Some(tx) = listening.take() {
            let _ = tx.send(());
        }
        match resp.status().as_u16() {
            200 => {
                delay = Duration::from_millis(500);
                let session = (!key.is_empty()).then(|| key.clone());
                let target = RequestTarget { proxy: proxy.clone(), to: to.clone() };
                let read = answer::read_messages(resp, |m| {
                    // A request on the stream: the client's answer goes back upstream.
                    let reply = match (m.get("method").is_some(), m.get("id").cloned()) {
                        (true, Some(server_id)) => {
                            let (tx, rx) = oneshot::channel();
                            tokio::spawn(target.clone().answer(server_id, rx));
                            Some(tx)
                        }
                        _ => None,
                    };
                    out.push(Unsolicited { backend: name.clone(), session: session.clone(), message: m, reply })
                });
                tokio::select! {
                    l = read => last_seen = l.or(last_seen),
                    () = up.stop.cancelled() => return,
                }
            }
            405 => return,
            status => {
                tracing::debug!(server = %name, "the event stream was refused ({status}); retrying in {delay:?}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = up.stop.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

impl Link for RemoteLink {
    fn call<'a>(&'a self, client: Option<&'a Arc<Session<Client>>>, out: Outgoing<'a>) -> CallFuture<'a> {
        let client = client.cloned();
        let (method, params) = out.into_parts();
        let method = method.to_owned();
        Box::pin(async move {
            let (key, init) = match &client {
                Some(c) => (c.id().to_owned(), c.upstream.init()),
                None => (String::new(), super::backend::gateway_init()),
            };
            self.ready_token(client.as_deref()).await?;
            let up = self.open(&key, &init, client.as_deref()).await?;
            if self.modern.get().is_some() {
                return self.modern_call(client.as_ref(), method, params);
            }
            let id = self.ids.next().text();
            let upstream_id = id.clone();
            let body = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string();
            let to = self.to(Some(&up), client.as_deref());
            let (events_tx, events) = super::queue::bounded(super::queue::CALL);
            let (response_tx, response) = oneshot::channel();
            let proxy = self.proxy.clone();
            let reply_to = RequestTarget { proxy, to: to.clone() };
            let resume = ResumeTarget { proxy: self.proxy.clone(), to: to.clone(), stop: self.stop.clone() };
            let reading = self.reading.clone();
            let key = upstream_id.clone();
            let sender = self.sender(client.as_deref());
            // Registered before the task can end, so that its own removal comes after.
            let mut calls = self.reading.lock().unwrap_or_else(|p| p.into_inner());
            // Sent from the task: the call is the caller's (and cancellable) from the start, not
            // only once the server's head arrives (some servers send it with their first event).
            let engine = self.proxy.clone();
            let task = tokio::spawn(async move {
                let resp = match sender.send(&engine, to, Bytes::from(body)).await {
                    Ok(resp) => resp,
                    Err(e) => {
                        let _ = response_tx.send(Reply::Value(wire::answer(&e)));
                        reading.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                        return;
                    }
                };
                let status = resp.status();
                let mut response_tx = Some(response_tx);
                // A server may end the stream before it answers (SEP-1699): resumed with
                // `Last-Event-ID`, so the client's stream goes on as if nothing happened.
                let reopen = |last, wait| resume.reopen(last, wait);
                answer::read_resuming(resp, answer::MAX_JSON, reopen, |bytes| {
                    answer::messages(&bytes, &mut |m: Value| {
                        let has_method = m.get("method").is_some();
                        match (has_method, m.get("id").cloned()) {
                            (false, Some(v)) if v.as_str() == Some(id.as_str()) => {
                                if let Some(tx) = response_tx.take() {
                                    let _ = tx.send(Reply::Value(m));
                                }
                                return false;
                            }
                            (true, Some(server_id)) => {
                                let (tx, rx) = oneshot::channel();
                                let method = m.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
                                let params = m.get("params").cloned().unwrap_or_else(|| json!({}));
                                events_tx.push(Event::Request { method, params, reply: tx });
                                let target = reply_to.clone();
                                tokio::spawn(async move { target.answer(server_id, rx).await });
                            }
                            (true, None) => {
                                events_tx.push(Event::Notification(m));
                            }
                            _ => {}
                        }
                        true
                    })
                })
                .await;
                if let Some(tx) = response_tx {
                    let err = wire::answer(&Error::new(
                        Kind::UpstreamProtocol,
                        format!("the server answered HTTP {status} without a response"),
                    ));
                    let _ = tx.send(Reply::Value(err));
                }
                reading.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            });
            calls.insert(upstream_id.clone(), task.abort_handle());
            drop(calls);
            Ok(Call { events, response, upstream_id: Value::String(upstream_id) })
        })
    }

    fn notify(&self, client: &Arc<Session<Client>>, method: &str, params: Value) {
        if method == "notifications/cancelled"
            && let Some(id) = params.get("requestId").and_then(Value::as_str)
            && let Some(task) = self.reading.lock().unwrap_or_else(|p| p.into_inner()).remove(id)
        {
            // The call ends here: its answer is no longer read (the front answers the client
            // that its server dropped the call, which a client that cancelled ignores).
            task.abort();
        }
        let up = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(client.id()).cloned();
        let Some(up) = up else { return };
        let body = json!({"jsonrpc":"2.0","method":method,"params":params}).to_string();
        let (proxy, to) = (self.proxy.clone(), self.to(Some(&up), Some(client)));
        tokio::spawn(async move { drop(proxy.send(&to, Bytes::from(body)).await) });
    }

    fn info(&self) -> Option<ServerInfo> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    fn sees_each_user(&self) -> bool {
        !matches!(self.client_token, ClientToken::No)
    }

    fn modern_relay<'a>(&'a self, client: &Session<Client>) -> Option<super::backend::Destination<'a>> {
        let modern = self.modern.get()?;
        if !matches!(self.client_token, ClientToken::No | ClientToken::Forward) {
            return None;
        }
        let mut to = self.to(None, Some(client));
        to.version = HeaderValue::try_from(modern.version.as_str()).ok();
        Some((&self.proxy, to))
    }

    fn passthrough<'a>(&'a self, client: &'a Arc<Session<Client>>, version: Option<HeaderValue>) -> Passthrough<'a> {
        // A user's own token is refused in one place (`call`), which sends them to sign in again.
        if self.modern.get().is_some() || matches!(self.client_token, ClientToken::User(_)) {
            return Passthrough::No;
        }
        let due = self.exchange_due(client);
        let Some(up) = self.opened(client.id()).filter(|_| !due) else {
            return Passthrough::Opening(Box::pin(async move {
                // Through the message path, which says why, when this fails.
                self.ready_token(Some(client)).await.ok()?;
                let up = self.open(client.id(), &client.upstream.init(), Some(client)).await.ok()?;
                if self.modern.get().is_some() {
                    return None;
                }
                Some((&*self.proxy, self.forward_to(client, &up, version)?))
            }));
        };
        match self.forward_to(client, &up, version) {
            Some(to) => Passthrough::Ready((&self.proxy, to)),
            None => Passthrough::No,
        }
    }

    fn forget(&self, client: &Session<Client>) {
        self.levels.lock().unwrap_or_else(|p| p.into_inner()).remove(client.id());
        self.subscriptions.forget(client.id());
        let up = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(client.id());
        if let Some(up) = up {
            up.stop.cancel();
            let (proxy, to) = (self.proxy.clone(), self.to(Some(&up), Some(client)));
            tokio::spawn(async move { proxy.end(&to).await });
        }
    }

    fn health(&self) -> Health {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    fn stop(&self, _grace: Duration) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.stop.cancel();
            self.proxy.end_all_sessions().await;
        })
    }
}

/// Where a stream of a client's upstream session is resumed.
struct ResumeTarget {
    proxy: Arc<Proxy>,
    to: Forward,
    stop: CancellationToken,
}

impl ResumeTarget {
    /// A `GET` with `Last-Event-ID` after `wait`; `None` when the gateway stops meanwhile.
    async fn reopen(&self, last: HeaderValue, wait: Duration) -> Option<Response<Body>> {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.stop.cancelled() => return None,
        }
        Some(self.proxy.listen(&self.to, Some(last)).await)
    }
}

/// Where a client's answer to a server's request goes.
#[derive(Clone)]
struct RequestTarget {
    proxy: Arc<Proxy>,
    to: Forward,
}

impl RequestTarget {
    async fn answer(self, server_id: Value, rx: oneshot::Receiver<Value>) {
        let answer = rx.await.unwrap_or_else(|_| wire::answer(&Error::new(Kind::Unanswered, "the client went away")));
        let mut out = json!({"jsonrpc":"2.0","id":server_id});
        for k in ["result", "error"] {
            if let Some(v) = answer.get(k) {
                out[k] = v.clone();
            }
        }
        drop(self.proxy.send(&self.to, Bytes::from(out.to_string())).await);
    }
}
