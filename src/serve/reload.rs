//! Live reload: a changed configuration file (polled, debounced), SIGHUP, or `POST /admin/reload`
//! from loopback builds and validates a new configuration and applies only the differences —
//! added servers start, removed ones stop, changed ones restart — while client sessions carry on.
//! An invalid file is refused with its problems, and the running configuration keeps serving.
//! The file is read, parsed and validated on a blocking thread, never on an event loop: a
//! large file takes a while, and calls in flight must not wait for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::Gateway;
use super::router::Backend;
use crate::config;

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
}

impl Gateway {
    /// Reads the file again and applies what changed; the old configuration stays on error.
    pub async fn reload(self: &Arc<Self>) -> Result<Applied, config::Invalid> {
        let path = self.config_path.clone();
        let next = match tokio::task::spawn_blocking(move || config::load(&path)).await {
            Ok(loaded) => Arc::new(loaded?),
            Err(e) => return Err(config::Invalid::unreadable(&self.config_path, format!("reading it failed: {e}"))),
        };
        let _one = self.reloading.lock().await;
        let old = self.router.config();
        let old_ttl = old.gateway.session_ttl;
        if next.gateway.listen != old.gateway.listen {
            tracing::warn!(
                "mcpgate.listen changed ({} → {}): that takes a restart; the rest is applied",
                old.gateway.listen,
                next.gateway.listen
            );
        }
        if next.gateway.threads != old.gateway.threads {
            tracing::warn!("mcpgate.threads changed: that takes a restart; the rest is applied");
        }
        let (was, now) = (&old.gateway.auth, &next.gateway.auth);
        if (&was.jwt, &was.oauth, was.allow_unauthenticated) != (&now.jwt, &now.oauth, now.allow_unauthenticated) {
            tracing::warn!("mcpgate.auth changed: that takes a restart; the rest is applied");
        }
        let users_changed = (&was.users_file, &was.roles) != (&now.users_file, &now.roles);
        let mut applied = Applied::default();
        let current: Vec<Arc<Backend>> =
            self.router.backends.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        // Stop what went away or changed.
        for b in &current {
            let wanted = next.server(&b.cfg.name).filter(|s| s.enabled);
            match wanted {
                Some(s) if *s == b.cfg => {}
                Some(_) => applied.restarted.push(b.cfg.name.clone()),
                None => applied.removed.push(b.cfg.name.clone()),
            }
        }
        for name in applied.removed.iter().chain(&applied.restarted) {
            let gone = self.router.backends.write().unwrap_or_else(|p| p.into_inner()).remove(name);
            if let Some(b) = gone {
                b.link.stop(Duration::from_secs(5)).await;
                self.router.invalidate(name, &["tools", "prompts", "resources", "resourceTemplates"]);
            }
        }
        let replaced =
            std::mem::replace(&mut *self.router.config.write().unwrap_or_else(|p| p.into_inner()), next.clone());
        // The old configuration may be large: it is freed off the event loop too.
        tokio::task::spawn_blocking(move || drop((replaced, old)));
        if users_changed {
            self.reload_users();
        }
        // The listener's rules apply from the next request on (a new connection, for the caps).
        self.guard.set(super::guard_for(self.loopback, &next));
        // Read when shutdown begins: a changed `shutdownGrace` needs nothing more.
        self.edge.set(next.gateway.limits.clone());
        if next.gateway.session_ttl != old_ttl {
            tracing::info!("mcpgate.sessionTtl is now {:?}", next.gateway.session_ttl);
            self.ttl_changed.notify_one();
        }
        // Lower limits take effect now: idle sessions over them end as an expiry would.
        for old in self.sessions.set_limits(next.gateway.sessions) {
            tracing::info!(session = old.label(), "session evicted: the session limits were lowered");
            self.end(&old);
        }
        // Start what is new or changed.
        let restarted: std::collections::HashSet<&str> = applied.restarted.iter().map(String::as_str).collect();
        let mut added = Vec::new();
        for s in next.servers.iter().filter(|s| s.enabled) {
            if self.router.backend(&s.name).is_some() {
                continue;
            }
            if !restarted.contains(s.name.as_str()) {
                added.push(s.name.clone());
            }
            match super::start_backend(s, &next, self.authz.as_ref(), self.unsolicited.clone(), self.shutdown.clone())
                .await
            {
                Ok(link) => {
                    self.router
                        .backends
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(s.name.clone(), Arc::new(Backend::new(s.clone(), link)));
                }
                Err(e) => tracing::error!(server = %s.name, "cannot start: {e}"),
            }
        }
        applied.added = added;
        if applied != Applied::default() {
            self.announce_lists_changed();
        }
        tracing::info!(added = ?applied.added, removed = ?applied.removed, restarted = ?applied.restarted, "configuration reloaded");
        Ok(applied)
    }

