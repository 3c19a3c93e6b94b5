//! A client of the other era than the upstream's — a 2026-07-28 client in front of a 2025
//! server, or a 2025 client in front of a 2026-07-28-only one — is handed to the gateway's
//! translation (`Eras`, which the command line supplies: serve/translator.rs), so that this
//! module needs nothing of `serve`. A client of the upstream's own era is relayed as it came.
//!
//! Which era the upstream speaks is learnt once, when the first client could need translating
//! (its `initialize`, or its first 2026-07-28 request): one `initialize` of the engine's own,
//! whose answer says (`era::detect`'s evidence, as `stdio` reads it), and whose session ends at
//! once. Until it is learnt — an upstream that cannot be reached, or answers neither way —
//! every request goes to the engine as it came.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, Response};
use serde_json::json;

use super::{Forward, Proxy};
use crate::http::body::Body;
use crate::jsonrpc::Payload;
use crate::mcp::era::{self, Detected, Era};
use crate::mcp::headers::{PROTOCOL_VERSION, SESSION_ID};
use crate::transport::answer;

type Answer<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// Serves clients of the other era than the upstream's, in front of it.
pub trait Eras: Send + Sync {
    fn post<'a>(&'a self, headers: &'a HeaderMap, body: Bytes) -> Answer<'a>;
    fn get<'a>(&'a self, headers: &'a HeaderMap) -> Answer<'a>;
    fn delete<'a>(&'a self, headers: &'a HeaderMap) -> Answer<'a>;
}

/// How to start an `Eras` for an engine (once, when first needed).
#[derive(Clone)]
pub struct Translation(pub Arc<dyn Fn(Arc<Proxy>) -> Result<Box<dyn Eras>, String> + Send + Sync>);

impl std::fmt::Debug for Translation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Translation")
    }
}

pub struct Translate {
    proxy: Arc<Proxy>,
    make: Translation,
    /// The upstream's era, once learnt.
    era: Mutex<Option<Era>>,
    /// One probe at a time.
    probing: tokio::sync::Mutex<()>,
    eras: OnceLock<Option<Box<dyn Eras>>>,
}

impl Translate {
    pub fn new(proxy: Arc<Proxy>, make: Translation) -> Translate {
        Translate { proxy, make, era: Mutex::new(None), probing: tokio::sync::Mutex::new(()), eras: OnceLock::new() }
    }

    /// Where a POST goes: `Some` when its client speaks the other era than the upstream.
    pub async fn post(&self, headers: &HeaderMap, body: &Bytes) -> Option<&dyn Eras> {
        let Ok(asks) = era::era_of(headers.get(PROTOCOL_VERSION).and_then(|v| v.to_str().ok())) else {
            return None;
        };
        let known = *self.era.lock().unwrap_or_else(|p| p.into_inner());
        let upstream = match known {
            Some(e) => e,
            // Only the first request of a client of either era asks; a legacy client's other
            // requests are in a session the engine or the translation opened already.
            None if asks == Era::Modern || Payload::parse(body).is_ok_and(|p| p.is_initialize()) => {
                self.learn().await?
            }
            None => return None,
        };
        if upstream == asks { None } else { self.eras() }
    }

    /// Where a GET or DELETE goes (a session's, so a legacy client's): to the translation when
    /// the upstream speaks only 2026-07-28.
    pub fn session(&self) -> Option<&dyn Eras> {
        let known = *self.era.lock().unwrap_or_else(|p| p.into_inner());
        if known == Some(Era::Modern) { self.eras() } else { None }
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

    /// The upstream's era: known already, or asked now (`None`: it did not say).
    async fn learn(&self) -> Option<Era> {
        let _one = self.probing.lock().await;
        if let Some(e) = *self.era.lock().unwrap_or_else(|p| p.into_inner()) {
            return Some(e);
        }
        let found = self.probe().await?;
        tracing::info!(upstream = %self.proxy.upstream.display, "the upstream speaks the {found:?} era");
        *self.era.lock().unwrap_or_else(|p| p.into_inner()) = Some(found);
        Some(found)
    }

    /// One `initialize` of the engine's own, with the `_meta` envelope and `Mcp-Method` a
    /// modern-only server reads (it answers with the revisions it speaks), its session ended.
    async fn probe(&self) -> Option<Era> {
        let version = "2025-11-25";
        let body = json!({"jsonrpc": "2.0", "id": "mcpgate-era", "method": "initialize", "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")},
            "_meta": {crate::mcp::modern::META_VERSION: version, crate::mcp::modern::META_CAPABILITIES: {}},
        }});
        let to = Forward { method: Some(http::HeaderValue::from_static("initialize")), ..Default::default() };
        let resp = self.proxy.send(&to, Bytes::from(body.to_string())).await;
        let (status, session) = (resp.status(), resp.headers().get(SESSION_ID).cloned());
        let mut response = Bytes::new();
        answer::read(resp, answer::MAX_JSON, |m| {
            let is_response = Payload::parse(&m).is_ok_and(|p| p.messages().iter().any(|m| m.kind() == crate::jsonrpc::Kind::Response));
            if is_response {
                response = m;
            }
            !is_response
        })
        .await;
        if session.is_some() {
            self.proxy.end(&Forward { session, ..Default::default() }).await;
        }
        match era::detect(status.as_u16(), &response) {
            Detected::Modern(_) => Some(Era::Modern),
            Detected::HttpSse => Some(Era::Legacy),
            Detected::AsIs if status.is_success() => Some(Era::Legacy),
            Detected::AsIs => None,
        }
    }
}
