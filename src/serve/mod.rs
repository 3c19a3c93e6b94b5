//! `mcpgate serve --config F`: one endpoint for many MCP servers. Wires the configuration, a
//! backend per server (a supervised stdio child, or a remote server behind the `connect`
//! engine), the router that merges them, the HTTP front-end, and the dispatcher that takes what
//! servers send on their own to the clients it concerns.

mod backend;
mod caller;
mod child;
mod dispatch;
mod front;
mod listen;
mod metrics;
mod modern;
mod modern_relay;
use crate::mcp::queue;
mod reload;
mod remote;
mod remote_listen;
mod router;
mod session;
mod stateful;
mod stream;
pub mod translator;
mod uris;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use backend::{Link, Unsolicited};
use router::{Backend, Router};
use session::{Client, View};

use crate::config::{self, Config, Server, Transport};
use crate::http::conns::Conns;
use crate::http::guard::Guard;
use crate::http::limits::{Edge, Shared};
use crate::http::server::Front;
use crate::mcp::session::SessionTable;

pub struct Options {
    pub config: PathBuf,
    /// Overrides the configuration's `mcpgate.listen`.
    pub listen: Option<SocketAddr>,
}

/// The session 2026-07-28 callers of a view (one user, or one token) use towards the servers.
type ModernClient = Arc<crate::mcp::session::Session<Client>>;
/// Whom a `ModernClient` is for: a view, a caller (`sub`), whether they take URL elicitation,
/// the fingerprint of the roots they gave.
type ModernCaller = (View, Option<String>, bool, Option<[u8; 32]>);

pub struct Gateway {
    router: Router,
    sessions: SessionTable<Client>,
    /// Host/Origin rules, replaced by a reload.
    guard: Shared<Guard>,
    /// Who may call (`mcpgate.auth`'s `jwt` mode); `None`: anyone who reaches the listener. Set
    /// at start (a reload that changes it says it takes a restart).
    auth: Option<crate::authn::Authenticator>,
    /// The authorization server (`oauth` mode): its endpoints beside `/mcp`. Set at start.
    authz: Option<Arc<crate::authz::AuthorizationServer>>,
    /// Who may use what (the users file and roles), replaced when either changes; `None`:
    /// everyone everything.
    policy: Shared<Option<crate::policy::Policy>>,
    /// The audit trail (`mcpgate.audit`), if any; its file is opened again on SIGHUP.
    audit: Option<crate::policy::audit::Audit>,
    /// Whether the listener is on loopback (the guard's default for `Host`).
    loopback: bool,
    /// What client connections may take (timeouts, room), replaced by a reload.
    edge: Edge,
    /// The open client connections, for `/metrics`.
    conns: Arc<Conns>,
    metrics: metrics::Metrics,
    shutdown: CancellationToken,
    config_path: PathBuf,
    /// Where backends send what they send on their own (new backends too, after a reload).
    unsolicited: backend::UnsolicitedTx,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Wakes the session sweeper when a reload changed `sessionTtl`.
    ttl_changed: tokio::sync::Notify,
    /// The session 2026-07-28 clients of each view share towards the servers, and the calls
    /// waiting for their input.
    /// By view, caller (`sub`; `None` without authentication) — each user's own, so a server
    /// that takes the caller's token (or one exchanged for it) sees each user apart — and whether
    /// the caller takes URL-mode elicitation.
    modern_clients: std::sync::Mutex<std::collections::HashMap<ModernCaller, ModernClient>>,
    sessions_modern: SessionTable<Client>,
    parked: modern::Parked,
    /// The open `subscriptions/listen` streams, fed by `dispatch`.
    listeners: listen::Listeners,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] config::Invalid),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(
        "refusing to serve {addr} without authentication: anyone who can reach it could call every server. \
         Listen on 127.0.0.1 (--listen 127.0.0.1:PORT), or set \"mcpgate\": {{\"auth\": {{\"mode\": \"none\", \
         \"allowUnauthenticated\": true}}}} to serve it anyway (behind a proxy that authenticates, say)"
    )]
    Unauthenticated { addr: SocketAddr },
    #[error("{0}")]
    Setup(String),
}

/// The Host/Origin rules: the configured ones, and in `oauth` mode the gateway's public origin
/// (its consent page posts from there) and host.
pub(super) fn guard_for(loopback: bool, cfg: &Config) -> Guard {
    let (mut hosts, mut origins) = (cfg.gateway.allow_hosts.clone(), cfg.gateway.allow_origins.clone());
    if let Some(oauth) = &cfg.gateway.auth.oauth {
        origins.push(oauth.public_url.clone());
        let host = oauth.public_url.parse::<http::Uri>().ok().and_then(|u| u.host().map(str::to_owned));
        if let Some(host) = host.filter(|_| loopback || !hosts.is_empty()) {
            hosts.push(host);
        }
    }
    Guard::new(loopback, &hosts, &origins)
}