    /// Every client: the listings changed.
    fn announce_lists_changed(&self) {
        for s in self.sessions.snapshot() {
            for m in super::backend::LIST_CHANGED {
                s.upstream.send(json!({"jsonrpc":"2.0","method":m}));
            }
        }
    }

    /// Reads the users file (and the roles in force) again; on a problem the rules in force
    /// stay, and the log says why.
    pub fn reload_users(&self) {
        let auth = self.router.config().gateway.auth.clone();
        match auth.users_file.as_deref().map(|path| crate::policy::Policy::load(path, auth.roles.clone())) {
            None => self.policy.set(None),
            Some(Ok(policy)) => {
                tracing::info!(users = policy.len(), "users file read");
                self.policy.set(Some(policy));
            }
            Some(Err(e)) => tracing::error!("{e}; the rules in force stay"),
        }
    }

    /// Reloads and logs the outcome (for the signal and the file watcher).
    pub async fn reload_logged(self: &Arc<Self>, why: &str) {
        match self.reload().await {
            Ok(_) => {}
            Err(invalid) => {
                tracing::error!("{why}: the new configuration is refused; the running one keeps serving.\n{invalid}")
            }
        }
    }
}

/// Reloads on SIGHUP.
pub async fn on_sighup(gateway: Arc<Gateway>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        // Log rotation's signal too: the audit file is opened again.
        if let Some(audit) = &gateway.audit {
            audit.reopen();
        }
        gateway.reload_logged("SIGHUP").await;
    }
}

/// Reloads when the file changes.
pub async fn watch(gateway: Arc<Gateway>, path: PathBuf) {
    on_change(|| Some(path.clone()), || gateway.reload_logged("the configuration file changed")).await
}

/// Reads the users file again when it changes — the one the configuration names now (a reload
/// may add one, or name another); a broken one is refused and the rules in force stay.
pub async fn watch_users(gateway: Arc<Gateway>) {
    let named = || gateway.router.config().gateway.auth.users_file.clone();
    on_change(named, || async { gateway.reload_users() }).await
}

/// Calls `changed` whenever the file `named` names changes, or it names another: one `stat` a
/// second; a change counts once the file has stayed the same for a moment (editors write in
/// several steps). A file newly named was read by whoever named it, but may have changed since:
/// it counts as changed, from the stamp taken then.
async fn on_change<F: std::future::Future<Output = ()>>(
    named: impl Fn() -> Option<PathBuf>,
    mut changed: impl FnMut() -> F,
) {
    let mut watched = named();
    let mut last = watched.as_deref().and_then(stamp);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now_named = named();
        if now_named != watched {
            last = now_named.as_deref().and_then(stamp);
            watched = now_named;
            changed().await;
            continue;
        }
        let Some(path) = watched.as_deref() else { continue };
        let now = stamp(path);
        if now == last || now.is_none() {
            continue;
        }
        last = settled(path, now).await;
        changed().await;
    }
}

/// Waits until two looks at the file agree (editors write in several steps); its stamp then.
async fn settled(path: &Path, mut seen: Option<(u64, u64, i64, i64)>) -> Option<(u64, u64, i64, i64)> {
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = stamp(path);
        if again == seen {
            return seen;
        }
        seen = again;
    }
}

fn stamp(path: &Path) -> Option<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The configuration an admin reload produced, for the response body.
pub fn describe(r: &Result<Applied, config::Invalid>) -> serde_json::Value {
    match r {
        Ok(a) => json!({"reloaded": true, "added": a.added, "removed": a.removed, "restarted": a.restarted}),
        Err(invalid) => {
            json!({"reloaded": false, "problems": invalid.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()})
        }
    }
}
