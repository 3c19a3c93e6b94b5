//! A client of the other era than the upstream's — a 2026-07-28 client in front of a 2025
//! server, or a 2025 client in front of a 2026-07-28-only one — is handed to the gateway's
//! translation (`Eras`, which the command line supplies: serve/translator.rs), so that this
//! module needs nothing of `serve`. A client of the upstream's own era is relayed as it came.
//!
//! Which era the upstream speaks is learnt from the first client's first exchange, which goes
//! to the upstream as it came: a legacy `initialize` answered with a session says legacy; one
//! refused with a modern error (`era::detect`'s evidence, as `stdio` reads it) says modern, and
//! the client's `initialize` goes to the translation instead; a 2026-07-28 request answered says
//! modern, and one refused (400, 404, 405) has the engine ask once with an `initialize` of its own
//! (its session ended at once). Until it is learnt — an upstream that cannot be reached, or a
//! refusal of the credential's — every request goes to the engine as it came.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, Response};
use serde_json::json;

use http_body_util::BodyExt;

use super::{Forward, Proxy};
use crate::error::Kind;
use crate::http::body::Body;
use crate::http::wire;
use crate::jsonrpc::Payload;
use crate::mcp::era::{self, Detected, Era};
use crate::mcp::headers::{PROTOCOL_VERSION, SESSION_ID};
use crate::transport::answer;

type Answer<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

const UNKNOWN: u8 = 0;
const LEGACY: u8 = 1;
const MODERN: u8 = 2;

/// The largest refusal read to tell what it says.
const REFUSAL: usize = 64 * 1024;

/// Serves clients of the other era than the upstream's, in front of it.
pub trait Eras: Send + Sync {
    fn post<'a>(&'a self, headers: &'a HeaderMap, body: Bytes) -> Answer<'a>;
    fn get<'a>(&'a self, headers: &'a HeaderMap) -> Answer<'a>;
    fn delete<'a>(&'a self, headers: &'a HeaderMap) -> Answer<'a>;
}

/// Starts an `Eras` in front of an engine's upstream, or says why it cannot.
pub type Start = dyn Fn(Arc<Proxy>) -> Result<Box<dyn Eras>, String> + Send + Sync;

/// How to start an `Eras` for an engine (once, when first needed).
#[derive(Clone)]
pub struct Translation(pub Arc<Start>);

impl std::fmt::Debug for Translation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Translation")
    }
}

pub struct Translate {
    proxy: Arc<Proxy>,
    make: Translation,
    /// The upstream's era, once learnt (`UNKNOWN`, `LEGACY`, `MODERN`): read on every request,
    /// an atomic.
    era: AtomicU8,
    /// One probe at a time.
    probing: tokio::sync::Mutex<()>,
    eras: OnceLock<Option<Box<dyn Eras>>>,
}

impl Translate {
    pub fn new(proxy: Arc<Proxy>, make: Translation) -> Translate {
        Translate {
            proxy,
            make,
            era: AtomicU8::new(UNKNOWN),
            probing: tokio::sync::Mutex::new(()),
            eras: OnceLock::new(),
        }
    }

    fn known(&self) -> Option<Era> {
        match self.era.load(Ordering::Acquire) {
            LEGACY => Some(Era::Legacy),
            MODERN => Some(Era::Modern),
            _ => None,
        }
    }

    fn learnt(&self, era: Era) {
        let code = if era == Era::Modern { MODERN } else { LEGACY };
        if self.era.compare_exchange(UNKNOWN, code, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            tracing::info!(upstream = %self.proxy.upstream.display, "the upstream speaks the {era:?} era");
        }
    }

    /// A POST on the main endpoint: to the engine, or to the translation when its client
    /// speaks the other era than the upstream.
    pub async fn post(&self, headers: &HeaderMap, body: Bytes) -> Response<Body> {
        let Ok(asks) = era::era_of(headers.get(PROTOCOL_VERSION).and_then(|v| v.to_str().ok())) else {
            return self.relay(headers, body).await;
        };
        match self.known() {
            Some(upstream) if upstream != asks => match self.eras() {
                Some(eras) => eras.post(headers, body).await,
                None => self.relay(headers, body).await,
            },
            Some(_) => self.relay(headers, body).await,
            None => self.first(asks, headers, body).await,
        }
    }

