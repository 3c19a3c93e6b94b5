//! `mcpgate connect URL`: a local proxy that lets a client with a static configuration reach a
//! server that wants short-lived tokens. Wires the listener, the upstream and its credential,
//! and runs until SIGINT/SIGTERM, then drains and ends the upstream sessions.
//!
//! The modules, each using only those below it: `endpoint` (the HTTP endpoint) and `forward`
//! (in-process callers) enter `proxy` (the engine and its sessions), which hands each message
//! to its upstream's transport — `direct` (the hot path) over `streamable` over `rebuild`, or
//! `legacy` — and those relay with `relay` and `headers`.

mod admin;
mod direct;
mod endpoint;
mod forward;
mod headers;
pub mod identities;
mod legacy;
pub mod modern;
mod proxy;
mod rebuild;
mod relay;
mod streamable;
pub mod translate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Uri};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use direct::Forward;
pub(crate) use proxy::CLIENT;
pub use proxy::{Proxy, Transport, UpstreamSession};

use crate::credentials::{Credentials, Source};
use crate::http::guard::Guard;
use crate::http::limits::Edge;
use crate::http::server::Front;
use crate::mcp::session::{Limits, SessionTable};
use crate::transport::http_client;
use crate::upstream::Upstream;

/// What every mode needs to reach one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    pub url: Uri,
    pub credential: Option<Source>,
    pub headers: HeaderMap,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub transport: Transport,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub upstream: UpstreamOptions,
    pub listen: SocketAddr,
    pub path: String,
    pub max_body: usize,
    pub allow_hosts: Vec<String>,
    pub allow_origins: Vec<String>,
    pub session_ttl: Duration,
    /// Open sessions at most (idle ones are evicted, oldest first, to make room).
    pub max_sessions: usize,
    /// Timeouts and room for client connections, the shutdown grace included.
    pub limits: crate::http::limits::Limits,
    /// Event loops serving client connections (`None`: one per core).
    pub threads: Option<usize>,
    /// Identities at start, each with its credential (`--identity`, `--identities`).
    pub identities: Vec<identities::Spec>,
    /// The admin API's socket (`--admin-socket`; by default where `admin::default_socket` says,
    /// when there are identities and no `admin_http`).
    pub admin_socket: Option<std::path::PathBuf>,
    /// The admin API over loopback HTTP instead, and the file its secret is written to.
    pub admin_http: Option<(SocketAddr, std::path::PathBuf)>,
    /// What serves a client of the other era than the upstream's (`None`: relayed as it came).
    pub translation: Option<translate::Translation>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Credential(#[from] crate::credentials::CredentialError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Identity(String),
}

/// The proxy engine for one upstream; the credential is fetched now, so a broken source stops
/// start-up. Front-ends (the HTTP listener here, stdio) hand it requests.
pub async fn engine(
    up: &UpstreamOptions,
    max_body: usize,
    shutdown: CancellationToken,
) -> Result<Arc<Proxy>, StartError> {
    let credentials = match up.credential.clone() {
        Some(source) => Credentials::start(source).await?,
        None => Credentials::none(),
    };
    let upstream = Upstream::new(
        up.url.clone(),
        http_client::build(up.connect_timeout),
        credentials,
        up.headers.clone(),
        up.timeout,
    );
    Ok(Arc::new(Proxy {
        upstream,
        // No limit of its own: the front-end that uses the engine bounds its clients (`connect`
        // sets `--max-sessions`; in `serve` these are the sessions of the gateway's clients).
        sessions: SessionTable::new(Limits::global(usize::MAX)),
        max_body,
        shutdown,
        transport: up.transport,
        detected: std::sync::OnceLock::new(),
    }))
}

