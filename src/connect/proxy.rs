//! The engine: one upstream, and the sessions of the clients that reach it — over HTTP (the
//! layers of `http::endpoint`, then `Local`) or in-process (`forward`). It owns the session
//! table: it dispatches each message by the kind of its session, makes the sessions (the
//! transport says what the upstream made of `initialize`) and ends them. What happens upstream
//! is the transport's (`streamable` with its hot path `direct`, `legacy`), which it hands its
//! `Line` and the session's upstream state, never itself.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::direct::{self, Forward};
use super::legacy;
use super::relay::{Line, Pending};
use super::streamable::{self, Initialized};
use crate::error::{Error, Kind};
use crate::http::body::{self, Body};
use crate::jsonrpc::Payload;
use crate::mcp::era::{self, Era};
use crate::mcp::headers::{PROTOCOL_VERSION, SESSION_ID, check_modern};
use crate::mcp::session::{Lease, Session, SessionTable};
use crate::upstream::Upstream;

/// The upstream's transport, as configured or detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// Try Streamable HTTP; fall back to HTTP+SSE when `initialize` is refused with 400/404/405
    /// (the spec's backwards-compatibility rule).
    Auto,
    StreamableHttp,
    /// Legacy HTTP+SSE (2024-11-05).
    Sse,
}

/// The client every session is counted against: `connect` serves one user on loopback, so its
/// limit is global.
pub(crate) const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The upstream side of a client session.
pub enum UpstreamSession {
    Streamable(streamable::State),
    Legacy(legacy::State),
}

pub struct Proxy {
    pub upstream: Upstream,
    pub sessions: SessionTable<UpstreamSession>,
    pub max_body: usize,
    pub shutdown: CancellationToken,
    pub transport: Transport,
    /// What `Auto` found, once a session was opened.
    pub detected: OnceLock<Transport>,
}

/// A request's outcome before it is written: a response, or an error answering a JSON-RPC id.
pub(super) type Outcome = Result<Response<Body>, (Error, Option<Box<RawValue>>)>;

fn fail(e: Error) -> (Error, Option<Box<RawValue>>) {
    (e, None)
}

