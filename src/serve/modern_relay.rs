//! A 2026-07-28 client's request to a server that speaks that revision too, which the caller
//! sees alone: relayed as it came (its `_meta`, its `Mcp-Param-*` headers) and answered as the
//! server answers — its input-required results, its tasks, its `subscriptions/listen` streams —
//! after the rules the gateway keeps on its own path: the caller's rights on the resources a
//! listen stream names, and tasks only where the server can keep users' tasks apart.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Response};
use serde_json::Value;

use super::Gateway;
use super::dispatch::Target;
use super::front::modern_json;
use super::session::View;
use crate::error::{Error, Kind};
use crate::http::body::Body;
use crate::http::wire;
use crate::mcp::headers::{METHOD, NAME, PROTOCOL_VERSION, param_headers};
use crate::policy::Access;
use crate::policy::audit::Entry;

/// Who asks: the endpoint's view, the dispatch step's decision, the caller's rights, the caller
/// (`sub`, or its token's hash) and the capabilities its request declares.
pub(super) type Who<'a> = (&'a View, &'a Target, &'a Access, Option<&'a str>, &'a Value);

impl Gateway {
    /// The server's answer, or `None`: not such a server (the gateway answers, translating).
    pub(super) async fn modern_relay(
        self: &Arc<Self>,
        (view, target, access, owner, caps): Who<'_>,
        (headers, bytes): (&HeaderMap, &Bytes),
        (method, id, params): (&str, &Value, &Value),
        (started, entry): (Instant, Option<&Entry>),
    ) -> Option<Response<Body>> {
        let b = match (target, view) {
            (Target::Lone(b), _) => b.clone(),
            // A 2026-07-28 server the caller sees alone (its own endpoint, or `/mcp` with it as
            // the one server) answers `ping`, or not, itself: the revision dropped it, and the
            // caller gets what it gets direct. Where several servers are seen, or a 2025 one
            // (which has it), the gateway answers it (clients still send it).
            (Target::Gateway, _) if method == "ping" => self.router.alone(view)?,
            _ => return None,
        };
        let client = self.modern_session(view, owner, caps, None).ok()?;
        // The caller's token as last sent, for a server that takes it.
        client.upstream.set_bearer(headers.get(http::header::AUTHORIZATION));
        let (engine, mut to) = b.link.modern_relay(&client)?;
        let refusal = if method.starts_with("tasks/") && !self.tasks_carried(&b, &client) {
            Some(Error::new(Kind::MethodNotFound, format!("{method}: tasks are not carried here")))
        } else if method == "subscriptions/listen" {
            let named = params.pointer("/notifications/resourceSubscriptions").and_then(Value::as_array);
            let mut named = named.into_iter().flatten().filter_map(Value::as_str);
            named
                .find(|u| !self.router.may_use_resource(view, access, u))
                .map(|u| Error::new(Kind::InvalidParams, format!("no server offers the resource {u}")))
        } else {
            None
        };
        if let Some(e) = refusal {
            self.account("gateway", method, "refused", started, entry);
            return Some(modern_json(id, wire::answer(&e)));
        }
        to.method = headers.get(METHOD).cloned();
        to.name = headers.get(NAME).cloned();
        to.version = headers.get(PROTOCOL_VERSION).cloned().or(to.version);
        // Relayed as `connect` relays: each silence of the server's stream is bounded by its
        // timeout (a listen stream lives on the server's keep-alives).
        let resp = engine.send_with(&to, param_headers(headers).as_ref(), bytes.clone()).await;
        let ok = if resp.status().is_success() { "ok" } else { "error" };
        self.account(&b.cfg.name, method, ok, started, entry);
        Some(resp)
    }
}
