//! The layers every request to an MCP endpoint passes, in order, written once for `connect` and
//! `serve` (`handle`). What differs between the two — which Host/Origin rules are in force, which
//! paths exist, what a message then becomes — is the `Endpoint` each implements.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response};

use super::body::{self, Body, ReadError, RequestBody};
use super::guard::{self, Refusal};
use super::{negotiate, wire};
use crate::authn::Caller;
use crate::error::{Error, Kind};

/// An MCP endpoint (or several) behind the layers.
pub trait Endpoint: Send + Sync + 'static {
    /// Which MCP endpoint a path names (`connect` has one; `serve` the merged one and one per
    /// server).
    type View: Send;

    /// The Host/Origin rules in force.
    fn check_guard(&self, parts: &Parts) -> Result<(), Refusal>;

    /// The MCP endpoint `parts` names, or the whole answer for any other path (a probe, a
    /// 404).
    fn route(self: &Arc<Self>, parts: &Parts, peer: SocketAddr) -> impl Future<Output = Route<Self::View>> + Send;

    /// Who calls: the caller the request's credential names, or the refusal (401 with the
    /// challenge, 403). Without authentication configured, nobody in particular.
    fn authenticate(&self, _parts: &Parts, _view: &Self::View) -> impl Future<Output = Result<Caller, Error>> + Send {
        std::future::ready(Ok(Caller::default()))
    }

    /// The largest request body read.
    fn max_body(&self) -> usize;

    /// A POSTed message, read whole, from `caller`.
    fn post(
        self: &Arc<Self>,
        view: Self::View,
        caller: Caller,
        headers: &HeaderMap,
        body: Bytes,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// For the request's debug line: where a message goes (a server's name), when known before it
    /// is sent. Called only with debug logging on.
    fn destination(&self, _view: &Self::View, _msg: &crate::jsonrpc::Envelope<'_>) -> Option<String> {
        None
    }

    /// A GET: a session's event stream, or the rest of one.
    fn get(&self, view: Self::View, caller: Caller, headers: &HeaderMap)
    -> impl Future<Output = Response<Body>> + Send;

    /// A DELETE: the session ends.
    fn delete(
        &self,
        view: Self::View,
        caller: Caller,
        headers: &HeaderMap,
    ) -> impl Future<Output = Response<Body>> + Send;
}

pub enum Route<V> {
    Mcp(V),
    Answered(Response<Body>),
    /// A page or form of the endpoint's own (the authorization server's): answered from the
    /// request's body, read here whole within `max_body`. No MCP layer applies to it.
    Own(Own),
}

pub type Answer = Box<dyn FnOnce(Bytes) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send>;

pub struct Own {
    pub max_body: usize,
    pub answer: Answer,
}

/// Serves one HTTP request.
pub async fn handle<E: Endpoint>(endpoint: Arc<E>, req: Request<RequestBody>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    // 1. Host and Origin (DNS rebinding, cross-site browsers), for every route, before anything
    //    else is looked at.
    if let Err(refusal) = endpoint.check_guard(&parts) {
        tracing::warn!("refused: {refusal}");
        return wire::error(&Error::new(Kind::Forbidden, refusal.to_string()), None);
    }
    // 2. Route: an MCP endpoint, or what the endpoint answers itself (probes, metrics, 404, the
    //    authorization server's endpoints).
    let view = match endpoint.route(&parts, peer).await {
        Route::Mcp(view) => view,
        Route::Answered(resp) => return resp,
        Route::Own(own) => {
            return match read(body, own.max_body).await {
                Ok(bytes) => (own.answer)(bytes).await,
                Err(e) => wire::error(&e, None),
            };
        }
    };
    // 3. CORS preflight, answered here (a browser sends no credential with it).
    if parts.method == Method::OPTIONS {
        return guard::preflight(&parts.headers);
    }
    // 4. Who calls: the credential checked, or refused with the challenge that says where to
    //    get one — before the body is read or anything else looks at the request.
    let caller = match endpoint.authenticate(&parts, &view).await {
        Ok(caller) => caller,
        Err(e) => {
            let mut resp = wire::error(&e, None);
            guard::cors(&parts.headers, resp.headers_mut());
            return resp;
        }
    };
    // 5. The MCP methods. A POST says it carries JSON and takes an answer we give, and its body
    //    is read whole within the limit (413) before anything looks at it.
    let mut noted = None;
    let mut resp = match parts.method {
        Method::POST => match negotiate::check_post(&parts.headers) {
            Ok(()) => match read(body, endpoint.max_body()).await {
                Ok(bytes) => {
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        noted = note(&*endpoint, &view, &bytes);
                    }
                    endpoint.post(view, caller, &parts.headers, bytes, peer).await
                }
                Err(e) => wire::error(&e, None),
            },
            Err(e) => wire::error(&e, None),
        },
        Method::GET => endpoint.get(view, caller, &parts.headers).await,
        Method::DELETE => endpoint.delete(view, caller, &parts.headers).await,
        _ => wire::error(&Error::new(Kind::MethodNotAllowed, format!("{} is not an MCP method", parts.method)), None),
    };
    // 6. CORS response headers for browser clients.
    guard::cors(&parts.headers, resp.headers_mut());
    // One line per request: what, where, to whom, and how it went (never a header's value).
    let (rpc, server) = noted.unzip();
    tracing::debug!(
        method = %parts.method,
        path = ?parts.uri.path(),
        rpc = rpc.as_deref().unwrap_or("-"),
        server = server.flatten().as_deref().unwrap_or("-"),
        status = resp.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// A POSTed message's JSON-RPC method (or `response`, or `batch`) and where it goes, for the
/// debug line.
fn note<E: Endpoint>(endpoint: &E, view: &E::View, bytes: &[u8]) -> Option<(String, Option<String>)> {
    let payload = crate::jsonrpc::Payload::parse(bytes).ok()?;
    let Some(msg) = payload.single() else { return Some(("batch".to_owned(), None)) };
    let rpc = msg.method().unwrap_or("response").chars().take(64).collect();
    Some((rpc, endpoint.destination(view, msg)))
}

/// The request body, whole, or why not.
async fn read(body: RequestBody, max: usize) -> Result<Bytes, Error> {
    body::read_limited(body, max).await.map_err(|e| match e {
        ReadError::TooLarge => Error::new(Kind::PayloadTooLarge, format!("the request body exceeds {max} bytes")),
        ReadError::Broken(e) => Error::new(Kind::BadRequest, format!("reading the request body failed: {e}")),
    })
}
