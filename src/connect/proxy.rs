//! The `connect` request path: one client-facing Streamable HTTP endpoint in front of one
//! upstream. The layers a request passes, in order, are written once in `Proxy::handle`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::headers;
use super::relay::{Pending, Relay};
use crate::error::{Error, Kind};
use crate::http::body::{self, Body, ReadError};
use crate::http::guard::{self, Guard};
use crate::http::wire;
use crate::jsonrpc::Payload;
use crate::mcp::era::{self, Era};
use crate::mcp::headers::{LAST_EVENT_ID, PROTOCOL_VERSION, SESSION_ID, check_modern};
use crate::mcp::session::{Session, SessionTable};
use crate::upstream::Upstream;

pub struct Proxy {
    pub path: String,
    pub guard: Guard,
    pub upstream: Upstream,
    pub sessions: SessionTable,
    pub max_body: usize,
    pub shutdown: CancellationToken,
}

/// A request's outcome before it is written: a response, or an error answering a JSON-RPC id.
type Outcome = Result<Response<Body>, (Error, Option<Box<RawValue>>)>;

fn fail(e: Error) -> (Error, Option<Box<RawValue>>) {
    (e, None)
}

impl Proxy {
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        // 1. Route: the MCP endpoint and a liveness probe; nothing else exists.
        if parts.uri.path() == "/healthz" && parts.method == Method::GET {
            return Response::new(body::full("ok\n"));
        }
        if parts.uri.path() != self.path {
            return status_only(StatusCode::NOT_FOUND);
        }
        // 2. Host and Origin (DNS rebinding, cross-site browsers), before anything is read.
        if let Err(refusal) = self
            .guard
            .check(&parts.headers, parts.uri.authority().map(|a| a.as_str()))
        {
            tracing::warn!("refused: {refusal}");
            return wire::error(&Error::new(Kind::Forbidden, refusal.to_string()), None);
        }
        // 3. CORS preflight, answered here.
        if parts.method == Method::OPTIONS {
            return guard::preflight(&parts.headers);
        }
        // 4. The MCP methods; the body limit applies while reading (413), credentials and the
        //    upstream timeout inside `Upstream::send`.
        let outcome = match parts.method {
            Method::POST => self.post(&parts.headers, body).await,
            Method::GET => self.get(&parts.headers).await,
            Method::DELETE => self.delete(&parts.headers).await,
            _ => Err(fail(Error::new(
                Kind::MethodNotAllowed,
                format!("{} is not an MCP method", parts.method),
            ))),
        };
        let mut resp = outcome.unwrap_or_else(|(e, id)| wire::error(&e, id.as_deref()));
        // 5. CORS response headers for browser clients.
        guard::cors(&parts.headers, resp.headers_mut());
        tracing::debug!(method = %parts.method, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
        resp
    }

    fn upstream_headers(&self, client: &HeaderMap) -> HeaderMap {
        headers::to_upstream(client, self.upstream.supplies_authorization())
    }

    async fn post(&self, client: &HeaderMap, body: Incoming) -> Outcome {
        let bytes = match body::read_limited(body, self.max_body).await {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return Err(fail(Error::new(
                    Kind::PayloadTooLarge,
                    format!("the request body exceeds {} bytes", self.max_body),
                )));
            }
            Err(ReadError::Broken(e)) => {
                return Err(fail(Error::new(
                    Kind::BadRequest,
                    format!("reading the request body failed: {e}"),
                )));
            }
        };
        let payload =
            Payload::parse(&bytes).map_err(|e| fail(Error::new(Kind::Parse, e.to_string())))?;
        let id = payload.error_id().map(ToOwned::to_owned);
        let with_id = |e: Error| (e, id.clone());
        let version = client
            .get(PROTOCOL_VERSION)
            .map(|v| v.to_str().unwrap_or("?"));
        let era = era::era_of(version)
            .map_err(|e| with_id(Error::new(Kind::BadRequest, e.to_string())))?;
        let pending = Pending::new(payload.request_ids());

