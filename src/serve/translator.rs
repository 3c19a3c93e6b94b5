//! `connect`'s translator between the eras: a 2026-07-28 client in front of a 2025 server, or a
//! 2025 client in front of a 2026-07-28-only one, is served by the gateway's own translation
//! (modern.rs, listen.rs, remote.rs) with one server behind it — the upstream `connect` reaches
//! through its own engine, with its own credential. A client of the upstream's own era never
//! comes here: `connect` relays it as it came.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response};
use tokio_util::sync::CancellationToken;

use super::backend::Link;
use super::router::Backend;
use super::session::View;
use super::{Gateway, queue};
use crate::authn::Caller;
use crate::connect::translate::{Eras, Translation, Upstream};
use crate::http::body::Body;
use crate::http::endpoint::Endpoint;

type Answer<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// The name the upstream goes by inside (in logs; never on the wire: the view is its alone).
const NAME: &str = "upstream";

pub struct Translator {
    gateway: Arc<Gateway>,
    link: Arc<dyn Link>,
}

/// How long a request waits for the upstream to be known (its first session, right after the
/// translator starts): `server/discover` is answered from what that session says.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Translator {
    /// The gateway around `proxy`'s upstream, which it starts to learn the era of (its own
    /// session there, as `serve` keeps one per server).
    pub fn start(upstream: Upstream, shutdown: CancellationToken) -> Result<Translator, String> {
        let Upstream { proxy, session_ttl, modern_only } = upstream;
        // As `connect` was told: its timeout (here the bound of a whole call, as `serve` has it)
        // and its session limit. The URL is for logs (the link reaches it through `proxy`),
        // its `$` escaped (a configuration expands `${…}`).
        let url = proxy.upstream.url.to_string().replace('$', "$$");
        let (timeout, max) = (proxy.upstream.timeout.as_secs().max(1), proxy.sessions.limits().total.min(1_000_000));
        let text = serde_json::json!({
            "mcpgate": {"maxSessions": max},
            "mcpServers": {NAME: {"url": url, "timeout": timeout}},
        })
        .to_string();
        let mut cfg = crate::config::parse(&text, &|_| None)
            .map_err(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))?;
        // At least two of a listen stream's keep-alives (15 s), which keep its session in use.
        cfg.gateway.session_ttl = session_ttl.max(std::time::Duration::from_secs(30));
        let cfg = Arc::new(cfg);
        let server = cfg.servers.first().cloned().ok_or("no server in the translator's configuration")?;
        let (tx, rx) = queue::unbudgeted(queue::DISPATCH);
        let guard = super::guard_for(true, &cfg);
        let gateway = Arc::new(Gateway::bare(&cfg, guard, tx.clone(), shutdown));
        let link: Arc<dyn Link> =
            super::remote::RemoteLink::start(NAME, proxy, super::remote::ClientToken::No, tx, modern_only);
        let backend = Arc::new(Backend::new(server, link.clone()));
        gateway.router.backends.write().unwrap_or_else(|p| p.into_inner()).insert(NAME.to_owned(), backend);
        tokio::spawn(super::dispatch(gateway.clone(), rx));
        tokio::spawn(super::expire_sessions(gateway.clone()));
        Ok(Translator { gateway, link })
    }

    /// Once the upstream is known (at once, after the first time).
    async fn ready(&self) {
        self.link.wait_ready(tokio::time::Instant::now() + READY_WAIT).await;
    }

    fn view() -> View {
        View::One(NAME.to_owned())
    }
}

/// What `connect` starts when a client of the other era than its upstream's comes.
pub fn translation() -> Translation {
    Translation(Arc::new(|upstream| {
        let shutdown = upstream.proxy.shutdown.clone();
        Ok(Box::new(Translator::start(upstream, shutdown)?) as Box<dyn Eras>)
    }))
}

/// The gateway's endpoint for its one server, as `serve` answers `/servers/<name>/mcp` (the
/// requests have passed `connect`'s own HTTP layers: guard, route, body).
impl Eras for Translator {
    fn post<'a>(&'a self, headers: &'a HeaderMap, body: Bytes) -> Answer<'a> {
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Box::pin(async move {
            self.ready().await;
            Endpoint::post(&self.gateway, Self::view(), Caller::default(), headers, body, peer).await
        })
    }

    fn get<'a>(&'a self, headers: &'a HeaderMap) -> Answer<'a> {
        Box::pin(async move {
            self.ready().await;
            Endpoint::get(&*self.gateway, Self::view(), Caller::default(), headers).await
        })
    }

    fn delete<'a>(&'a self, headers: &'a HeaderMap) -> Answer<'a> {
        Box::pin(Endpoint::delete(&*self.gateway, Self::view(), Caller::default(), headers))
    }
}
