//! Who calls `serve`, and what becomes of it: the caller checked (the `Endpoint` layer's hook,
//! `http::endpoint::handle` step 3a), what they may use (the users file), and how each request
//! is accounted for — counted in the
//! metrics and, with an audit trail, written down — in one place.

use std::cell::RefCell;
use std::time::Instant;

use super::Gateway;
use crate::authn::Caller;
use crate::error::{Error, Kind};
use crate::http::limits::Cached;
use crate::policy::audit::Entry;
use crate::policy::{Access, Policy};

impl Gateway {
    /// The caller of a request (nobody in particular without authentication), or the refusal;
    /// a refusal is written down like any other (no user to name: the request is not read).
    pub(super) async fn caller(&self, parts: &http::request::Parts) -> Result<Caller, Error> {
        let Some(auth) = &self.auth else { return Ok(Caller::default()) };
        let started = Instant::now();
        let result = auth.authenticate(&parts.headers, parts.uri.path()).await;
        if let (Err(e), Some(audit)) = (&result, &self.audit) {
            let how = match e.kind {
                Kind::InsufficientScope => "insufficient_scope",
                Kind::AuthUnavailable => "unavailable",
                _ => "unauthenticated",
            };
            let entry =
                Entry { method: parts.method.to_string(), name: Some(parts.uri.path().to_owned()), ..Entry::default() };
            audit.write(&entry, None, how, started.elapsed());
        }
        result
    }

    /// How a request ended: counted (metrics) and, with an audit trail, written down (`entry`,
    /// for a request that reached a server or was refused) — the one place both happen.
    pub(super) fn account(
        &self,
        server: &str,
        method: &str,
        outcome: &'static str,
        started: Instant,
        entry: Option<&Entry>,
    ) {
        let took = started.elapsed();
        self.metrics.record(server, method, outcome, took);
        if let (Some(audit), Some(entry)) = (&self.audit, entry) {
            audit.write(entry, (server != "gateway").then_some(server), outcome, took);
        }
    }

    /// What `caller` may see and use: everything without a users file; else their rights, or a
    /// 403 for someone the file does not name.
    pub(super) fn access(&self, caller: &Caller) -> Result<Access, Error> {
        // Through this event loop's copy of the rules in force (as the Host/Origin guard is read:
        // the shared one on every request would make the loops contend for it).
        thread_local! {
            static POLICY: RefCell<Option<Cached<Option<Policy>>>> = const { RefCell::new(None) };
        }
        let access = POLICY.with_borrow_mut(|cached| {
            let cached = match cached {
                Some(c) if c.is_of(&self.policy) => c,
                other => other.insert(self.policy.cached()),
            };
            match &**cached.get() {
                None => Ok(Access::everything()),
                Some(policy) => policy.access(caller),
            }
        });
        access.map_err(|who| {
            tracing::info!("refused: {who}");
            Error::new(Kind::Forbidden, format!("{who}: ask the gateway's administrator to add you to its users file"))
        })
    }
}

/// The audit line a request begins (none for notifications and answers): who asks for what.
pub(super) fn audit_entry(
    caller: &Caller,
    msg: &crate::jsonrpc::Envelope<'_>,
    with_arguments: bool,
) -> Option<Box<Entry>> {
    let method = msg.method()?;
    msg.id?;
    Some(Box::new(Entry {
        user: caller.email.clone().or_else(|| caller.subject.clone()),
        client_id: caller.client_id.clone(),
        session: None,
        method: method.to_owned(),
        // The tool's or prompt's name, or the resource's URI (`target_name` knows which).
        name: msg.target_name(),
        // The params read whole only when their values are to be written.
        arguments: with_arguments.then(|| msg.params_value().get("arguments").cloned()).flatten(),
    }))
}