        if era == Era::Modern {
            // Stateless: no session to map; the standard headers must mirror the body.
            let msg = payload.single().ok_or_else(|| {
                with_id(Error::new(
                    Kind::HeaderMismatch,
                    "a modern request carries exactly one message",
                ))
            })?;
            check_modern(client, msg)
                .map_err(|e| with_id(Error::new(Kind::HeaderMismatch, e.to_string())))?;
            let resp = self
                .upstream
                .send(
                    Method::POST,
                    &self.upstream.url,
                    &self.upstream_headers(client),
                    bytes.clone(),
                )
                .await
                .map_err(with_id)?;
            return Ok(self.relay(resp, None, pending, false));
        }
        if payload.is_initialize() {
            return self
                .initialize(client, bytes, pending)
                .await
                .map_err(with_id);
        }
        let session = self.session_of(client).map_err(with_id)?;
        self.exchange(Method::POST, client, bytes, &session, pending)
            .await
            .map_err(with_id)
    }

    async fn get(&self, client: &HeaderMap) -> Outcome {
        let session = self.session_of(client).map_err(fail)?;
        self.exchange(Method::GET, client, Bytes::new(), &session, None)
            .await
            .map_err(fail)
    }

    async fn delete(&self, client: &HeaderMap) -> Outcome {
        let session = self.session_of(client).map_err(fail)?;
        self.sessions.remove(&session.id);
        self.end_upstream_session(&session).await;
        tracing::info!(session = session.label(), "session ended by the client");
        Ok(status_only(StatusCode::OK))
    }

    /// The client's session, by the id the gateway issued.
    fn session_of(&self, client: &HeaderMap) -> Result<Arc<Session>, Error> {
        let id = client.get(SESSION_ID).ok_or_else(|| {
            Error::new(
                Kind::BadRequest,
                "the Mcp-Session-Id header is required; send initialize first",
            )
        })?;
        let id = id.to_str().unwrap_or("");
        self.sessions.get(id).ok_or_else(|| {
            Error::new(
                Kind::SessionNotFound,
                "session not found; initialize a new session",
            )
        })
    }

    async fn initialize(
        &self,
        client: &HeaderMap,
        body: Bytes,
        pending: Option<Pending>,
    ) -> Result<Response<Body>, Error> {
        let resp = self
            .upstream
            .send(
                Method::POST,
                &self.upstream.url,
                &self.upstream_headers(client),
                body.clone(),
            )
            .await?;
        if !resp.status().is_success() {
            return Ok(self.relay(resp, None, pending, false));
        }
        let upstream_id = resp.headers().get(SESSION_ID).cloned();
        let session = self
            .sessions
            .create(body, upstream_id)
            .map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
        tracing::info!(session = session.label(), upstream = %self.upstream.display, "session started");
        Ok(self.relay(resp, Some(&session.header), pending, false))
    }

    /// Forwards a request within a session. If the upstream forgot its session (it restarted),
    /// the session is rebuilt and the request sent again: the client never knows.
    async fn exchange(
        &self,
        method: Method,
        client: &HeaderMap,
        body: Bytes,
        session: &Session,
        pending: Option<Pending>,
    ) -> Result<Response<Body>, Error> {
        let open_ended = method == Method::GET;
        let mut hdrs = self.upstream_headers(client);
        let stale = session.upstream_id();
        set_session(&mut hdrs, stale.as_ref());
        let resp = self
            .upstream
            .send(method.clone(), &self.upstream.url, &hdrs, body.clone())
            .await?;
        if stale.is_none() {
            return Ok(self.relay(resp, Some(&session.header), pending, open_ended));
        }
        match lost_session(resp, self.upstream.timeout).await {
            Verdict::Kept(resp) => {
                return Ok(self.relay(resp, Some(&session.header), pending, open_ended));
            }
            Verdict::Answered(resp) => return Ok(self.with_session(resp, Some(&session.header))),
            Verdict::Lost => {}
        }
        tracing::info!(
            session = session.label(),
            "upstream lost the session; re-initializing it"
        );
        let fresh =
            super::rebuild::rebuild(&self.upstream, session, stale.as_ref(), client).await?;
        set_session(&mut hdrs, fresh.as_ref());
        // Event ids of the lost session mean nothing to the new one.
        hdrs.remove(LAST_EVENT_ID);
        let resp = self
            .upstream
            .send(method, &self.upstream.url, &hdrs, body)
            .await?;
        Ok(self.relay(resp, Some(&session.header), pending, open_ended))
    }

    /// Turns the upstream's response into the client's: headers filtered, the session id
    /// replaced by the gateway's, the body relayed as it arrives.
    fn relay(
        &self,
        resp: Response<Incoming>,
        session: Option<&HeaderValue>,
        pending: Option<Pending>,
        open_ended: bool,
    ) -> Response<Body> {
        let (parts, incoming) = resp.into_parts();
        let is_sse = parts
            .headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let (idle, stop, pending) = if open_ended {
            (None, Some(self.shutdown.clone().cancelled_owned()), None)
        } else {
            (
                Some(self.upstream.timeout),
                None,
                pending.filter(|_| is_sse),
            )
        };
        let relay = Relay::new(incoming, idle, stop, pending, self.upstream.display.clone());
        self.with_session(
            Response::from_parts(parts, http_body_util::BodyExt::boxed_unsync(relay)),
            session,
        )
    }

    /// The client's view of an upstream response: headers filtered, our session id.
    fn with_session(&self, resp: Response<Body>, session: Option<&HeaderValue>) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        parts.headers = headers::to_client(&parts.headers);
        if let Some(id) = session {
            parts.headers.insert(SESSION_ID, id.clone());
        }
        Response::from_parts(parts, body)
    }

    /// Ends the session upstream (DELETE), best effort.
    pub async fn end_upstream_session(&self, session: &Session) {
        let Some(id) = session.upstream_id() else {
            return;
        };
        let mut hdrs = HeaderMap::new();
        hdrs.insert(SESSION_ID, id);
        hdrs.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Err(e) = self
            .upstream
            .send(Method::DELETE, &self.upstream.url, &hdrs, Bytes::new())
            .await
        {
            tracing::debug!(
                session = session.label(),
                "ending the upstream session failed: {e}"
            );
        }
    }
}