impl Proxy {
    /// What the transports relay with: the upstream and the shutdown.
    pub(super) fn line(&self) -> Line<'_> {
        Line { upstream: &self.upstream, shutdown: &self.shutdown }
    }

    /// One POSTed message, read whole: to the upstream statelessly (2026-07-28), as a new
    /// session (`initialize`), or in the client's session.
    pub(super) async fn message(&self, client: &HeaderMap, bytes: Bytes) -> Outcome {
        let payload = Payload::parse(&bytes).map_err(|e| fail(Error::new(Kind::Parse, e.to_string())))?;
        let id = payload.error_id().map(ToOwned::to_owned);
        let with_id = |e: Error| (e, id.clone());
        payload.check_version().map_err(|e| with_id(Error::new(Kind::BadRequest, e.to_string())))?;
        let version = client.get(PROTOCOL_VERSION).map(|v| v.to_str().unwrap_or("?"));
        let pending = Pending::new(payload.request_ids());
        let era = era::era_of(version);
        if era.is_err() && client.get(SESSION_ID).is_none() && !payload.is_initialize() {
            // Outside a session, a revision unknown here is the upstream's to take or refuse
            // (naming those it speaks): passed on as it came.
            return self.stateless(client, bytes, pending).await.map_err(with_id);
        }
        let era = era.map_err(|e| with_id(e.into()))?;

        if era == Era::Modern {
            // Stateless: no session to map; the standard headers must mirror the body.
            let msg = payload.single().ok_or_else(|| {
                with_id(Error::new(Kind::HeaderMismatch, "a modern request carries exactly one message"))
            })?;
            check_modern(client, msg).map_err(|e| with_id(Error::new(Kind::HeaderMismatch, e.to_string())))?;
            return self.stateless(client, bytes, pending).await.map_err(with_id);
        }
        if payload.is_initialize() {
            return self.initialize(client, bytes, pending).await.map_err(with_id);
        }
        let session = self.session_of(client).map_err(with_id)?;
        self.in_session(client, bytes.clone(), &payload, &session, pending)
            .await
            .map(|resp| tag(resp, &session.header))
            .map_err(with_id)
    }

    /// A message outside any session, to the upstream as it came, and its answer relayed.
    async fn stateless(
        &self,
        client: &HeaderMap,
        bytes: Bytes,
        pending: Option<Pending>,
    ) -> Result<Response<Body>, Error> {
        let line = self.line();
        let resp = self.upstream.send(Method::POST, &self.upstream.url, line.upstream_headers(client), bytes).await?;
        Ok(line.relay(resp, None, pending, false))
    }

    /// A legacy-era message within a session, from the session on: forwarded, and the answer
    /// relayed.
    pub(super) async fn in_session(
        &self,
        client: &HeaderMap,
        bytes: Bytes,
        payload: &Payload<'_>,
        session: &Session<UpstreamSession>,
        pending: Option<Pending>,
    ) -> Result<Response<Body>, Error> {
        match &session.upstream {
            // The head rendered once, where the client's request is one it can carry.
            UpstreamSession::Streamable(state) if self.upstream.direct() && crate::upstream::fits(client) => {
                state.observe(payload);
                let to = Forward {
                    version: client.get(PROTOCOL_VERSION).cloned(),
                    bearer: client.get(http::header::AUTHORIZATION).cloned(),
                    ..Default::default()
                };
                direct::post(self.line(), &to, Some(client), session, state, bytes, payload).await
            }
            UpstreamSession::Streamable(state) => {
                state.observe(payload);
                streamable::exchange(self.line(), Method::POST, client, bytes, session, state, pending).await
            }
            // Boxed: its future would otherwise size every Streamable HTTP exchange's.
            UpstreamSession::Legacy(state) => {
                Box::pin(legacy::post(&self.upstream, &session.initialize, state, payload, bytes)).await
            }
        }
    }

    async fn initialize(
        &self,
        client: &HeaderMap,
        bytes: Bytes,
        pending: Option<Pending>,
    ) -> Result<Response<Body>, Error> {
        let transport = self.detected.get().copied().unwrap_or(self.transport);
        if transport == Transport::Sse {
            return self.legacy_initialize(bytes).await;
        }
        match self.streamable_initialize(client, bytes.clone(), pending).await? {
            Ok(resp) => {
                let _ = self.detected.set(Transport::StreamableHttp);
                Ok(resp)
            }
            Err(refused) if transport == Transport::Auto && matches!(refused.status().as_u16(), 400 | 404 | 405) => {
                tracing::info!(upstream = %self.upstream.display, status = refused.status().as_u16(), "initialize refused over Streamable HTTP; trying HTTP+SSE");
                match self.legacy_initialize(bytes).await {
                    Ok(resp) => {
                        let _ = self.detected.set(Transport::Sse);
                        Ok(resp)
                    }
                    // Not an HTTP+SSE server either: the client sees the original refusal.
                    Err(e) => {
                        tracing::debug!("HTTP+SSE fallback failed: {e}");
                        Ok(refused)
                    }
                }
            }
            Err(refused) => Ok(refused),
        }
    }

    /// Forwards `initialize` over Streamable HTTP. `Ok(Err(resp))`: the upstream refused it
    /// (not 2xx), so no session was made; the caller decides whether to try HTTP+SSE or relay
    /// the refusal.
    async fn streamable_initialize(
        &self,
        client: &HeaderMap,
        bytes: Bytes,
        pending: Option<Pending>,
    ) -> Result<Result<Response<Body>, Response<Body>>, Error> {
        let line = self.line();
        let (resp, id) = match streamable::initialize(line, client, bytes.clone()).await? {
            Initialized::Opened { resp, id } => (resp, id),
            Initialized::Refused(resp) => return Ok(Err(line.relay(resp, None, pending, false))),
        };
        let created =
            match self.sessions.create(CLIENT, &bytes, UpstreamSession::Streamable(streamable::State::new(id))) {
                Ok(created) => created,
                Err(e) => {
                    // The upstream opened a session the client will never use: end it now.
                    if let Some(id) = resp.headers().get(SESSION_ID).cloned() {
                        streamable::delete(&self.upstream, id, "refused").await;
                    }
                    return Err(e.into());
                }
            };
        self.end_evicted(created.evicted).await;
        let session = created.session;
        tracing::info!(session = session.label(), upstream = %self.upstream.display, "session started");
        Ok(Ok(line.relay(resp, Some(&session.header), pending, false)))
    }

    /// `initialize` to a legacy upstream: open its event stream, ask, keep the session.
    async fn legacy_initialize(&self, bytes: Bytes) -> Result<Response<Body>, Error> {
        let (state, answer) = legacy::initialize(&self.upstream, &bytes).await?;
        let created = match self.sessions.create(CLIENT, &bytes, UpstreamSession::Legacy(state)) {
            Ok(created) => created,
            Err(e) => return Err(e.into()),
        };
        self.end_evicted(created.evicted).await;
        let session = created.session;
        tracing::info!(session = session.label(), upstream = %self.upstream.display, "session started (HTTP+SSE upstream)");
        Ok(legacy::initialized(answer, &session.header))
    }

    pub(super) async fn get(&self, client: &HeaderMap) -> Outcome {
        let session = self.session_of(client).map_err(fail)?;
        match &session.upstream {
            UpstreamSession::Streamable(state) => {
                streamable::exchange(self.line(), Method::GET, client, Bytes::new(), &session, state, None).await
            }
            UpstreamSession::Legacy(state) => {
                legacy::get(&self.upstream, &session.initialize, state, &self.shutdown).await
            }
        }
        .map(|resp| tag(resp, &session.header))
        .map_err(fail)
    }

    pub(super) async fn delete(&self, client: &HeaderMap) -> Outcome {
        let session = self.session_of(client).map_err(fail)?;
        self.sessions.remove(session.id());
        self.end_upstream_session(&session).await;
        tracing::info!(session = session.label(), "session ended by the client");
        Ok(status_only(StatusCode::OK))
    }

    /// Ends the session upstream, best effort.
    pub async fn end_upstream_session(&self, session: &Session<UpstreamSession>) {
        match &session.upstream {
            UpstreamSession::Streamable(state) => streamable::end(&self.upstream, state, session.label()).await,
            UpstreamSession::Legacy(state) => state.close().await,
        }
    }

    /// Ends upstream the sessions evicted to make room for a new one, as an expiry would.
    async fn end_evicted(&self, evicted: Vec<Arc<Session<UpstreamSession>>>) {
        for s in evicted {
            tracing::info!(session = s.label(), "session evicted: the session limit was reached");
            self.end_upstream_session(&s).await;
        }
    }

    /// A hold on the session `id` for an in-process owner (the translation's remote link): the
    /// sweeper leaves a held session alone (`expire_unheld`), and eviction too; the owner ends it.
    pub fn lease(&self, id: &HeaderValue) -> Option<Lease<UpstreamSession>> {
        self.sessions.get(id.to_str().ok()?).map(Lease::new)
    }

    /// The client's session, by the id the gateway issued.
    fn session_of(&self, client: &HeaderMap) -> Result<Arc<Session<UpstreamSession>>, Error> {
        let id = client.get(SESSION_ID).ok_or_else(|| {
            Error::new(Kind::BadRequest, "the Mcp-Session-Id header is required; send initialize first")
        })?;
        let id = id.to_str().unwrap_or("");
        self.sessions
            .get(id)
            .ok_or_else(|| Error::new(Kind::SessionNotFound, "session not found; initialize a new session"))
    }
}

/// Sets the gateway's session id on a response (already filtered, or built here).
fn tag(mut resp: Response<Body>, session: &HeaderValue) -> Response<Body> {
    resp.headers_mut().insert(SESSION_ID, session.clone());
    resp
}

pub(super) fn status_only(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = status;
    r
}
