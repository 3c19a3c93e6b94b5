//! The gateway's Streamable HTTP endpoints: `/mcp` (every server, merged) and
//! `/servers/<name>/mcp` (one server as it is), plus `/healthz`, `/readyz` and `/metrics`.
//! A request passes the layers of `http::endpoint` (Host/Origin → route → CORS preflight →
//! method → body, limited), then `Gateway::post`: parsed once → era → target (`dispatch.rs`) →
//! session → the server. Answers the gateway can give itself are JSON; a call to a server is
//! an SSE stream carrying what the server sends for it (progress, its requests to the client)
//! and then the response.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use super::Gateway;
use super::backend::{Event, Health, Outgoing, Passthrough, Reply};
use super::caller::audit_entry;
use super::dispatch::Target;
use super::router::{LISTINGS, Routed};
use super::session::{Client, View};
use crate::authn::Caller;
use crate::error::{Error, Kind};
use crate::http::body::{self, Body};
use crate::http::endpoint::{Endpoint, Route};
use crate::http::limits::Cached;
use crate::http::{guard, wire};
use crate::mcp::headers::{LAST_EVENT_ID, SESSION_ID};
use crate::mcp::session::Session;
use crate::policy::Access;
use crate::policy::audit::Entry;
use crate::transport::sse;

/// `serve`'s endpoints behind the layers every request passes (`http::endpoint::handle`).
impl Endpoint for Gateway {
    type View = View;

    /// The Host/Origin guard in force, through this event loop's copy of it (a reload replaces
    /// it; reading the shared one on every request would make the loops contend for it).
    fn check_guard(&self, parts: &http::request::Parts) -> Result<(), guard::Refusal> {
        thread_local! {
            static GUARD: std::cell::RefCell<Option<Cached<guard::Guard>>> = const { std::cell::RefCell::new(None) };
        }
        GUARD.with_borrow_mut(|cached| {
            let cached = match cached {
                Some(c) if c.is_of(&self.guard) => c,
                other => other.insert(self.guard.cached()),
            };
            cached.get().check(&parts.headers, parts.uri.authority().map(|a| a.as_str()))
        })
    }

    /// The merged endpoint, one server's, or the operational endpoints.
    async fn route(self: &Arc<Self>, parts: &http::request::Parts, peer: std::net::SocketAddr) -> Route<View> {
        Route::Mcp(match parts.uri.path() {
            "/mcp" => View::All,
            p if crate::authn::metadata::is_metadata_path(p) => return Route::Answered(self.resource_metadata(parts)),
            p if crate::authz::AuthorizationServer::serves(p) => return self.authorization(parts, peer),
            "/healthz" | "/readyz" | "/metrics" | "/admin/reload" => {
                return Route::Answered(self.operational(parts, peer).await);
            }
            // The name as configured, percent-encoded where it must be (`/servers/my%20memory/mcp`).
            p => match p
                .strip_prefix("/servers/")
                .and_then(|r| r.strip_suffix("/mcp"))
                .and_then(crate::url::decode_segment)
            {
                Some(name) if self.router.backend(&name).is_some() => View::One(name.into_owned()),
                Some(name) => {
                    tracing::debug!(server = ?name, "no such server");
                    let why = format!("no server is named {name:?}; /readyz lists them\n");
                    return Route::Answered(text(StatusCode::NOT_FOUND, why));
                }
                None => {
                    tracing::debug!(path = ?p, "no such endpoint");
                    let why = "not found: MCP is served at /mcp (every server) and /servers/<name>/mcp (one server)\n";
                    return Route::Answered(text(StatusCode::NOT_FOUND, why.into()));
                }
            },
        })
    }

    async fn authenticate(&self, parts: &http::request::Parts, _view: &View) -> Result<Caller, Error> {
        self.caller(parts).await
    }

    fn max_body(&self) -> usize {
        self.router.config().gateway.max_body
    }

    async fn post(
        self: &Arc<Self>,
        view: View,
        caller: Caller,
        headers: &HeaderMap,
        bytes: Bytes,
        peer: std::net::SocketAddr,
    ) -> Response<Body> {
        Gateway::post(self, view, &caller, headers, bytes, peer).await
    }

    fn destination(&self, view: &View, msg: &crate::jsonrpc::Envelope<'_>) -> Option<String> {
        Some(match self.router.target(view, &Access::everything(), msg) {
            Target::Lone(b) | Target::Named { backend: b, .. } => b.cfg.name.clone(),
            Target::Gateway => "gateway".to_owned(),
            Target::Router => "routed".to_owned(),
            Target::Refused(_) => "refused".to_owned(),
        })
    }

    async fn get(&self, view: View, caller: Caller, headers: &HeaderMap) -> Response<Body> {
        Gateway::get(self, &view, &caller, headers).await
    }

    async fn delete(&self, view: View, caller: Caller, headers: &HeaderMap) -> Response<Body> {
        Gateway::delete(self, &view, &caller, headers)
    }
}