/// Starts the proxy; returns once it has shut down.
pub async fn run(opts: Options, shutdown: CancellationToken) -> Result<(), StartError> {
    let listener =
        TcpListener::bind(opts.listen).await.map_err(|source| StartError::Listen { addr: opts.listen, source })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen { addr: opts.listen, source })?;
    let guard = Guard::new(local.ip().is_loopback(), &opts.allow_hosts, &opts.allow_origins);
    let proxy = engine(&opts.upstream, opts.max_body, shutdown.clone()).await?;
    proxy.sessions.set_limits(Limits::global(opts.max_sessions));

    let sweeper = tokio::spawn(expire_sessions(proxy.clone(), opts.session_ttl));
    let settings = identities::Settings {
        upstream: UpstreamOptions { credential: None, ..opts.upstream.clone() },
        max_body: opts.max_body,
        session_ttl: opts.session_ttl,
        max_sessions: opts.max_sessions,
    };
    let identities = identities::Identities::new(settings, shutdown.clone());
    let mut own_ports = Vec::new();
    for spec in &opts.identities {
        let (engine, stop) = identities
            .add(&spec.name, spec.source.clone(), None)
            .await
            .map_err(|e| StartError::Identity(e.to_string()))?;
        if let Some(addr) = spec.listen {
            own_ports.push((addr, engine, stop));
        }
    }
    let by_default = !opts.identities.is_empty() && opts.admin_http.is_none();
    let socket = opts.admin_socket.clone().or_else(|| by_default.then(|| admin::default_socket(local.port())));
    if let Some(path) = &socket {
        admin::listen(path, identities.clone(), shutdown.clone()).map_err(StartError::Identity)?;
    }
    if let Some((addr, secret)) = &opts.admin_http {
        admin::listen_http(*addr, secret, identities.clone(), shutdown.clone()).await.map_err(StartError::Identity)?;
    }
    // Said once everything is in place: a supervisor waits for this line.
    tracing::info!("listening on http://{local}{} → {}", opts.path, proxy.upstream.display);
    let handler = {
        let local = Arc::new(endpoint::Local {
            proxy: proxy.clone(),
            path: opts.path.clone(),
            guard,
            identities: Some(identities.clone()),
            translate: opts.translation.clone().map(|t| translate::Translate::new(proxy.clone(), t, opts.session_ttl)),
        });
        move |req, peer| crate::http::endpoint::handle(local.clone(), req, peer)
    };
    // Identities with a port of their own: their engine alone at `--path` there.
    for (addr, engine, stop) in own_ports {
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Listen { addr, source })?;
        let guard = Guard::new(addr.ip().is_loopback(), &opts.allow_hosts, &opts.allow_origins);
        let local = Arc::new(endpoint::Local {
            proxy: engine,
            path: opts.path.clone(),
            guard,
            identities: None,
            translate: None,
        });
        let handler = move |req, peer| crate::http::endpoint::handle(local.clone(), req, peer);
        // It stops with the identity (or the process).
        let front = Front { shutdown: stop, edge: Edge::new(opts.limits.clone()), conns: Default::default() };
        tracing::info!("an identity listens on http://{addr}{}", opts.path);
        tokio::spawn(async move { drop(crate::http::server::serve(listener, handler, front, 1).await) });
    }
    let front = Front { shutdown, edge: Edge::new(opts.limits), conns: Default::default() };
    // An event loop per core, as `serve` has (see docs/ARCHITECTURE.md, Runtime): a client with
    // many connections at once is served by every core, each connection on one loop.
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Kept until the sessions are ended: what requests started on the other loops runs there.
    let loops = crate::http::server::serve(listener, handler, front, threads).await;
    sweeper.abort();

    proxy.end_all_sessions().await;
    identities.end_all().await;
    drop(loops);
    tracing::info!("stopped");
    Ok(())
}

impl Proxy {
    /// Ends every session, upstream too (at shutdown), within 5 s.
    pub async fn end_all_sessions(&self) {
        let sessions = self.sessions.drain();
        if !sessions.is_empty() {
            tracing::info!("ending {} upstream session(s)", sessions.len());
            let ends = sessions.iter().map(|s| self.end_upstream_session(s));
            let _ = tokio::time::timeout(Duration::from_secs(5), futures_join_all(ends)).await;
        }
    }
}

/// Ends sessions idle for longer than `ttl`, upstream too — none that is held (`Proxy::lease`: the
/// translation's own sessions at the upstream, which it ends itself).
async fn expire_sessions(proxy: Arc<Proxy>, ttl: Duration) {
    let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        for s in proxy.sessions.expire_unheld(ttl) {
            tracing::info!(session = s.label(), "session expired after {ttl:?} idle");
            proxy.end_upstream_session(&s).await;
        }
    }
}

/// Awaits all futures concurrently (a few lines instead of a `futures` dependency).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await
}
