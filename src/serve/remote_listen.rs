//! The gateway's own `subscriptions/listen` streams at a 2026-07-28 server, for its 2025-era
//! clients (the revision has no GET stream and no `resources/subscribe`):
//!
//! - one stream of the list changes the server announces, whose news goes to the router as a
//!   server-wide fact (listings fetched anew, every client told, whatever its era);
//! - one stream per client session that subscribed to resources, naming the URIs it did
//!   (opened anew when they change), whose updates go to that session.
//!
//! Each is kept open: reopened when it ends, ever more slowly when the server ends it at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use rustc_hash::FxBuildHasher;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::backend::{Unsolicited, UnsolicitedTx};
use crate::connect::{Forward, Proxy};
use crate::mcp::modern::ClientEnvelope;

/// How long a subscription waits for the server to acknowledge it.
const ACK_WAIT: Duration = Duration::from_secs(10);
/// Resources one client session may subscribe to at one server.
const MAX_URIS: usize = 256;

/// Where a stream's news goes: the server's name, and the client session it is for (`None`: the
/// gateway's, a server-wide fact).
pub(super) struct Out {
    pub name: String,
    pub session: Option<String>,
    pub to: UnsolicitedTx,
}

/// A `subscriptions/listen` stream at the server for `notifications` (the request's filter), kept
/// open until `stop`; `acknowledged` hears the filter the server's acknowledgement says it
/// honours, the first time. Every notification but the acknowledgement goes out, the
/// subscription's id (the gateway's business) taken off.
pub(super) async fn listen(
    proxy: Arc<Proxy>,
    (env, notifications): (ClientEnvelope, Value),
    out: Out,
    stop: CancellationToken,
    mut acknowledged: Option<oneshot::Sender<Value>>,
) {
    let mut params = json!({ "notifications": notifications });
    env.apply(&mut params, None);
    let body = Bytes::from(
        json!({"jsonrpc": "2.0", "id": "mcpgate-listen", "method": "subscriptions/listen", "params": params})
            .to_string(),
    );
    let to = Forward {
        version: HeaderValue::try_from(env.version.as_str()).ok(),
        method: Some(HeaderValue::from_static("subscriptions/listen")),
        ..Default::default()
    };
    let mut delay = Duration::from_millis(500);
    while !stop.is_cancelled() {
        let resp = tokio::select! {
            r = proxy.send(&to, body.clone()) => r,
            () = stop.cancelled() => return,
        };
        if resp.status().is_success() {
            let opened = std::time::Instant::now();
            let read = crate::transport::answer::read_messages(resp, |mut m| {
                let method = m.get("method").and_then(Value::as_str).unwrap_or_default();
                if method == "notifications/subscriptions/acknowledged" {
                    if let Some(tx) = acknowledged.take() {
                        let _ = tx.send(m.pointer("/params/notifications").cloned().unwrap_or_default());
                    }
                    return true;
                }
                if !method.starts_with("notifications/") || m.get("id").is_some() {
                    return true;
                }
                if let Some(meta) = m.pointer_mut("/params/_meta").and_then(Value::as_object_mut) {
                    meta.remove(crate::mcp::modern::META_SUBSCRIPTION_ID);
                }
                out.to.push(Unsolicited {
                    backend: out.name.clone(),
                    session: out.session.clone(),
                    message: m,
                    reply: None,
                });
                true
            });
            tokio::select! {
                _ = read => {}
                () = stop.cancelled() => return,
            }
            // A stream that lasted is opened again soon; one closed at once (a server that
            // delivers nothing of the filter ends it after its acknowledgement) ever more slowly.
            if opened.elapsed() > Duration::from_secs(10) {
                delay = Duration::from_millis(500);
            }
        } else {
            tracing::debug!(server = %out.name, "subscriptions/listen refused ({}); again in {delay:?}", resp.status());
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// The resources each client session subscribed to at one 2026-07-28 server, and the stream
/// that carries their updates.
#[derive(Default)]
pub(super) struct Subscriptions {
    /// By the gateway's client session id (ids it issued: the Fx hash is safe here).
    by_session: Mutex<HashMap<String, (BTreeSet<String>, CancellationToken), FxBuildHasher>>,
}

/// A subscription asked for: whose, at which server, and what to send there.
pub(super) struct Ask<'a> {
    pub session: &'a str,
    pub env: ClientEnvelope,
    pub proxy: &'a Arc<Proxy>,
    pub out: Out,
    pub stop: &'a CancellationToken,
}

/// What a subscription change makes of a session's stream.
#[derive(Debug, PartialEq)]
enum Next {
    /// Nothing changed (already subscribed, or not).
    Same,
    /// The session subscribes to nothing any more: its stream ended.
    Ended,
    /// The stream opened anew, for these URIs, until this token.
    Reopen(Vec<String>, CancellationToken),
}

impl Subscriptions {
    /// `resources/subscribe` (`on`) or `resources/unsubscribe` of `uri`: the session's stream
    /// opened anew with its URIs; the answer once the server acknowledged it (a URI it does not
    /// honour is refused, and left out again).
    pub(super) async fn change(&self, ask: Ask<'_>, uri: &str, on: bool) -> Result<(), String> {
        let (uris, stop) = match self.update(ask.session, uri, on, ask.stop)? {
            Next::Same | Next::Ended => return Ok(()),
            Next::Reopen(uris, stop) => (uris, stop),
        };
        let (tx, rx) = oneshot::channel();
        let filter = json!({ "resourceSubscriptions": uris });
        tokio::spawn(listen(ask.proxy.clone(), (ask.env, filter), ask.out, stop, Some(tx)));
        let honoured = match tokio::time::timeout(ACK_WAIT, rx).await {
            Ok(Ok(filter)) => filter,
            _ => return Err("the server did not acknowledge the subscription".to_owned()),
        };
        let listed = honoured.get("resourceSubscriptions").and_then(Value::as_array);
        if !on || listed.is_some_and(|l| l.iter().any(|u| u == uri)) {
            return Ok(());
        }
        // Not honoured: out of the set again (the stream is opened anew without it at the next
        // change; the server delivers nothing of it meanwhile).
        let mut all = self.by_session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = all.get_mut(ask.session) {
            entry.0.remove(uri);
        }
        Err(format!("the server offers no updates of {uri}"))
    }

    /// The session's set with `uri` in (`on`) or out, within `MAX_URIS`; its old stream stopped
    /// when the set changed.
    fn update(&self, session: &str, uri: &str, on: bool, link: &CancellationToken) -> Result<Next, String> {
        let mut all = self.by_session.lock().unwrap_or_else(|p| p.into_inner());
        let entry = all.entry(session.to_owned()).or_insert_with(|| (BTreeSet::new(), link.child_token()));
        if on && !entry.0.contains(uri) && entry.0.len() >= MAX_URIS {
            return Err(format!("a session subscribes to {MAX_URIS} resources of a server at most"));
        }
        let changed = if on { entry.0.insert(uri.to_owned()) } else { entry.0.remove(uri) };
        if !changed {
            if entry.0.is_empty() {
                all.remove(session);
            }
            return Ok(Next::Same);
        }
        entry.1.cancel();
        if entry.0.is_empty() {
            all.remove(session);
            return Ok(Next::Ended);
        }
        entry.1 = link.child_token();
        Ok(Next::Reopen(entry.0.iter().cloned().collect(), entry.1.clone()))
    }

    /// The session ended: its stream too.
    pub(super) fn forget(&self, session: &str) {
        if let Some((_, stop)) = self.by_session.lock().unwrap_or_else(|p| p.into_inner()).remove(session) {
            stop.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_subscriptions_are_one_stream_bounded_and_gone_with_the_session() {
        let subs = Subscriptions::default();
        let link = CancellationToken::new();
        let Ok(Next::Reopen(uris, first)) = subs.update("s1", "a", true, &link) else { panic!() };
        assert_eq!(uris, ["a"]);
        assert_eq!(subs.update("s1", "a", true, &link), Ok(Next::Same), "subscribed already");
        let Ok(Next::Reopen(uris, second)) = subs.update("s1", "b", true, &link) else { panic!() };
        assert_eq!(uris, ["a", "b"]);
        assert!(first.is_cancelled() && !second.is_cancelled(), "one stream per session: the old one ends");
        let Ok(Next::Reopen(uris, third)) = subs.update("s1", "a", false, &link) else { panic!() };
        assert_eq!(uris, ["b"]);
        assert!(second.is_cancelled());
        assert_eq!(subs.update("s1", "b", false, &link), Ok(Next::Ended));
        assert!(third.is_cancelled());
        assert_eq!(subs.update("s1", "zz", false, &link), Ok(Next::Same), "not subscribed");
        assert!(subs.by_session.lock().unwrap().is_empty(), "nothing kept for a session without subscriptions");
        // At most MAX_URIS for one session (another session has its own).
        for i in 0..MAX_URIS {
            assert!(matches!(subs.update("s2", &format!("u{i}"), true, &link), Ok(Next::Reopen(..))));
        }
        assert!(subs.update("s2", "one too many", true, &link).unwrap_err().contains("at most"));
        assert!(matches!(subs.update("s3", "one too many", true, &link), Ok(Next::Reopen(..))));
        // The session's end ends its stream; the link's stop ends them all.
        let Ok(Next::Reopen(_, s3)) = subs.update("s3", "x", true, &link) else { panic!() };
        subs.forget("s3");
        assert!(s3.is_cancelled());
        let Ok(Next::Reopen(_, s2)) = subs.update("s2", "u0", false, &link) else { panic!() };
        link.cancel();
        assert!(s2.is_cancelled());
    }
}
