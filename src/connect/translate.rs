//! A client of an era the upstream does not speak — a 2026-07-28 client in front of a 2025
//! server, or a 2025 client in front of a 2026-07-28-only one — is handed to the gateway's
//! translation (`Eras`, which the command line supplies: serve/translator.rs), so that this
//! module needs nothing of `serve`. A client of an era the upstream speaks is relayed as it came
//! (a server that speaks both is never translated for).
//!
//! That the upstream does not speak an era is learnt once, on evidence (`era::detect`): a legacy
//! `initialize` — sent in a form a 2026-07-28-only server answers with the revisions it speaks
//! (`modern::initialize_probe`) — refused with a modern error or answered with a result of that
//! revision: the client's `initialize` then goes to the translation (the `connect` and `stdio`
//! clients alike); a 2026-07-28 request refused (400, 404, 405) without a modern error, followed by
//! a `server/discover` of the engine's own that is refused too. A legacy result makes later
//! `initialize`s go as they came. Until then — and for a refusal of the credential's, a server
//! that cannot be reached — every other request goes to the engine as it came.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use serde_json::json;

use http_body_util::BodyExt;

use super::{Forward, Proxy};
use crate::error::Kind;
use crate::http::body::Body;
use crate::http::wire;
use crate::jsonrpc::Payload;
use crate::mcp::era::{self, Detected, Era};
use crate::mcp::headers::PROTOCOL_VERSION;
use crate::transport::answer;

type Answer<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

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

/// What an `Eras` is started in front of.
pub struct Upstream {
    /// The engine that reaches it.
    pub proxy: Arc<Proxy>,
    /// How long a client's session at the translation may stay idle.
    pub session_ttl: Duration,
    /// The 2026-07-28 revision it was found to speak only, when it was (it need not be asked
    /// again).
    pub modern_only: Option<&'static str>,
}

/// Starts an `Eras` in front of an upstream, or says why it cannot.
pub type Start = dyn Fn(Upstream) -> Result<Box<dyn Eras>, String> + Send + Sync;

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
    /// How long a client's session at the translation may stay idle.
    session_ttl: Duration,
    /// The revision the upstream was found to speak only (a legacy client's refusal said it).
    modern_only: OnceLock<&'static str>,
    /// The eras the upstream was found not to speak (`LEGACY`, `MODERN` bits): read on every
    /// request, an atomic.
    refused: AtomicU8,
    /// One probe at a time.
    probing: tokio::sync::Mutex<()>,
    /// A legacy `initialize` was answered as a legacy server answers: later ones go as they came.
    speaks_legacy: std::sync::atomic::AtomicBool,
    eras: OnceLock<Option<Box<dyn Eras>>>,
}

impl Translate {
    pub fn new(proxy: Arc<Proxy>, make: Translation, session_ttl: Duration) -> Translate {
        Translate {
            proxy,
            make,
            session_ttl,
            modern_only: OnceLock::new(),
            refused: AtomicU8::new(0),
            probing: tokio::sync::Mutex::new(()),
            speaks_legacy: std::sync::atomic::AtomicBool::new(false),
            eras: OnceLock::new(),
        }
    }

    fn bit(era: Era) -> u8 {
        if era == Era::Modern { MODERN } else { LEGACY }
    }

    /// Whether the upstream was found not to speak `era`.
    fn refuses(&self, era: Era) -> bool {
        self.refused.load(Ordering::Acquire) & Self::bit(era) != 0
    }

    fn found_refusing(&self, era: Era) {
        if self.refused.fetch_or(Self::bit(era), Ordering::AcqRel) & Self::bit(era) == 0 {
            tracing::info!(upstream = %self.proxy.upstream.display, "the upstream does not speak the {era:?} era: translating");
        }
    }