    /// A POST while the upstream's era is unknown: relayed, and what it is answered says.
    async fn first(&self, asks: Era, headers: &HeaderMap, body: Bytes) -> Response<Body> {
        let initialize = asks == Era::Legacy && Payload::parse(&body).is_ok_and(|p| p.is_initialize());
        if asks == Era::Legacy && !initialize {
            return self.relay(headers, body).await;
        }
        let resp = self.relay(headers, body.clone()).await;
        let status = resp.status();
        if status.is_success() && (asks == Era::Modern || resp.headers().contains_key(SESSION_ID)) {
            self.learnt(asks);
            return resp;
        }
        if !matches!(status.as_u16(), 400 | 404 | 405) || answer::is_event_stream(resp.headers()) {
            return resp;
        }
        // A refusal: small, read whole to tell what it says (and given back as it was).
        let (parts, body_in) = resp.into_parts();
        let Some(read) = whole(body_in).await else {
            let e = crate::error::Error::new(Kind::UpstreamProtocol, "the upstream's refusal could not be read whole");
            return wire::error(&e, None);
        };
        let other = match asks {
            Era::Legacy => matches!(era::detect(status.as_u16(), &read), Detected::Modern(_)).then_some(Era::Modern),
            Era::Modern => (self.probe(headers).await == Some(Era::Legacy)).then_some(Era::Legacy),
        };
        if let Some(upstream) = other {
            self.learnt(upstream);
            if let Some(eras) = self.eras() {
                return eras.post(headers, body).await;
            }
        }
        // The upstream's era (or none found): the refusal was the client's own.
        Response::from_parts(parts, crate::http::body::full(read))
    }

    async fn relay(&self, headers: &HeaderMap, body: Bytes) -> Response<Body> {
        self.proxy.message_as(headers, body).await
    }

    /// Where a session's GET or DELETE goes (a legacy client's): to the translation when the
    /// upstream speaks only 2026-07-28.
    pub fn session(&self) -> Option<&dyn Eras> {
        if self.known() == Some(Era::Modern) { self.eras() } else { None }
    }

    fn eras(&self) -> Option<&dyn Eras> {
        let started = self.eras.get_or_init(|| match (self.make.0)(self.proxy.clone()) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::error!("cannot translate between the eras: {e}");
                None
            }
        });
        started.as_deref()
    }

    /// One `initialize` of the engine's own (with the client's token, for an upstream that
    /// takes the client's), with the `_meta` envelope and `Mcp-Method` a modern-only server
    /// reads (it answers with the revisions it speaks); its session ended at once. Learns the
    /// era it says, once.
    async fn probe(&self, client: &HeaderMap) -> Option<Era> {
        let _one = self.probing.lock().await;
        if let Some(e) = self.known() {
            return Some(e);
        }
        let version = "2025-11-25";
        let body = json!({"jsonrpc": "2.0", "id": "mcpgate-era", "method": "initialize", "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")},
            "_meta": {crate::mcp::modern::META_VERSION: version, crate::mcp::modern::META_CAPABILITIES: {}},
        }});
        let to = Forward {
            method: Some(http::HeaderValue::from_static("initialize")),
            bearer: client.get(http::header::AUTHORIZATION).cloned(),
            ..Default::default()
        };
        let resp = self.proxy.send(&to, Bytes::from(body.to_string())).await;
        let (status, session) = (resp.status(), resp.headers().get(SESSION_ID).cloned());
        let mut response = Bytes::new();
        answer::read(resp, answer::MAX_JSON, |m| {
            let is_response = Payload::parse(&m)
                .is_ok_and(|p| p.messages().iter().any(|m| m.kind() == crate::jsonrpc::Kind::Response));
            if is_response {
                response = m;
            }
            !is_response
        })
        .await;
        if session.is_some() {
            self.proxy.end(&Forward { session, bearer: to.bearer.clone(), ..Default::default() }).await;
        }
        let found = match era::detect(status.as_u16(), &response) {
            Detected::Modern(_) => Era::Modern,
            Detected::HttpSse => Era::Legacy,
            Detected::AsIs if status.is_success() => Era::Legacy,
            Detected::AsIs => return None,
        };
        self.learnt(found);
        Some(found)
    }
}

/// A body of at most `REFUSAL` bytes, read whole (`None`: larger, or broken off).
async fn whole(mut body: Body) -> Option<Bytes> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if out.len() + data.len() > REFUSAL {
                return None;
            }
            out.extend_from_slice(&data);
        }
    }
    Some(out.freeze())
}