impl Gateway {
    /// A gateway for `cfg` with no authentication, no rights, no audit and no backends yet: what
    /// `run` fills in, and what `connect`'s translator uses as it is.
    fn bare(
        cfg: &Arc<Config>,
        guard: Guard,
        unsolicited: backend::UnsolicitedTx,
        shutdown: CancellationToken,
    ) -> Gateway {
        Gateway {
            router: Router::new(cfg.clone()),
            sessions: SessionTable::new(cfg.gateway.sessions),
            guard: Shared::new(guard),
            auth: None,
            authz: None,
            policy: Shared::new(None),
            audit: None,
            loopback: true,
            edge: Edge::new(cfg.gateway.limits.clone()),
            conns: Default::default(),
            metrics: Default::default(),
            shutdown,
            config_path: PathBuf::new(),
            unsolicited,
            reloading: tokio::sync::Mutex::new(()),
            ttl_changed: tokio::sync::Notify::new(),
            modern_clients: Default::default(),
            // Bounded by `modern_client` (maxSessions; the table cannot evict what its map holds).
            sessions_modern: SessionTable::new(crate::mcp::session::Limits::global(usize::MAX)),
            parked: Default::default(),
            listeners: Default::default(),
        }
    }
}

/// Starts the gateway; returns once it has shut down.
pub async fn run(opts: Options, shutdown: CancellationToken) -> Result<(), StartError> {
    let cfg = Arc::new(config::load(&opts.config)?);
    let addr = opts.listen.unwrap_or(cfg.gateway.listen);
    let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen { addr, source })?;
    // Beyond loopback, every caller is a stranger: without authentication, only when told so.
    if !local.ip().is_loopback() && !cfg.gateway.auth.authenticates() {
        if !cfg.gateway.auth.allow_unauthenticated {
            return Err(StartError::Unauthenticated { addr: local });
        }
        tracing::warn!(
            "serving {local} WITHOUT AUTHENTICATION (mcpgate.auth.allowUnauthenticated): anyone who can reach it can \
             call every server"
        );
    }
    let guard = guard_for(local.ip().is_loopback(), &cfg);
    let auth = &cfg.gateway.auth;
    // The authorization server (`oauth` mode), and how every request's token is checked.
    let (authn, authz) = match (&auth.jwt, &auth.oauth) {
        (Some(jwt), _) => (Some(crate::authn::Authenticator::new(jwt.clone())), None),
        (None, Some(oauth)) => {
            let server = crate::authz::AuthorizationServer::open(oauth.clone())
                .await
                .map_err(|e| StartError::Setup(format!("mcpgate.auth: {e}")))?;
            let authn =
                crate::authn::Authenticator::new(server.resource_settings()).with_revocation(server.revocation());
            (Some(authn), Some(server))
        }
        (None, None) => (None, None),
    };
    let policy = match &auth.users_file {
        Some(path) => Some(crate::policy::Policy::load(path, auth.roles.clone()).map_err(StartError::Setup)?),
        None => None,
    };
    let audit = match cfg.gateway.audit.clone() {
        Some(settings) => Some(crate::policy::audit::Audit::open(settings.clone()).map_err(|e| {
            let file = settings.file.as_deref().map_or("stdout".into(), |f| f.display().to_string());
            StartError::Setup(format!("mcpgate.audit: cannot open {file}: {e}"))
        })?),
        None => None,
    };
    let (tx, rx) = queue::unbudgeted(queue::DISPATCH);
    let gateway = Arc::new(Gateway {
        auth: authn,
        authz,
        policy: Shared::new(policy),
        audit,
        loopback: local.ip().is_loopback(),
        config_path: opts.config.clone(),
        ..Gateway::bare(&cfg, guard, tx.clone(), shutdown.clone())
    });
    for server in cfg.servers.iter().filter(|s| s.enabled) {
        match start_backend(server, &cfg, gateway.authz.as_ref(), tx.clone(), shutdown.clone()).await {
            Ok(link) => {
                gateway
                    .router
                    .backends
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(server.name.clone(), Arc::new(Backend::new(server.clone(), link)));
            }
            // Degraded, not dead: the others serve; /readyz says which is missing.
            Err(e) => tracing::error!(server = %server.name, "cannot start: {e}"),
        }
    }
    drop(tx);
    tokio::spawn(dispatch(gateway.clone(), rx));
    tokio::spawn(expire_sessions(gateway.clone()));
    tokio::spawn(reload::on_sighup(gateway.clone()));
    tokio::spawn(reload::watch(gateway.clone(), opts.config.clone()));
    tokio::spawn(reload::watch_users(gateway.clone()));
    let names: Vec<&str> = cfg.servers.iter().filter(|s| s.enabled).map(|s| s.name.as_str()).collect();
    // nginx's `worker_processes auto`: an event loop per core (the listing says how many).
    let threads = cfg.gateway.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    tracing::info!("listening on http://{local}/mcp → {} ({threads} event loops)", names.join(", "));
    let handler = {
        let gateway = gateway.clone();
        move |req, peer: SocketAddr| crate::http::endpoint::handle(gateway.clone(), req, peer)
    };
    // Kept until the backends are stopped: what requests started on the other loops runs there.
    let front = Front { shutdown, edge: gateway.edge.clone(), conns: gateway.conns.clone() };
    let loops = crate::http::server::serve(listener, handler, front, threads).await;
    let backends: Vec<Arc<Backend>> =
        gateway.router.backends.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    // All at once: each child may take seconds to exit (npx's node), one after another would add up.
    let mut stops: Vec<_> = backends.iter().map(|b| Some(b.link.stop(Duration::from_secs(5)))).collect();
    std::future::poll_fn(|cx| {
        for slot in &mut stops {
            if slot.as_mut().is_some_and(|s| s.as_mut().poll(cx).is_ready()) {
                *slot = None;
            }
        }
        if stops.iter().all(Option::is_none) { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    drop(loops);
    tracing::info!("stopped");
    Ok(())
}

pub(crate) async fn start_backend(
    server: &Server,
    cfg: &Config,
    authz: Option<&Arc<crate::authz::AuthorizationServer>>,
    tx: backend::UnsolicitedTx,
    shutdown: CancellationToken,
) -> Result<Arc<dyn Link>, String> {
    match &server.transport {
        Transport::Stdio { command, args, env, cwd, stateful } => {
            let spec = crate::transport::stdio_child::Spec {
                name: server.name.clone(),
                command: command.clone(),
                args: args.clone(),
                env: env.clone(),
                cwd: cwd.clone(),
            };
            if *stateful {
                return Ok(stateful::StatefulLink::start(&server.name, spec, server.restart, server.timeout, tx));
            }
            let hello = (None, backend::gateway_hello());
            Ok(child::ChildLink::start(&server.name, hello, spec, server.restart, server.timeout, tx))
        }
        Transport::Remote { url, kind, headers } => {
            let mut map = http::HeaderMap::new();
            for (k, v) in headers {
                map.append(k.clone(), v.clone());
            }
            let credential = server.credential.as_ref().and_then(|c| match c {
                config::Credential::Env(v) => Some(crate::credentials::Source::Env(v.clone())),
                config::Credential::File(p) => Some(crate::credentials::Source::File(p.clone())),
                // Each user's own token instead (`perUser`).
                config::Credential::OAuth(o) if o.per_user => None,
                config::Credential::OAuth(o) => {
                    Some(crate::credentials::Source::OAuth(Box::new(oauth_config(o, url, server.timeout))))
                }
                config::Credential::Command(c) => {
                    Some(crate::credentials::Source::Command(crate::credentials::CommandSpec {
                        command: c.clone(),
                        timeout: Duration::from_secs(30),
                    }))
                }
                // The gateway has no token of its own for this server: each caller's is exchanged.
                config::Credential::TokenExchange(_) => None,
            });
            let transport = match kind {
                config::RemoteKind::Auto => crate::connect::Transport::Auto,
                config::RemoteKind::StreamableHttp => crate::connect::Transport::StreamableHttp,
                config::RemoteKind::Sse => crate::connect::Transport::Sse,
            };
            let up = crate::connect::UpstreamOptions {
                url: url.clone(),
                credential,
                headers: map,
                timeout: server.timeout,
                connect_timeout: Duration::from_secs(10),
                transport,
            };
            let proxy = crate::connect::engine(&up, cfg.gateway.max_body, shutdown).await.map_err(|e| e.to_string())?;
            let client_token = match &server.credential {
                Some(config::Credential::TokenExchange(x)) => {
                    let mut settings = x.clone();
                    if settings.resource.is_none() && settings.audience.is_none() {
                        settings.resource = Some(url.to_string());
                    }
                    let exchanger =
                        crate::oauth_client::exchange::Exchanger::new(settings, url, Duration::from_secs(10));
                    remote::ClientToken::Exchange(Arc::new(exchanger))
                }
                Some(config::Credential::OAuth(o)) if o.per_user => {
                    let Some(authz) = authz else {
                        return Err(
                            "perUser sign-ins need mcpgate.auth.mode \"oauth\" (a change of mode needs a restart)"
                                .into(),
                        );
                    };
                    let settings = crate::authz::upstream::Settings {
                        issuer: o.issuer.clone(),
                        client_id: o.client_id.clone(),
                        client_secret: o.client_secret.clone(),
                        scopes: o.scopes.clone(),
                        resource: o.resource.clone(),
                    };
                    remote::ClientToken::User(crate::authz::upstream::UserTokens::new(
                        authz,
                        &server.name,
                        url,
                        settings,
                    ))
                }
                _ if server.forward_client_token => remote::ClientToken::Forward,
                _ => remote::ClientToken::No,
            };
            Ok(remote::RemoteLink::start(&server.name, proxy, client_token, tx, None))
        }
    }
}

/// The OAuth client of one server: the user's credential store (where `mcpgate login` puts
/// tokens), no browser (the sign-in URL, if one is needed, goes to the log).
fn oauth_config(o: &config::OAuth, url: &http::Uri, timeout: Duration) -> crate::oauth_client::Config {
    use crate::oauth_client::{Browser, GrantKind, IdentityProvider};
    crate::oauth_client::Config {
        server: url.clone(),
        issuer: o.issuer.clone(),
        client_id: o.client_id.clone(),
        client_secret: o.client_secret.clone(),
        auth_method: None,
        client_metadata_url: None,
        private_key: None,
        signing_alg: None,
        scopes: o.scopes.clone(),
        redirect_url: None,
        resource: o.resource.clone(),
        grant: if o.client_credentials { GrantKind::ClientCredentials } else { GrantKind::AuthorizationCode },
        idp: IdentityProvider::default(),
        workload_token_file: None,
        browser: Browser::Off,
        login_timeout: Duration::from_secs(300),
        store_dir: None,
        timeout: timeout.min(Duration::from_secs(30)),
        connect_timeout: Duration::from_secs(10),
        // Where the servers ask for it, as `stdio` and `connect` do by default.
        dpop: crate::oauth_client::dpop::Mode::Auto,
    }
}

/// Takes what servers send on their own to the clients it concerns.
async fn dispatch(gateway: Arc<Gateway>, mut rx: queue::Receiver<Unsolicited>) {
    while let Some(u) = rx.recv().await {
        let method = u.message.get("method").and_then(Value::as_str).unwrap_or("").to_owned();
        // As each session's queue would class it, once for all of them.
        let class = queue::Class::of(&u.message, "");
        let is_request = u.message.get("id").is_some() && !method.is_empty();
        let sees = |s: &crate::mcp::session::Session<Client>| match &s.upstream.view {
            View::All => true,
            View::One(n) => *n == u.backend,
        };
        let kinds: &[&str] = match method.as_str() {
            "notifications/tools/list_changed" => &["tools"],
            "notifications/prompts/list_changed" => &["prompts"],
            "notifications/resources/list_changed" => &["resources", "resourceTemplates"],
            _ => &[],
        };
        if !kinds.is_empty() || method == "notifications/resources/updated" {
            // 2026-07-28 callers hear of changes on their `subscriptions/listen` streams.
            // One upstream session's news is for its caller's streams (a 2025 client's session
            // has none).
            let from = match &u.session {
                Some(id) if gateway.listeners.any() => {
                    gateway.sessions_modern.peek(id).map(|s| Some((session::Caller::of(&s), id.as_str())))
                }
                Some(_) => None,
                None => Some(None),
            };
            if let Some(from) = from {
                let from = from.as_ref().map(|(c, id)| (c, *id));
                gateway.listeners.tell(&gateway.router, &u.backend, from, &u.message);
            }
        }
        if !kinds.is_empty() {
            gateway.router.invalidate(&u.backend, kinds);
            if let Some(session) = &u.session {
                gateway.router.diverged(&u.backend, session);
            }
            if u.session.is_none() && kinds.contains(&"tools") {
                // A server came, went or changed its tools: report names that must be left out.
                let g = gateway.clone();
                tokio::spawn(async move { g.router.check_names().await });
            }
            // A server-wide fact: told once to everyone who sees the server. A change a client's
            // own upstream session reports (its list may differ from the others') is told to it;
            // queued once even when the gateway's session reported it too (the queue keeps one).
            match &u.session {
                None => gateway.sessions.for_each(|s| {
                    if sees(s) {
                        s.upstream.send_shared(&class, &u.message);
                    }
                }),
                Some(id) => {
                    if let Some(s) = gateway.sessions.get(id) {
                        s.upstream.send_shared(&class, &u.message);
                    }
                }
            }
            continue;
        }
        // The common case (a log line, say, for everyone who sees the server): told in place,
        // without a list of the sessions per message.
        if u.session.is_none() && !is_request && method != "notifications/resources/updated" {
            gateway.sessions.for_each(|s| {
                if sees(s) {
                    s.upstream.send_shared(&class, &u.message);
                }
            });
            continue;
        }
        if is_request && method == "roots/list" {
            // A server that asks for roots on its own: 2026-07-28 callers are asked before
            // their calls from now on, and the session of theirs the server asks answers.
            if let Some(b) = gateway.router.backend(&u.backend) {
                b.asks_roots.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let given = u.session.as_deref().and_then(|id| gateway.sessions_modern.peek(id));
            if let Some(roots) = given.as_ref().and_then(|s| s.upstream.roots.as_ref()) {
                if let Some(reply) = u.reply {
                    let _ = reply.send(serde_json::json!({"result": roots}));
                }
                continue;
            }
        }
        let targets: Vec<_> = match &u.session {
            Some(id) => gateway.sessions.get(id).into_iter().collect(),
            None => gateway.sessions.snapshot().into_iter().filter(|s| sees(s)).collect(),
        };
        if method == "notifications/resources/updated" {
            // To each client that subscribed, under the URI it subscribed with: as the merged
            // endpoint shows it (`uris`), or as the server wrote it.
            let uri = u.message.pointer("/params/uri").and_then(Value::as_str).unwrap_or_default();
            for s in targets {
                let shown = gateway.router.client_uri(&s.upstream.view, &u.backend, uri);
                let theirs = {
                    let subs = s.upstream.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
                    if subs.contains_key(&shown) {
                        shown
                    } else if subs.contains_key(uri) {
                        uri.to_owned()
                    } else {
                        continue;
                    }
                };
                if theirs == uri {
                    s.upstream.send_shared(&class, &u.message);
                } else {
                    let mut m = u.message.clone();
                    if let Some(p) = m.get_mut("params").and_then(Value::as_object_mut) {
                        p.insert("uri".to_owned(), Value::String(theirs));
                    }
                    s.upstream.send(m);
                }
            }
            continue;
        }
        if is_request {
            let Some(reply) = u.reply else { continue };
            let params = u.message.get("params").cloned().unwrap_or(Value::Null);
            // A server shared by several clients asking outside any call: which client it means
            // cannot be known, and the wrong one would hand over its roots, or be asked another's
            // question — so only when exactly one client that sees it could answer. A client's
            // own server session (`u.session`) asks that client.
            let able: Vec<_> = targets.iter().filter(|s| s.upstream.can_answer(&method, &params).is_ok()).collect();
            if u.session.is_none() && able.len() > 1 {
                let _ = reply.send(crate::http::wire::answer(&crate::error::Error::new(
                    crate::error::Kind::Unanswered,
                    "several clients share this server: a question outside a call has nobody certain to answer it",
                )));
                continue;
            }
            let able = able.first().map(|a| Arc::clone(a));
            match able.or_else(|| targets.into_iter().next()) {
                Some(s) => {
                    if let Some(msg) = s.upstream.request(&method, params, reply) {
                        s.upstream.send(msg);
                    }
                }
                None => {
                    let _ = reply.send(crate::http::wire::answer(&crate::error::Error::new(
                        crate::error::Kind::Unanswered,
                        "no client to answer this",
                    )));
                }
            }
            continue;
        }
        for s in targets {
            s.upstream.send_shared(&class, &u.message);
        }
    }
}

/// Ends sessions idle for longer than `sessionTtl`, as the configuration says now: a reload that
/// changes it wakes this, so a shorter limit applies at once.
async fn expire_sessions(gateway: Arc<Gateway>) {
    loop {
        let ttl = gateway.router.config().gateway.session_ttl;
        let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = gateway.ttl_changed.notified() => continue,
        }
        for s in gateway.sessions.expire(ttl) {
            tracing::info!(session = s.label(), "session expired after {ttl:?} idle");
            gateway.end(&s);
        }
        // The sessions 2026-07-28 callers use towards the servers (one per user, or per token).
        let idle = gateway.sessions_modern.expire(ttl);
        if !idle.is_empty() {
            gateway
                .modern_clients
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, s| !idle.iter().any(|i| Arc::ptr_eq(i, s)));
            for s in idle {
                tracing::debug!(session = s.label(), "a modern callers' session expired after {ttl:?} idle");
                gateway.end(&s);
            }
        }
    }
}