    /// A POST on the main endpoint: to the engine, or to the translation when its client
    /// speaks an era the upstream does not.
    pub async fn post(&self, headers: &HeaderMap, body: Bytes) -> Response<Body> {
        // A revision unknown here is routed as a 2026-07-28 request would be: relayed where the
        // upstream speaks 2026-07-28 (it names the revisions it speaks), answered by the
        // translation (-32022 with the request's id) in front of a 2025-only upstream, which
        // would refuse it in its own terms (no session, id null).
        let asks = era::era_of(headers.get(PROTOCOL_VERSION).and_then(|v| v.to_str().ok())).unwrap_or(Era::Modern);
        if self.refuses(asks)
            && let Some(eras) = self.eras()
        {
            return eras.post(headers, body).await;
        }
        let first = match asks {
            Era::Modern => true,
            Era::Legacy => {
                !self.speaks_legacy.load(Ordering::Acquire) && Payload::parse(&body).is_ok_and(|p| p.is_initialize())
            }
        };
        if !first || self.refused.load(Ordering::Acquire) != 0 {
            return self.relay(headers, body).await;
        }
        Box::pin(self.first(asks, headers, body)).await
    }

    /// A client's first exchange of its era while the upstream has refused neither: relayed,
    /// and a refusal read for what it says — for a legacy `initialize`, its answer too (a server
    /// of 2026-07-28 only may answer it with a result of that revision).
    async fn first(&self, asks: Era, headers: &HeaderMap, body: Bytes) -> Response<Body> {
        let resp = match asks {
            Era::Legacy => self.initialize(headers, body.clone()).await,
            Era::Modern => self.relay(headers, body.clone()).await,
        };
        let status = resp.status();
        let answered = asks == Era::Legacy && status.is_success();
        let refused = matches!(status.as_u16(), 400 | 404 | 405) && !answer::is_event_stream(resp.headers());
        if !answered && !refused {
            return resp;
        }
        let engine_session = resp.headers().get(crate::mcp::headers::SESSION_ID).cloned().filter(|_| answered);
        let Some(read) = Read::answer(resp, if answered { answer::MAX_JSON } else { REFUSAL }).await else {
            self.end_engine_session(engine_session).await;
            let e = crate::error::Error::new(Kind::UpstreamProtocol, "the upstream's answer could not be read");
            return wire::error(&e, Payload::parse(&body).ok().and_then(|p| p.error_id()));
        };
        let modern = match era::detect(status.as_u16(), &read.response) {
            Detected::Modern(version) => Some(version),
            _ => None,
        };
        if answered && modern.is_none() {
            // Evidence of the legacy era only from a legacy result (a 2xx saying nothing, a
            // proxy's page, teaches nothing).
            if era::legacy_result(&read.response) {
                self.speaks_legacy.store(true, Ordering::Release);
            }
            return read.given_back();
        }
        let refuses = match asks {
            // It speaks only 2026-07-28, it says.
            Era::Legacy => {
                if let Some(version) = modern {
                    let _ = self.modern_only.set(version);
                }
                modern.is_some()
            }
            // No modern error: a legacy server's refusal, or the request's own fault — asked.
            Era::Modern => modern.is_none() && self.discover_refused(headers).await,
        };
        if refuses {
            self.found_refusing(asks);
            if let Some(eras) = self.eras() {
                // The engine's session for a server that has none is of no use.
                self.end_engine_session(engine_session).await;
                return eras.post(headers, body).await;
            }
        }
        read.given_back()
    }

    async fn end_engine_session(&self, session: Option<HeaderValue>) {
        if session.is_some() {
            self.proxy.end(&Forward { session, ..Default::default() }).await;
        }
    }

    /// A legacy client's `initialize` while the upstream's era is not known, sent as the stdio
    /// bridge sends one (`modern::initialize_probe`, with `Mcp-Method`): a 2026-07-28-only server
    /// reads it as a request of a revision it does not speak and says which it does. A 400 that
    /// says nothing of the era is followed by the `initialize` as it came (a legacy server that
    /// checks the header against the revisions it knows refuses a client newer than itself).
    async fn initialize(&self, headers: &HeaderMap, body: Bytes) -> Response<Body> {
        let Some((probe, asked)) = crate::mcp::modern::initialize_probe(&body) else {
            return self.relay(headers, body).await;
        };
        let mut h = headers.clone();
        let (Ok(version), method) = (HeaderValue::try_from(asked), HeaderValue::from_static("initialize")) else {
            return self.relay(headers, body).await;
        };
        h.insert(PROTOCOL_VERSION, version);
        h.insert(crate::mcp::headers::METHOD, method);
        let resp = self.relay(&h, Bytes::from(probe)).await;
        if resp.status() != http::StatusCode::BAD_REQUEST || answer::is_event_stream(resp.headers()) {
            return resp;
        }
        let (parts, refusal) = resp.into_parts();
        let Some(read) = whole(refusal, REFUSAL).await else { return self.relay(headers, body).await };
        if !matches!(era::detect(parts.status.as_u16(), &read), Detected::Modern(_)) {
            tracing::debug!("initialize with MCP-Protocol-Version refused (400); sending it again as it came");
            return self.relay(headers, body).await;
        }
        Response::from_parts(parts, crate::http::body::full(read))
    }