enum Verdict {
    /// Not about the session: relay as it is.
    Kept(Response<Incoming>),
    /// Read to decide, and not about the session: relay these bytes.
    Answered(Response<Body>),
    /// The upstream no longer knows the session.
    Lost,
}

/// Whether a response means "unknown session". The spec says 404; servers built on the SDKs'
/// examples answer 400 with a JSON-RPC error such as "No valid session ID provided", so a 400
/// whose (small) body speaks of the session counts too.
async fn lost_session(resp: Response<Incoming>, timeout: std::time::Duration) -> Verdict {
    match resp.status() {
        StatusCode::NOT_FOUND => Verdict::Lost,
        StatusCode::BAD_REQUEST => {
            let (parts, incoming) = resp.into_parts();
            let read = tokio::time::timeout(timeout, body::read_limited(incoming, 64 * 1024)).await;
            let Ok(Ok(bytes)) = read else {
                return Verdict::Answered(Response::from_parts(parts, body::empty()));
            };
            if String::from_utf8_lossy(&bytes)
                .to_ascii_lowercase()
                .contains("session")
            {
                Verdict::Lost
            } else {
                Verdict::Answered(Response::from_parts(parts, body::full(bytes)))
            }
        }
        _ => Verdict::Kept(resp),
    }
}

fn set_session(h: &mut HeaderMap, id: Option<&HeaderValue>) {
    match id {
        Some(id) => {
            h.insert(SESSION_ID, id.clone());
        }
        None => {
            h.remove(SESSION_ID);
        }
    }
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = status;
    r
}