impl Gateway {
    /// Whether the request carries the configured `adminToken` as its bearer token.
    fn admin_token_given(&self, headers: &HeaderMap) -> bool {
        let config = self.router.config();
        let Some(token) = &config.gateway.admin_token else { return false };
        let given = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        given
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            // In time independent of where they differ.
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.0.as_bytes())))
    }

    /// The RFC 9728 document (any of its well-known paths), when the gateway authenticates.
    fn resource_metadata(&self, parts: &http::request::Parts) -> Response<Body> {
        let Some(auth) = &self.auth else {
            return text(StatusCode::NOT_FOUND, "not found: this gateway authenticates no one\n".into());
        };
        // Browser clients (behind the Origin guard, which ran first) fetch it cross-origin, with a
        // preflight when they add `MCP-Protocol-Version`: CORS as on the MCP endpoints.
        if parts.method == Method::OPTIONS {
            return guard::preflight(&parts.headers);
        }
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            return not_allowed(&parts.method, "GET");
        }
        let mut resp = text(StatusCode::OK, crate::authn::metadata::document(auth.settings()).to_string());
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        guard::cors(&parts.headers, resp.headers_mut());
        resp
    }

    /// The authorization server's endpoints (`oauth` mode): CORS for its JSON ones (browser
    /// clients register and redeem codes cross-origin), none for its pages.
    fn authorization(&self, parts: &http::request::Parts, peer: std::net::SocketAddr) -> Route<View> {
        let Some(authz) = self.authz.clone() else {
            return Route::Answered(text(StatusCode::NOT_FOUND, "not found: this gateway issues no tokens\n".into()));
        };
        let page = matches!(parts.uri.path(), "/authorize" | crate::authz::CALLBACK);
        if parts.method == Method::OPTIONS && !page {
            return Route::Answered(guard::preflight(&parts.headers));
        }
        let (method, uri, headers) = (parts.method.clone(), parts.uri.clone(), parts.headers.clone());
        Route::Own(crate::http::endpoint::Own {
            max_body: crate::authz::AuthorizationServer::MAX_BODY,
            answer: Box::new(move |body| {
                Box::pin(async move {
                    let cors_headers = (!page).then(|| headers.clone());
                    let mut resp = authz.answer(method, uri, headers, body, peer.ip()).await;
                    if let Some(h) = cors_headers {
                        guard::cors(&h, resp.headers_mut());
                    }
                    resp
                })
            }),
        })
    }

    /// Health, readiness, metrics and reload: for probes, scrapers and the operator, never for a
    /// browser page (a request with any `Origin` is refused: CORS would not protect a reload,
    /// which needs no preflight). Reloading is for a process on this machine, or a caller with the
    /// configured `adminToken`.
    async fn operational(self: &Arc<Self>, parts: &http::request::Parts, peer: std::net::SocketAddr) -> Response<Body> {
        if parts.headers.contains_key(http::header::ORIGIN) {
            tracing::warn!(path = parts.uri.path(), "refused: a browser page asked for an operational endpoint");
            return wire::error(&Error::new(Kind::Forbidden, "this endpoint is not for browser pages"), None);
        }
        let read_only = matches!(parts.method, Method::GET | Method::HEAD);
        match parts.uri.path() {
            "/admin/reload" if !peer.ip().is_loopback() && !self.admin_token_given(&parts.headers) => {
                text(StatusCode::NOT_FOUND, "not found\n".into())
            }
            "/admin/reload" if parts.method == Method::POST => {
                let result = self.reload().await;
                let code = if result.is_ok() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
                let mut resp = text(code, super::reload::describe(&result).to_string() + "\n");
                resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp
            }
            "/admin/reload" => not_allowed(&parts.method, "POST"),
            _ if !read_only => not_allowed(&parts.method, "GET"),
            "/metrics" => {
                let mut resp = text(StatusCode::OK, self.metrics.render(self));
                // What Prometheus scrapers expect of the text format.
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                resp
            }
            path => self.health(path == "/readyz"),
        }
    }

    /// The client's session named by `Mcp-Session-Id`: one opened on this endpoint, by this
    /// caller (another user's session id is as unknown as one never issued).
    fn session(&self, view: &View, caller: &Caller, headers: &HeaderMap) -> Result<Arc<Session<Client>>, Error> {
        let id = headers.get(SESSION_ID).ok_or_else(|| {
            Error::new(Kind::BadRequest, "the Mcp-Session-Id header is required; send initialize first")
        })?;
        self.sessions
            .get(id.to_str().unwrap_or(""))
            .filter(|s| s.upstream.view == *view && s.upstream.owner == caller.subject)
            .ok_or_else(|| Error::new(Kind::SessionNotFound, "session not found; initialize a new session"))
    }

    /// A POSTed message's path through the gateway, top to bottom.
    async fn post(
        self: &Arc<Self>,
        view: View,
        caller: &Caller,
        headers: &HeaderMap,
        bytes: Bytes,
        peer: std::net::SocketAddr,
    ) -> Response<Body> {
        // 1. Parsed once: the envelope, borrowed from the body (params stay raw until needed).
        let Ok(payload) = crate::jsonrpc::Payload::parse(&bytes) else {
            return wire::error(&Error::new(Kind::Parse, "the body is not a JSON-RPC message"), None);
        };
        // Not JSON-RPC 2.0: refused at once, whatever server it was meant for.
        if let Err(e) = payload.check_version() {
            return wire::error(&Error::new(Kind::BadRequest, e.to_string()), payload.error_id());
        }
        let Some(msg) = payload.single() else {
            let e = Error::new(Kind::BadRequest, "batches are not supported; send one message per request");
            return wire::error(&e, None);
        };
        // 2. The era, from `MCP-Protocol-Version` (read once: the relay sends it on as it came).
        let version_header = headers.get(crate::mcp::headers::PROTOCOL_VERSION);
        let version = version_header.and_then(|v| v.to_str().ok());
        let era = match crate::mcp::era::era_of(version) {
            Ok(era) => era,
            Err(e) => return wire::error(&e.into(), msg.id),
        };
        // 3. What the caller may see and use (the users file), then who answers the message and
        //    whether policy lets it through: decided once, for every era and endpoint
        //    (dispatch.rs).
        let mut entry = self.audit.as_ref().and_then(|a| audit_entry(caller, msg, a.with_arguments()));
        let access = match self.access(caller) {
            Ok(access) => access,
            Err(e) => {
                self.account("gateway", msg.method().unwrap_or("-"), "forbidden", Instant::now(), entry.as_deref());
                return wire::error(&e, msg.id);
            }
        };
        let target = self.router.target(&view, &access, msg);
        // 4. A 2026-07-28 client: stateless, no session.
        if era == crate::mcp::era::Era::Modern {
            // Whose upstream session it uses: the user's; without authentication, the token's
            // (callers sending different tokens must never share one).
            let owner = caller.subject.clone().or_else(|| {
                let token = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())?;
                Some(format!("token {}", crate::oauth_client::pkce::s256(token)))
            });
            return self.modern_post(view, (access, entry, owner), (headers, &bytes), msg, target).await;
        }
        // 5. The session: `initialize` opens one, everything else names one.
        if msg.method() == Some("initialize") {
            return self.initialize(view, caller, headers, msg, peer);
        }
        let session = match self.session(&view, caller, headers) {
            Ok(s) => s,
            Err(e) => return wire::error(&e, msg.id),
        };
        // The caller's token as last sent, for servers that take it.
        session.upstream.set_bearer(headers.get(http::header::AUTHORIZATION));
        if let Some(e) = entry.as_mut() {
            e.session = Some(session.label().to_owned());
        }
        // 6. Carried out: as it came where the server takes it so, else as a message.
        let mut resp =
            self.carry(&session, (headers, version_header), &bytes, (&payload, msg), (target, &access, entry)).await;
        resp.headers_mut().insert(SESSION_ID, session.header.clone());
        resp
    }

    /// Opens a client session; the gateway answers `initialize` itself (servers are initialized
    /// by the gateway, with the params kept).
    fn initialize(
        &self,
        view: View,
        caller: &Caller,
        headers: &HeaderMap,
        msg: &crate::jsonrpc::Envelope<'_>,
        peer: std::net::SocketAddr,
    ) -> Response<Body> {
        let params = msg.params_value();
        let version = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("2025-03-26").to_owned();
        let created =
            match self.sessions.create(peer.ip(), &[], Client::new(view.clone(), caller.subject.clone(), params)) {
                Ok(created) => created,
                Err(e) => {
                    tracing::warn!(client = %peer.ip(), "session refused: {e}");
                    return wire::error(&e.into(), msg.id);
                }
            };
        for old in created.evicted {
            tracing::info!(session = old.label(), "session evicted: the session limit was reached");
            self.end(&old);
        }
        let session = created.session;
        session.upstream.set_bearer(headers.get(http::header::AUTHORIZATION));
        tracing::info!(session = session.label(), "session started");
        let mut resp = json_reply(&id_of(msg), self.router.initialize(&view, &version));
        resp.headers_mut().insert(SESSION_ID, session.header.clone());
        resp
    }

    /// Carries out the decision for a legacy client's message in its session: relayed to a
    /// remote server the client sees alone (`relay`), else a request to `request`, an answer to
    /// the gateway's question to its asker, a notification to the servers it concerns.
    /// `version` is the request's `MCP-Protocol-Version`; the form of the gateway's own answer
    /// is decided only where there is one (a relayed message is answered by its server).
    async fn carry(
        self: &Arc<Self>,
        session: &Arc<Session<Client>>,
        (headers, version): (&HeaderMap, Option<&HeaderValue>),
        bytes: &Bytes,
        (payload, msg): (&crate::jsonrpc::Payload<'_>, &crate::jsonrpc::Envelope<'_>),
        (target, access, entry): (Target, &Access, Option<Box<Entry>>),
    ) -> Response<Body> {
        match &target {
            Target::Refused(e) => {
                let id = id_of(msg).unwrap_or(Value::Null);
                self.account("gateway", msg.method().unwrap_or("-"), "refused", Instant::now(), entry.as_deref());
                return Form::with(headers, version).reply(session, &id, wire::answer(e));
            }
            Target::Lone(b) => {
                if let Some(resp) = self.relay(session, version, bytes, (payload, msg), (b, entry.as_deref())).await {
                    return resp;
                }
            }
            Target::Named { .. } | Target::Gateway | Target::Router => {}
        }
        let form = Form::with(headers, version);
        let id = id_of(msg);
        match (msg.method(), &id) {
            // The client's answer to a server's request.
            (None, Some(_)) => {
                let answer = serde_json::from_slice(bytes).unwrap_or(Value::Null);
                if !session.upstream.answer(answer) {
                    tracing::debug!(session = session.label(), "an answer to no request of ours");
                }
                accepted()
            }
            (Some(m), None) => {
                self.notification(session, m, msg.params_value());
                accepted()
            }
            (Some(m), Some(id)) => {
                self.request(session, m, (bytes, msg), id.clone(), form, (target, access, entry)).await
            }
            (None, None) => wire::error(&Error::new(Kind::BadRequest, "not a JSON-RPC message"), None),
        }
    }

    /// A message of any kind to a remote server the client sees alone, in the client's upstream
    /// session, and the server's HTTP answer relayed as it comes (`Proxy::forward`): its
    /// streams, its ids, its refusals, as the server sent them. `None`: the message path.
    async fn relay(
        self: &Arc<Self>,
        session: &Arc<Session<Client>>,
        version: Option<&HeaderValue>,
        bytes: &Bytes,
        (payload, msg): (&crate::jsonrpc::Payload<'_>, &crate::jsonrpc::Envelope<'_>),
        (b, entry): (&Arc<super::router::Backend>, Option<&Entry>),
    ) -> Option<Response<Body>> {
        let started = Instant::now();
        let (engine, to) = match b.link.passthrough(session, version.cloned()) {
            Passthrough::No => return None,
            Passthrough::Ready(destination) => destination,
            Passthrough::Opening(opening) => opening.await?,
        };
        let resp = engine.forward(to, bytes.clone(), payload).await;
        if let Some(m) = msg.method() {
            let ok = if resp.status().is_success() { "ok" } else { "error" };
            self.account(&b.cfg.name, m, ok, started, entry);
        }
        Some(resp)
    }

    /// A 2026-07-28 client's message: the standard headers must mirror the body; answered
    /// statelessly, as JSON or as a stream of what the call brings.
    async fn modern_post(
        self: &Arc<Self>,
        view: View,
        (access, entry, owner): (Access, Option<Box<Entry>>, Option<String>),
        (headers, bytes): (&HeaderMap, &Bytes),
        msg: &crate::jsonrpc::Envelope<'_>,
        target: Target,
    ) -> Response<Body> {
        if let Err(e) = crate::mcp::headers::check_modern(headers, msg) {
            return wire::error(&Error::new(Kind::HeaderMismatch, e.to_string()), msg.id);
        }
        let (Some(method), Some(id)) = (msg.method().map(str::to_owned), id_of(msg)) else {
            // Notifications and responses have nothing to go to in a stateless exchange.
            return accepted();
        };
        let started = Instant::now();
        if let Target::Refused(e) = &target {
            self.account("gateway", &method, "refused", started, entry.as_deref());
            return modern_json(&id, wire::answer(e));
        }
        let params = msg.params_value();
        let version = headers.get(crate::mcp::headers::PROTOCOL_VERSION).and_then(|v| v.to_str().ok());
        if let Err(e) = super::modern::check_request(&params, version) {
            self.account("gateway", &method, "refused", started, entry.as_deref());
            return wire::error(&e, msg.id);
        }
        let caps = params.pointer("/_meta/io.modelcontextprotocol~1clientCapabilities").cloned().unwrap_or_default();
        // A server that speaks this revision too, seen alone: the request goes as it came.
        let request = (method.as_str(), &id, &params);
        let who = (&view, &target, &access, owner.as_deref(), &caps);
        if let Some(resp) = self.modern_relay(who, (headers, bytes), request, (started, entry.as_deref())).await {
            return resp;
        }
        if method == "subscriptions/listen" {
            // A stream of the gateway's own, whoever the view's servers are.
            self.account("gateway", &method, "ok", started, entry.as_deref());
            if !accepts_sse(headers) {
                return wire::error(
                    &Error::new(
                        Kind::NotAcceptable,
                        "subscriptions/listen answers with a stream: accept text/event-stream",
                    ),
                    msg.id,
                );
            }
            return self.listen((view, &access, owner.as_deref()), &caps, id, &params).await;
        }
        let server = target.server().map_or_else(|| "gateway".to_owned(), |(b, _)| b.cfg.name.clone());
        if !accepts_sse(headers) {
            // A client that takes JSON only gets the answer alone.
            let who = (&access, owner.as_deref(), headers.get(http::header::AUTHORIZATION));
            let reply = self.modern(view, who, &method, params, None, target).await;
            self.account(&server, &method, outcome(&reply.answer), started, entry.as_deref());
            return modern_json(&id, reply.answer);
        }
        // Streamed: progress and logs as they come, then the answer, all through one channel
        // (one writer keeps the order).
        let (values, mut rx) = super::queue::bounded::<Value>(super::queue::CALL);
        let gateway = self.clone();
        let bearer = headers.get(http::header::AUTHORIZATION).cloned();
        let answer_id = id.clone();
        tokio::spawn(async move {
            let who = (&access, owner.as_deref(), bearer.as_ref());
            let reply = gateway.modern(view, who, &method, params, Some(&values), target).await;
            gateway.account(&server, &method, outcome(&reply.answer), started, entry.as_deref());
            for e in reply.events {
                values.push(e);
            }
            values.push(with_id(reply.answer, &answer_id));
        });
        // An answer that comes before anything else goes as JSON, with the status it calls for
        // (a method not here is 404, a capability not declared 400); a stream starts only when
        // there is something to send before the answer.
        let Some(first) = rx.recv().await else {
            return wire::error(&Error::new(Kind::Internal, "a modern call ended without an answer"), msg.id);
        };
        if first.get("method").is_none() {
            return modern_json(&id, first);
        }
        let (tx, body_rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
        tokio::spawn(async move {
            let mut next = Some(first);
            while let Some(v) = next.take() {
                if tx.send(sse::encode(v.to_string().as_bytes(), None)).await.is_err() {
                    break;
                }
                next = rx.recv().await;
            }
        });
        let mut resp = Response::new(http_body_util::BodyExt::boxed_unsync(Channel::new(body_rx)));
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        resp.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }

    fn notification(&self, session: &Arc<Session<Client>>, method: &str, params: Value) {
        match method {
            "notifications/initialized" => {}
            // Passed to every server the client sees (each keeps its own state for the client).
            "notifications/roots/list_changed" => {
                for b in self.router.visible(&session.upstream.view) {
                    b.link.notify(session, method, params.clone());
                }
            }
            // To the server running the call, under the id it knows the call by.
            "notifications/cancelled" => {
                let Some(request) = params.get("requestId") else { return };
                // A call still on its way to its server is cancelled once it is there (`track`).
                if let Some((backend, upstream_id)) = session.upstream.cancel(&request.to_string()) {
                    cancel(&self.router, session, &backend, upstream_id, params.clone());
                }
            }
            other => tracing::debug!(session = session.label(), "notification {other} not forwarded"),
        }
    }

    /// A request: answered here (JSON, or one SSE event when the client takes streams, as the
    /// servers behind do), or by a server — as it came, when the dispatch step decided which
    /// (the transport swaps what it must) — over an SSE stream.
    async fn request(
        self: &Arc<Self>,
        session: &Arc<Session<Client>>,
        method: &str,
        (bytes, msg): (&Bytes, &crate::jsonrpc::Envelope<'_>),
        id: Value,
        form: Form,
        (target, access, entry): (Target, &Access, Option<Box<Entry>>),
    ) -> Response<Body> {
        // From before the wait for a (re)starting server: the client waits that long too.
        let started = Instant::now();
        let reply = |answer: Value| form.reply(session, &id, answer);
        if method == "ping" {
            return reply(json!({"result": {}}));
        }
        if LISTINGS.iter().any(|(m, _)| *m == method) {
            let answer = self.router.merged(session, access, method).await;
            // The gateway's own answer: counted, not a request that reached a server.
            self.account("gateway", method, outcome(&answer), started, None);
            if let (View::One(_), Some(resp)) = (&session.upstream.view, refused(&answer, &id)) {
                return resp;
            }
            return reply(answer);
        }
        if method == "logging/setLevel" {
            return reply(self.router.set_level(session, msg.params_value()).await);
        }
        // Tracked from before it is sent: a cancellation may overtake the server's id for it.
        let key = id.to_string();
        session.upstream.sending(&key);
        let routed = match (target.not_routed(method), target.server()) {
            (Some(e), _) => Routed::Answer(wire::answer(&e)),
            (None, Some((b, rename))) => {
                let out = Outgoing::AsItCame { method, body: bytes, msg, rename };
                self.router.route(session, Some(b), out).await
            }
            (None, None) => {
                let out = Outgoing::Message { method, params: msg.params_value() };
                self.router.route(session, None, out).await
            }
        };
        let (backend, mut call, timeout) = match routed {
            Routed::Call { backend, call, timeout } => (backend, call, timeout),
            Routed::Answer(answer) => {
                session.upstream.untrack(&key);
                self.account("gateway", method, outcome(&answer), started, entry.as_deref());
                if let (View::One(_), Some(resp)) = (&session.upstream.view, refused(&answer, &id)) {
                    // One server's own endpoint: its refusal as it sent it.
                    return resp;
                }
                return reply(answer);
            }
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let in_flight = InFlight::track(&self.router, session, (&id, key), &backend, call.upstream_id.clone());
        // Most calls are answered before the server sends anything else: then one body, written
        // at once, with no task and no channel.
        let answer = match first(&mut call.events, &mut call.response, &backend, (deadline, timeout)).await {
            First::Answer(Reply::Line(line)) => {
                // As the server wrote it, the client's id spliced in.
                self.account(&backend, method, if line.error { "error" } else { "ok" }, started, entry.as_deref());
                drop(in_flight);
                let client_id = msg.id.map_or("null", |raw| raw.get());
                return form
                    .reply_raw(session, crate::jsonrpc::splice_line(&line.bytes, line.id, client_id.as_bytes()));
            }
            First::Answer(Reply::Value(answer)) | First::Failed(answer) => answer,
            First::Event(ev) => {
                let follow = Follow { backend, call, deadline: (deadline, timeout), first: ev, in_flight, entry };
                return self.stream(session, method, follow, form, started).await;
            }
        };
        self.account(&backend, method, outcome(&answer), started, entry.as_deref());
        drop(in_flight);
        if let (View::One(_), Some(resp)) = (&session.upstream.view, refused(&answer, &id)) {
            // One server's own endpoint: its refusal as it sent it.
            return resp;
        }
        reply(answer)
    }

    /// A call whose server sent something before its answer: to a client that takes streams,
    /// an SSE stream of it all; to one that takes JSON only, the answer alone (a server's
    /// question goes to its GET stream).
    async fn stream(
        self: &Arc<Self>,
        session: &Arc<Session<Client>>,
        method: &str,
        f: Follow,
        form: Form,
        started: Instant,
    ) -> Response<Body> {
        let Follow { backend, call, deadline, first, in_flight, entry } = f;
        let Form::Sse { prime } = form else {
            let answer = follow(session, &backend, call, deadline, Some(first), None).await;
            self.account(&backend, method, if answer.is_error() { "error" } else { "ok" }, started, entry.as_deref());
            let id = in_flight.id.clone();
            drop(in_flight);
            return json_body(written(answer, &id));
        };
        // Resumable: a client that loses the stream midway gets the rest with `Last-Event-ID`.
        let log = session.upstream.streams.open(prime);
        let resp = log.clone().response(session.upstream.streams.clone());
        let session = session.clone();
        let gateway = self.clone();
        let method = method.to_owned();
        tokio::spawn(async move {
            let answer = follow(&session, &backend, call, deadline, Some(first), Some(&log)).await;
            let outcome = if answer.is_error() { "error" } else { "ok" };
            gateway.account(&backend, &method, outcome, started, entry.as_deref());
            let reply = written(answer, &in_flight.id);
            drop(in_flight);
            // The response is never dropped: it waits for room like everything before it.
            log.send(&reply).await;
            log.finish();
        });
        resp
    }

    /// The session's stream of what servers send on their own; with `Last-Event-ID`, the rest
    /// of a stream the client lost midway.
    async fn get(&self, view: &View, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
        let session = match self.session(view, caller, headers) {
            Ok(s) => s,
            Err(e) => return wire::error(&e, None),
        };
        if !accepts_sse(headers) {
            return wire::error(&Error::new(Kind::NotAcceptable, "a GET takes text/event-stream"), None);
        }
        if let Some(last) = headers.get(LAST_EVENT_ID)
            && let Some(mut resp) = self.resume(view, &session, headers, last).await
        {
            resp.headers_mut().insert(SESSION_ID, session.header.clone());
            return resp;
        }
        let Some(mut feed) = session.upstream.take_stream(STREAM_HANDOVER).await else {
            return wire::error(&Error::new(Kind::Conflict, "this session's event stream is open already"), None);
        };
        let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
        let back = session.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    m = feed.recv() => match m {
                        Some(m) => m,
                        None => break,
                    },
                    () = tx.closed() => break,
                    () = back.upstream.superseded() => break,
                    () = shutdown.cancelled() => break,
                };
                // A slow reader holds this send; meanwhile the feed gives way as `queue` says.
                tokio::select! {
                    r = tx.send(sse::encode(m.to_string().as_bytes(), None)) => if r.is_err() { break },
                    () = back.upstream.superseded() => break,
                    () = shutdown.cancelled() => break,
                }
            }
            back.upstream.return_stream(feed);
        });
        let mut resp = Response::new(http_body_util::BodyExt::boxed_unsync(Channel::new(rx)));
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        resp.headers_mut().insert(SESSION_ID, session.header.clone());
        resp
    }

    /// A stream resumed by its `Last-Event-ID`: one the gateway wrote (its ids are
    /// `<stream>-<seq>`), else, for a client that sees one remote server as it is, the server's
    /// own (relayed with the server's ids). `None`: unknown here; a new stream serves it.
    async fn resume(
        &self,
        view: &View,
        session: &Arc<Session<Client>>,
        headers: &HeaderMap,
        last: &HeaderValue,
    ) -> Option<Response<Body>> {
        if let Some(log) = last.to_str().ok().and_then(|l| session.upstream.streams.resume(l)) {
            tracing::debug!(session = session.label(), "stream resumed after event {last:?}");
            return Some(log.response(session.upstream.streams.clone()));
        }
        let b = self.router.alone(view)?;
        let version = headers.get(crate::mcp::headers::PROTOCOL_VERSION).cloned();
        let (engine, to) = match b.link.passthrough(session, version) {
            Passthrough::No => return None,
            Passthrough::Ready(destination) => destination,
            Passthrough::Opening(opening) => opening.await?,
        };
        Some(engine.listen(&to, Some(last.clone())).await)
    }

    fn delete(&self, view: &View, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
        match self.session(view, caller, headers) {
            Ok(s) => {
                self.end(&s);
                tracing::info!(session = s.label(), "session ended by the client");
                status(StatusCode::OK)
            }
            Err(e) => wire::error(&e, None),
        }
    }

    /// Ends a session here and at every server that keeps one for it.
    pub fn end(&self, s: &Session<Client>) {
        self.sessions.remove(s.id());
        self.router.forget_session(s.id(), &s.upstream.subscriptions);
        for b in self.router.visible(&View::All) {
            b.link.forget(s);
        }
    }

    /// `/healthz` (always 200: the process serves) and `/readyz`: each server's state, and 503
    /// unless enough servers are ready (`mcpgate.ready`: any, or all).
    fn health(&self, ready: bool) -> Response<Body> {
        let mut servers = serde_json::Map::new();
        let (mut up, mut total) = (0, 0);
        for b in self.router.visible(&View::All) {
            let h = b.link.health();
            total += 1;
            up += usize::from(h == Health::Ready);
            let mut state = match h {
                Health::Ready => json!({"status": "ready"}),
                Health::Starting => json!({"status": "starting"}),
                // Never came up since the last start (not found, crashed at once), or went down.
                Health::Down(why) => {
                    json!({"status": if b.link.start_failed() { "failed" } else { "down" }, "reason": why})
                }
            };
            if let Some(wait) = b.link.retry_in() {
                state["retryInMs"] = json!(wait.as_millis() as u64);
            }
            servers.insert(b.cfg.name.clone(), state);
        }
        let enough = match self.router.config().gateway.ready {
            crate::config::Ready::Any => up > 0 || total == 0,
            crate::config::Ready::All => up == total,
        };
        let state = if up == total { "ok" } else { "degraded" };
        let code = if ready && !enough { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
        let mut resp = text(code, json!({"status": state, "servers": servers}).to_string() + "\n");
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

/// What comes first of a call.
enum First<T> {
    /// The server sent something before its answer (queued ahead of it, so looked at first).
    Event(Event),
    Answer(T),
    /// The gateway's answer: the server dropped the call, or the deadline passed.
    Failed(Value),
}

async fn first<T>(
    events: &mut super::backend::EventFeed,
    response: &mut tokio::sync::oneshot::Receiver<T>,
    backend: &str,
    (deadline, timeout): (tokio::time::Instant, std::time::Duration),
) -> First<T> {
    tokio::select! {
        biased;
        Some(ev) = events.recv() => First::Event(ev),
        r = response => r.map_or_else(|_| First::Failed(dropped(backend)), First::Answer),
        () = tokio::time::sleep_until(deadline) => First::Failed(timed_out(backend, timeout)),
    }
}

/// A call to follow past its first event.
struct Follow {
    backend: String,
    call: super::backend::Call,
    deadline: (tokio::time::Instant, std::time::Duration),
    first: Event,
    in_flight: InFlight,
    entry: Option<Box<Entry>>,
}

/// A call the client may cancel by its id: forgotten however its handler ends, also when a
/// client that went away drops it midway.
struct InFlight {
    session: Arc<Session<Client>>,
    id: Value,
    /// The id as the session's table of calls knows it (`id` as JSON text).
    key: String,
}

impl InFlight {
    fn track(
        router: &super::router::Router,
        session: &Arc<Session<Client>>,
        (id, key): (&Value, String),
        backend: &str,
        upstream_id: Value,
    ) -> Self {
        if session.upstream.track(&key, backend, upstream_id.clone()) {
            let params = json!({"requestId": id, "reason": "cancelled while the call was being sent"});
            cancel(router, session, backend, upstream_id, params);
        }
        InFlight { session: session.clone(), id: id.clone(), key }
    }
}

/// Passes a client's `notifications/cancelled` to the server running the call, under the id
/// the server knows it by.
fn cancel(
    router: &super::router::Router,
    session: &Arc<Session<Client>>,
    backend: &str,
    upstream_id: Value,
    mut params: Value,
) {
    if let Some(b) = router.backend(backend) {
        params["requestId"] = upstream_id;
        b.link.notify(session, "notifications/cancelled", params);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.session.upstream.untrack(&self.key);
    }
}

/// Follows a call to its answer: its notifications and the server's questions to the client go
/// to `out` (the call's SSE stream) as they come; without a stream, questions go to the client's
/// GET stream and notifications are dropped.
async fn follow(
    session: &Arc<Session<Client>>,
    backend: &str,
    call: super::backend::Call,
    (deadline, timeout): (tokio::time::Instant, std::time::Duration),
    first: Option<Event>,
    out: Option<&super::stream::Log>,
) -> Reply {
    let mut events = call.events;
    let response = call.response;
    tokio::pin!(response);
    let deadline = tokio::time::sleep_until(deadline);
    tokio::pin!(deadline);
    // A client that reads its stream slowly holds `send`: the call's events queue up behind it,
    // bounded as `queue` says.
    let send = async |m: Value| {
        if let Some(log) = out {
            log.send(m.to_string().as_bytes()).await;
        }
    };
    let deliver = async |ev: Event| match ev {
        Event::Notification(m) => send(m).await,
        Event::Request { method, params, reply } => {
            // A client that cannot answer it: the server was told so already.
            let Some(m) = session.upstream.request(&method, params, reply) else { return };
            match out {
                Some(_) => send(m).await,
                None => session.upstream.send(m),
            }
        }
    };
    if let Some(ev) = first {
        deliver(ev).await;
    }
    loop {
        tokio::select! {
            biased;
            ev = events.recv() => match ev {
                Some(ev) => deliver(ev).await,
                None => {
                    // The events are done; the response may still come.
                    let r = tokio::select! {
                        r = &mut response => r.ok(),
                        () = &mut deadline => None,
                    };
                    return r.unwrap_or_else(|| Reply::Value(timed_out(backend, timeout)));
                }
            },
            r = &mut response => {
                // What the server sent before its response comes first.
                while let Some(ev) = events.try_recv() {
                    if let Event::Notification(m) = ev {
                        send(m).await;
                    }
                }
                return r.unwrap_or_else(|_| Reply::Value(dropped(backend)));
            }
            () = &mut deadline => return Reply::Value(timed_out(backend, timeout)),
        }
    }
}

fn dropped(backend: &str) -> Value {
    wire::answer(&Error::dropped(backend))
}

fn timed_out(backend: &str, timeout: std::time::Duration) -> Value {
    wire::answer(&Error::late(backend, timeout))
}

/// A call's answer as the client gets it: the server's line with the client's id spliced in, or
/// the value with it.
fn written(reply: Reply, id: &Value) -> Vec<u8> {
    match reply {
        Reply::Line(l) => crate::jsonrpc::splice_line(&l.bytes, l.id, id.to_string().as_bytes()),
        Reply::Value(v) => with_id(v, id).to_string().into_bytes(),
    }
}

fn outcome(answer: &Value) -> &'static str {
    if answer.get("error").is_some() { "error" } else { "ok" }
}

fn with_id(mut answer: Value, id: &Value) -> Value {
    let mut out = json!({"jsonrpc": "2.0", "id": id});
    for k in ["result", "error"] {
        if let Some(v) = answer.get_mut(k) {
            out[k] = v.take();
        }
    }
    if out.get("result").is_none() && out.get("error").is_none() {
        let e = Error::new(Kind::UpstreamProtocol, "the server's answer had neither result nor error");
        out["error"] = wire::answer(&e)["error"].take();
    }
    out
}

/// A message's id, as a value.
fn id_of(msg: &crate::jsonrpc::Envelope<'_>) -> Option<Value> {
    msg.id.map(|raw| serde_json::from_str(raw.get()).unwrap_or(Value::Null))
}

/// A 2026-07-28 answer as JSON, with the HTTP status its error calls for in that revision.
pub(super) fn modern_json(id: &Value, answer: Value) -> Response<Body> {
    let status = wire::modern_status(&answer);
    let mut resp = json_reply(&Some(id.clone()), answer);
    *resp.status_mut() = status;
    resp
}

fn json_reply(id: &Option<Value>, answer: Value) -> Response<Body> {
    let msg = with_id(answer, id.as_ref().unwrap_or(&Value::Null));
    let mut resp = Response::new(body::full(msg.to_string()));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// An answer carrying an upstream's 401/403 (see `Error::refused`) as that HTTP response:
/// the status and `WWW-Authenticate` as the server sent them, the JSON-RPC error as the body.
fn refused(answer: &Value, id: &Value) -> Option<Response<Body>> {
    let data = answer.pointer("/error/data")?;
    let status = StatusCode::from_u16(u16::try_from(data.get("status")?.as_u64()?).ok()?).ok()?;
    let mut resp = json_reply(&Some(id.clone()), answer.clone());
    *resp.status_mut() = status;
    if let Some(v) = data.get("wwwAuthenticate").and_then(Value::as_str).and_then(|v| HeaderValue::try_from(v).ok()) {
        resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    Some(resp)
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    headers.get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"))
}

/// How a client takes a request's answer: JSON, or an event stream (`Accept`).
#[derive(Clone, Copy)]
enum Form {
    Json,
    /// `prime`: the stream opens with an event of an id and no data (SEP-1699), for clients of
    /// 2025-11-25 or later (earlier SDKs take an event without data for a broken message, and
    /// the SDK servers send it to those clients only, too).
    Sse {
        prime: bool,
    },
}

impl Form {
    /// From the request's `Accept` and its `MCP-Protocol-Version` (`version`).
    fn with(headers: &HeaderMap, version: Option<&HeaderValue>) -> Form {
        if !accepts_sse(headers) {
            return Form::Json;
        }
        Form::Sse { prime: version.and_then(|v| v.to_str().ok()).is_some_and(|v| v >= "2025-11-25") }
    }

    /// An answer of the gateway's, with the client's id.
    fn reply(self, session: &Arc<Session<Client>>, id: &Value, answer: Value) -> Response<Body> {
        match self {
            Form::Json => json_reply(&Some(id.clone()), answer),
            Form::Sse { .. } => self.reply_raw(session, with_id(answer, id).to_string().into_bytes()),
        }
    }

    /// A message as it will be sent (a server's line with the client's id spliced in).
    fn reply_raw(self, session: &Arc<Session<Client>>, msg: Vec<u8>) -> Response<Body> {
        match self {
            Form::Json => json_body(msg),
            Form::Sse { prime: false } => sse_body(sse::encode(&msg, None)),
            // A stream of its own, with ids, so that a client cut off while it is written can
            // resume it.
            Form::Sse { prime: true } => {
                let log = session.upstream.streams.open(true);
                log.push(&msg);
                log.finish();
                log.response(session.upstream.streams.clone())
            }
        }
    }
}

/// One SSE event as the whole body.
fn sse_body(event: Bytes) -> Response<Body> {
    let mut resp = Response::new(body::full(event));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn json_body(msg: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(body::full(msg));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn accepted() -> Response<Body> {
    status(StatusCode::ACCEPTED)
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = code;
    r
}

fn not_allowed(method: &Method, allow: &'static str) -> Response<Body> {
    let mut r = wire::error(&Error::new(Kind::MethodNotAllowed, format!("{method} is not served here")), None);
    r.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn text(code: StatusCode, s: String) -> Response<Body> {
    let mut r = Response::new(body::full(s));
    *r.status_mut() = code;
    r
}

/// A response body fed by a channel (an SSE stream the gateway writes).
pub(super) struct Channel {
    rx: mpsc::Receiver<Bytes>,
}

impl Channel {
    pub(super) fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        Channel { rx }
    }
}

/// SSE events written ahead of a client that reads slowly; past this, the writer waits.
const STREAM_BUFFER: usize = 16;

/// How long a new GET stream waits for the open one to hand over its feed (409 after that).
const STREAM_HANDOVER: std::time::Duration = std::time::Duration::from_secs(2);

impl http_body::Body for Channel {
    type Data = Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, body::BoxError>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(http_body::Frame::data(b)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