    async fn relay(&self, headers: &HeaderMap, body: Bytes) -> Response<Body> {
        self.proxy.message_as(headers, body).await
    }

    /// Where a session's GET or DELETE goes (a legacy client's): to the translation when the
    /// upstream speaks only 2026-07-28.
    pub fn session(&self) -> Option<&dyn Eras> {
        if self.refuses(Era::Legacy) { self.eras() } else { None }
    }

    fn eras(&self) -> Option<&dyn Eras> {
        let started = self.eras.get_or_init(|| {
            match (self.make.0)(Upstream {
                proxy: self.proxy.clone(),
                session_ttl: self.session_ttl,
                modern_only: self.modern_only.get().copied(),
            }) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::error!("cannot translate between the eras: {e}");
                    None
                }
            }
        });
        started.as_deref()
    }

    /// Whether the upstream refuses a well-formed 2026-07-28 `server/discover` of the engine's
    /// own (with the client's token, for an upstream that takes the client's): refused with 400,
    /// 404 or 405, it does not speak the revision. Asked once.
    async fn discover_refused(&self, client: &HeaderMap) -> bool {
        let _one = self.probing.lock().await;
        if self.refuses(Era::Modern) {
            return true;
        }
        let version = era::FIRST_MODERN;
        let body = json!({"jsonrpc": "2.0", "id": "mcpgate-era", "method": "server/discover", "params": {"_meta": {
            crate::mcp::modern::META_VERSION: version,
            crate::mcp::modern::META_CAPABILITIES: {},
            crate::mcp::modern::META_CLIENT_INFO: {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")},
        }}});
        let to = Forward {
            version: Some(http::HeaderValue::from_static(era::FIRST_MODERN)),
            method: Some(http::HeaderValue::from_static("server/discover")),
            bearer: client.get(http::header::AUTHORIZATION).cloned(),
            ..Default::default()
        };
        let resp = self.proxy.send(&to, Bytes::from(body.to_string())).await;
        matches!(resp.status().as_u16(), 400 | 404 | 405)
    }
}
/// An answer read as far as its JSON-RPC response, to tell what it says, and given back as it
/// was: a JSON body whole; an event stream's events up to the response (a server ends an
/// `initialize`'s stream there), written again.
struct Read {
    parts: http::response::Parts,
    /// The response message (empty when there was none).
    response: Bytes,
    /// The body to give back.
    body: Bytes,
}

impl Read {
    async fn answer(resp: Response<Body>, limit: usize) -> Option<Read> {
        if !answer::is_event_stream(resp.headers()) {
            let (parts, body) = resp.into_parts();
            let body = whole(body, limit).await?;
            return Some(Read { parts, response: body.clone(), body });
        }
        let (parts, stream) = resp.into_parts();
        // Read as the event stream it is (`answer::read` goes by the content type).
        let mut stream = Response::new(stream);
        if let Some(kind) = parts.headers.get(http::header::CONTENT_TYPE) {
            stream.headers_mut().insert(http::header::CONTENT_TYPE, kind.clone());
        }
        let (mut events, mut response) = (bytes::BytesMut::new(), Bytes::new());
        let end = answer::read(stream, limit, |m| {
            let is_response = Payload::parse(&m).is_ok_and(|p| p.has_response());
            events.extend_from_slice(&crate::transport::sse::encode(&m, None));
            if is_response {
                response = m;
            }
            !is_response
        })
        .await;
        end.broken.is_none().then(|| Read { parts, response, body: events.freeze() })
    }

    fn given_back(self) -> Response<Body> {
        let mut parts = self.parts;
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Response::from_parts(parts, crate::http::body::full(self.body))
    }
}

/// A body of at most `limit` bytes, read whole (`None`: larger, or broken off).
async fn whole(mut body: Body, limit: usize) -> Option<Bytes> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if out.len() + data.len() > limit {
                return None;
            }
            out.extend_from_slice(&data);
        }
    }
    Some(out.freeze())
}
