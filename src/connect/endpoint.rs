//! `connect`'s client-facing endpoint: its MCP path, each identity's (`/agents/NAME/mcp`) and a
//! liveness probe on a listener, guarded by the Host/Origin rules of its address. The layers a
//! request passes are `http::endpoint`'s; what a message then becomes is the engine's (`Proxy`):
//! the main one, or the identity's own.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::ORIGIN;
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};

use super::proxy::Proxy;
use crate::http::body::{self, Body};
use crate::http::endpoint::{Endpoint, Route};
use crate::http::guard::{Guard, Refusal};
use crate::http::wire;

pub struct Local {
    pub proxy: Arc<Proxy>,
    /// The MCP endpoint's path (`--path`).
    pub path: String,
    pub guard: Guard,
    /// The identities served at `/agents/NAME/mcp` (none on an identity's own port).
    pub identities: Option<Arc<super::identities::Identities>>,
    /// Clients of the other era than the upstream's, on the main endpoint.
    pub translate: Option<super::translate::Translate>,
}

impl Local {
    /// The engine a request goes to: an identity's (`Some`), or the main one.
    fn engine<'a>(&'a self, identity: &'a Option<Arc<Proxy>>) -> &'a Proxy {
        identity.as_deref().unwrap_or(&self.proxy)
    }

    /// Where a session's GET or DELETE goes when the main endpoint's upstream speaks only
    /// 2026-07-28 (its sessions are the translation's).
    fn translating(&self, identity: &Option<Arc<Proxy>>) -> Option<&dyn super::translate::Eras> {
        if identity.is_some() {
            return None;
        }
        self.translate.as_ref()?.session()
    }
}

impl Endpoint for Local {
    /// An identity's engine; `None`: the main endpoint's (no clone on its path).
    type View = Option<Arc<Proxy>>;

    fn check_guard(&self, parts: &Parts) -> Result<(), Refusal> {
        self.guard.check(&parts.headers, parts.uri.authority().map(|a| a.as_str()))
    }

    /// The MCP endpoint and a liveness probe (for probes, not browser pages); nothing else
    /// exists.
    async fn route(self: &Arc<Self>, parts: &Parts, _peer: SocketAddr) -> Route<Self::View> {
        if parts.uri.path() == "/healthz" && parts.method == Method::GET && !parts.headers.contains_key(ORIGIN) {
            return Route::Answered(Response::new(body::full("ok\n")));
        }
        let identity =
            self.identities.as_ref().and_then(|ids| Some((ids, super::identities::named(parts.uri.path())?)));
        if let Some(proxy) = identity.and_then(|(ids, name)| ids.get(&name)) {
            return Route::Mcp(Some(proxy));
        }
        if parts.uri.path() != self.path {
            tracing::debug!(path = ?parts.uri.path(), "no such endpoint");
            let mut resp = Response::new(body::full(format!("not found: MCP is served at {}\n", self.path)));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            return Route::Answered(resp);
        }
        Route::Mcp(None)
    }

    fn max_body(&self) -> usize {
        self.proxy.max_body
    }

    async fn post(
        self: &Arc<Self>,
        identity: Self::View,
        _: crate::authn::Caller,
        headers: &HeaderMap,
        body: Bytes,
        _peer: SocketAddr,
    ) -> Response<Body> {
        let engine = self.engine(&identity);
        if identity.is_none()
            && let Some(t) = &self.translate
        {
            return t.post(headers, body).await;
        }
        engine.message(headers, body).await.unwrap_or_else(|(e, id)| wire::error(&e, id.as_deref()))
    }

    async fn get(&self, identity: Self::View, _: crate::authn::Caller, headers: &HeaderMap) -> Response<Body> {
        if let Some(eras) = self.translating(&identity) {
            return eras.get(headers).await;
        }
        self.engine(&identity).get(headers).await.unwrap_or_else(|(e, id)| wire::error(&e, id.as_deref()))
    }

    async fn delete(&self, identity: Self::View, _: crate::authn::Caller, headers: &HeaderMap) -> Response<Body> {
        if let Some(eras) = self.translating(&identity) {
            return eras.delete(headers).await;
        }
        self.engine(&identity).delete(headers).await.unwrap_or_else(|(e, id)| wire::error(&e, id.as_deref()))
    }
}
