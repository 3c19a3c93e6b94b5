//! The engine: one upstream, and the sessions of the clients that reach it — over HTTP (the
//! layers of `http::endpoint`, then `Local`) or in-process (`forward`). What happens upstream
//! depends on the upstream's transport (`streamable`, `legacy`).

use std::sync::{Arc, OnceLock};

use crate::transport::http_client::ResponseBody;
use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::headers;
use super::relay::{Pending, Relay};
use crate::error::{Error, Kind};
use crate::http::body::{self, Body};
use crate::jsonrpc::Payload;
use crate::mcp::era::{self, Era};
use crate::mcp::headers::{PROTOCOL_VERSION, SESSION_ID, check_modern};
use crate::mcp::session::{Session, SessionTable};
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

/// The upstream side of a client session.
pub enum UpstreamSession {
    Streamable(super::streamable::State),
    Legacy(super::legacy::State),
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
    pub(super) fn upstream_headers(&self, client: &HeaderMap) -> HeaderMap {
        headers::to_upstream(client, self.upstream.supplies_authorization())
    }

    /// One POSTed message, read whole: to the upstream statelessly (2026-07-28), as a new
    /// session (`initialize`), or in the client's session.
    pub(super) async fn message(&self, client: &HeaderMap, bytes: Bytes) -> Outcome {
        let payload = Payload::parse(&bytes).map_err(|e| fail(Error::new(Kind::Parse, e.to_string())))?;
        let id = payload.error_id().map(ToOwned::to_owned);
        let with_id = |e: Error| (e, id.clone());
        payload.check_version().map_err(|e| with_id(Error::new(Kind::BadRequest, e.to_string())))?;
        let version = client.get(PROTOCOL_VERSION).map(|v| v.to_str().unwrap_or("?"));
        let era = era::era_of(version).map_err(|e| with_id(Error::new(Kind::BadRequest, e.to_string())))?;
        let pending = Pending::new(payload.request_ids());

        if era == Era::Modern {
            // Stateless: no session to map; the standard headers must mirror the body.
            let msg = payload.single().ok_or_else(|| {
                with_id(Error::new(Kind::HeaderMismatch, "a modern request carries exactly one message"))
            })?;
            check_modern(client, msg).map_err(|e| with_id(Error::new(Kind::HeaderMismatch, e.to_string())))?;
            let resp = self
                .upstream
                .send(Method::POST, &self.upstream.url, self.upstream_headers(client), bytes.clone())
                .await
                .map_err(with_id)?;
            return Ok(self.relay(resp, None, pending, false));
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
                let to = super::Forward {
                    version: client.get(PROTOCOL_VERSION).cloned(),
                    bearer: client.get(http::header::AUTHORIZATION).cloned(),
                    ..Default::default()
                };
                self.direct(&to, Some(client), session, state, bytes, payload).await
            }
            UpstreamSession::Streamable(state) => {
                state.observe(payload);
                self.exchange(Method::POST, client, bytes, session, state, pending).await
            }
            // Boxed: its future would otherwise size every Streamable HTTP exchange's.
            UpstreamSession::Legacy(state) => Box::pin(self.legacy_post(session, state, payload, bytes)).await,
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

    pub(super) async fn get(&self, client: &HeaderMap) -> Outcome {
        let session = self.session_of(client).map_err(fail)?;
        match &session.upstream {
            UpstreamSession::Streamable(state) => {
                self.exchange(Method::GET, client, Bytes::new(), &session, state, None).await
            }
            UpstreamSession::Legacy(state) => self.legacy_get(&session, state).await,
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
            UpstreamSession::Streamable(state) => self.streamable_end(session, state).await,
            UpstreamSession::Legacy(state) => state.close().await,
        }
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

    /// Turns the upstream's response into the client's: the body relayed as it arrives, with
    /// the timeout and error events of `Relay`.
    pub(super) fn relay(
        &self,
        resp: Response<ResponseBody>,
        session: Option<&HeaderValue>,
        pending: Option<Pending>,
        open_ended: bool,
    ) -> Response<Body> {
        let (parts, incoming) = resp.into_parts();
        let is_sse = crate::transport::answer::is_event_stream(&parts.headers);
        let (idle, stop, pending) = if open_ended {
            (None, Some(self.shutdown.clone().cancelled_owned()), None)
        } else {
            (Some(self.upstream.timeout), None, pending.filter(|_| is_sse))
        };
        let relay = Relay::new(incoming, idle, stop, pending, self.upstream.display.clone());
        self.with_session(Response::from_parts(parts, http_body_util::BodyExt::boxed_unsync(relay)), session)
    }

    /// The client's view of an upstream response: headers filtered, our session id.
    pub(super) fn with_session(&self, resp: Response<Body>, session: Option<&HeaderValue>) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        headers::to_client(&mut parts.headers);
        if let Some(id) = session {
            parts.headers.insert(SESSION_ID, id.clone());
        }
        Response::from_parts(parts, body)
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
