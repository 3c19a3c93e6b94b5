//! Rebuilding an upstream session the upstream forgot: replay the client's `initialize`, read
//! its answer, send `notifications/initialized`, and remember the new upstream session id.
//! One rebuild per session at a time; requests that raced it reuse its result. The id a
//! Streamable HTTP session is known by upstream (`UpstreamId`) is kept here, with the lock that
//! makes its rebuilds one at a time; `streamable::State` holds it.

use crate::transport::http_client::ResponseBody;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Response};
use serde::Deserialize;

use crate::error::Error;
use crate::jsonrpc;
use crate::mcp::headers::{PROTOCOL_VERSION, SESSION_ID};
use crate::mcp::session::Session;
use crate::transport::answer;
use crate::upstream::Upstream;

const MAX_INIT_RESPONSE: usize = 4 * 1024 * 1024;

/// The upstream's session id for one client session (none if the upstream gave none): read by
/// every request, replaced when the session is rebuilt.
pub struct UpstreamId {
    id: std::sync::RwLock<Option<HeaderValue>>,
    /// Held while the upstream session is rebuilt: one rebuild at a time.
    rebuilding: tokio::sync::Mutex<()>,
}

impl UpstreamId {
    pub fn new(id: Option<HeaderValue>) -> Self {
        UpstreamId { id: std::sync::RwLock::new(id), rebuilding: tokio::sync::Mutex::new(()) }
    }

    pub fn get(&self) -> Option<HeaderValue> {
        self.id.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, id: Option<HeaderValue>) {
        *self.id.write().unwrap_or_else(|p| p.into_inner()) = id;
    }
}

/// Rebuilds the upstream session of `session` (its `initialize` replayed) unless a request that
/// raced this one did already (`id` is no longer `stale`); the upstream session id to use from
/// now on.
pub async fn rebuild<S>(
    upstream: &Upstream,
    session: &Session<S>,
    id: &UpstreamId,
    stale: Option<&HeaderValue>,
    client: &HeaderMap,
) -> Result<Option<HeaderValue>, Error> {
    let _one_at_a_time = id.rebuilding.lock().await;
    let current = id.get();
    if current.as_ref() != stale {
        return Ok(current);
    }
    let mut hdrs = HeaderMap::new();
    hdrs.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    hdrs.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
    let resp = upstream.send(Method::POST, &upstream.url, hdrs.clone(), session.initialize.clone()).await?;
    if !resp.status().is_success() {
        return Err(Error::protocol(
            &upstream.display,
            format!("re-initializing the session was answered {}", resp.status()),
        ));
    }
    let fresh = resp.headers().get(SESSION_ID).cloned();
    let answer = tokio::time::timeout(upstream.timeout, first_message(resp))
        .await
        .map_err(|_| Error::timeout(&upstream.display, upstream.timeout))?
        .map_err(|e| Error::protocol(&upstream.display, format!("re-initializing the session: {e}")))?;
    let version = negotiated_version(&answer)
        .map(HeaderValue::try_from)
        .and_then(Result::ok)
        .or_else(|| client.get(PROTOCOL_VERSION).cloned());

    let mut hdrs = hdrs.clone();
    if let Some(id) = &fresh {
        hdrs.insert(SESSION_ID, id.clone());
    }
    if let Some(v) = version {
        hdrs.insert(PROTOCOL_VERSION, v);
    }
    let done =
        upstream.send(Method::POST, &upstream.url, hdrs, jsonrpc::notification("notifications/initialized")).await?;
    if !done.status().is_success() {
        tracing::warn!(upstream = %upstream.display, status = done.status().as_u16(), "notifications/initialized was refused after re-initializing");
    }
    id.set(fresh.clone());
    tracing::info!(session = session.label(), "upstream session rebuilt");
    Ok(fresh)
}

/// The first JSON-RPC message of a response, whether sent as JSON or as an SSE stream (which
/// is not read past that message).
async fn first_message(resp: Response<ResponseBody>) -> Result<Bytes, String> {
    let mut first = None;
    let end = answer::read(resp, MAX_INIT_RESPONSE, |m| {
        first = Some(m);
        false
    })
    .await;
    first.ok_or_else(|| end.broken.unwrap_or_else(|| "the stream ended before the initialize result".into()))
}

fn negotiated_version(answer: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Answer {
        result: Option<InitResult>,
    }
    #[derive(Deserialize)]
    struct InitResult {
        #[serde(rename = "protocolVersion")]
        protocol_version: Option<String>,
    }
    serde_json::from_slice::<Answer>(answer).ok()?.result?.protocol_version
}
