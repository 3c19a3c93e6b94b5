//! A 2026-07-28 client on stdin (the revision has no `initialize`: each request names its
//! revision in `_meta`). Each of its requests goes with the standard headers that mirror it, as
//! that revision's HTTP clients send them (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`): to
//! the upstream as it is when the upstream speaks the revision, else through the translation —
//! which `connect` uses too (connect/translate.rs) — and every message of the answer goes out as
//! a line.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::Bridge;
use crate::jsonrpc::Payload;
use crate::mcp::era::{self, Era};
use crate::mcp::headers::{METHOD, NAME, PROTOCOL_VERSION};

/// The headers a 2026-07-28 request on stdin is sent with (`None`: not such a request).
pub(super) fn headers(body: &[u8]) -> Option<HeaderMap> {
    let payload = Payload::parse(body).ok()?;
    let msg = payload.single()?;
    let method = msg.method()?;
    // Only `_meta`'s revision is read (the rest of the params skipped, not built).
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, rename = "_meta")]
        meta: Option<Meta<'a>>,
    }
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(borrow, rename = "io.modelcontextprotocol/protocolVersion")]
        version: Option<Cow<'a, str>>,
    }
    let params: Params<'_> = serde_json::from_str(msg.params?.get()).ok()?;
    let version = params.meta?.version?;
    let version = version.as_ref();
    if era::era_of(Some(version)) != Ok(Era::Modern) {
        return None;
    }
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
    h.insert(PROTOCOL_VERSION, HeaderValue::from_str(version).ok()?);
    h.insert(METHOD, HeaderValue::from_str(method).ok()?);
    if let Some(name) = msg.target_name() {
        h.insert(NAME, HeaderValue::from_str(&crate::mcp::modern::header_name_value(&name)).ok()?);
    }
    Some(h)
}

impl Bridge {
    /// One request of a 2026-07-28 client; its answer's messages out as lines.
    pub(super) async fn modern_client(&self, headers: HeaderMap, body: Bytes) {
        let mut pending = Payload::parse(&body).map(|p| p.request_ids()).unwrap_or_default();
        let resp = match &self.translate {
            Some(t) => t.post(&headers, body).await,
            None => self.proxy.message_as(&headers, body).await,
        };
        let status = resp.status();
        self.relay(resp, &mut pending).await;
        self.unanswered(status, pending);
    }
}

/// Whether `status` is an answer that carried one (a 202 has none to carry).
pub(super) fn answered(status: StatusCode) -> bool {
    status.is_success() || status == StatusCode::ACCEPTED
}
