//! Identities (`--identity`, `--identities FILE`, and the admin API): one `connect` serving
//! several agents, each at `/agents/NAME/mcp` (and, if it says so, at a port of its own) with a
//! credential of its own and upstream sessions of its own — an engine each, so one identity's
//! token never reaches another's requests. Added, given a new token, re-registered under a new
//! name and removed while running (`admin.rs`): a re-registered identity keeps its engine, its
//! sessions and its old path, so the agent's configuration never changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Proxy, UpstreamOptions};
use crate::credentials::Source;
use crate::mcp::session::Limits;

const PREFIX: &str = "/agents/";

/// The MCP path of identity `name`.
pub fn path(name: &str) -> String {
    format!("{PREFIX}{}/mcp", crate::url::encode_segment(name))
}

/// The identity a path names, if it is an identity's MCP path.
pub fn named(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    let name = path.strip_prefix(PREFIX)?.strip_suffix("/mcp")?;
    crate::url::decode_segment(name).filter(|n| valid(n))
}

/// A name an identity may have: what a path segment and a log line carry safely.
pub fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// An identity as configured: its name, its credential, and a listener of its own if it has one.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub source: Source,
    /// Served at `--path` on this address too (an agent's URL then names no identity).
    pub listen: Option<std::net::SocketAddr>,
}

/// `--identities FILE`: `{"NAME": {"bearerEnv" | "bearerFile" | "tokenCommand": …, "listen":
/// "127.0.0.1:PORT"}}` (no credential key: set through the admin API). Every problem named with
/// its identity and key.
pub fn read_file(path: &std::path::Path) -> Result<Vec<Spec>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Entry {
        bearer_env: Option<String>,
        bearer_file: Option<std::path::PathBuf>,
        token_command: Option<String>,
        listen: Option<std::net::SocketAddr>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("--identities {}: {e}", path.display()))?;
    let all: std::collections::BTreeMap<String, Entry> =
        serde_json::from_str(&text).map_err(|e| format!("--identities {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (name, e) in all {
        let at = format!("--identities {}: {name}", path.display());
        if !valid(&name) {
            return Err(format!("{at}: a name is 1-64 of A-Z a-z 0-9 - _ . (not first)"));
        }
        let source = match (e.bearer_env, e.bearer_file, e.token_command) {
            (None, None, None) => Source::Set,
            (Some(v), None, None) => Source::Env(v),
            (None, Some(p), None) => Source::File(p),
            (None, None, Some(c)) => {
                Source::Command(crate::credentials::CommandSpec { command: c, timeout: Duration::from_secs(30) })
            }
            _ => return Err(format!("{at}: at most one of bearerEnv, bearerFile, tokenCommand")),
        };
        if let Some(addr) = e.listen.filter(|a| !a.ip().is_loopback()) {
            return Err(format!("{at}.listen: {addr} is not loopback"));
        }
        out.push(Spec { name, source, listen: e.listen });
    }
    Ok(out)
}

/// A token the admin API takes: well formed, and not expired already.
fn usable(value: &str) -> Result<crate::token::IssuedToken, Refused> {
    let token = crate::token::from_plain(value).map_err(|e| Refused::Invalid(format!("the token {e}")))?;
    if token.expires_at.is_some_and(|t| t <= std::time::SystemTime::now()) {
        return Err(Refused::Invalid("the token has expired already".into()));
    }
    Ok(token)
}

/// How each identity reaches the upstream (its credential aside), and how its sessions are kept.
pub struct Settings {
    pub upstream: UpstreamOptions,
    pub max_body: usize,
    pub session_ttl: Duration,
    pub max_sessions: usize,
}

pub struct Identities {
    settings: Settings,
    shutdown: CancellationToken,
    all: RwLock<HashMap<String, Identity>>,
    /// Names an identity had before it was re-registered, and its name now (a name taken again
    /// by a new identity is its own from then on).
    renamed: RwLock<HashMap<String, String>>,
}

struct Identity {
    proxy: Arc<Proxy>,
    /// Its idle sessions' sweeper.
    sweeper: tokio::task::AbortHandle,
    /// Ends what serves it alone (a port of its own) when it is removed.
    stop: CancellationToken,
}

/// Why the admin API refuses a change.
#[derive(Debug)]
pub enum Refused {
    /// The request itself (a bad name, a token that cannot be used).
    Invalid(String),
    /// No such identity.
    Unknown(String),
    /// It clashes with what is there (a name taken, a token from a source of its own).
    Conflict(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Invalid(m) | Refused::Unknown(m) | Refused::Conflict(m) => f.write_str(m),
        }
    }
}

impl Identities {
    pub fn new(settings: Settings, shutdown: CancellationToken) -> Arc<Identities> {
        Arc::new(Identities { settings, shutdown, all: RwLock::default(), renamed: RwLock::default() })
    }

    /// The engine a request to identity `name`'s path goes to: its own, or, for a name an
    /// identity had before it was re-registered, that identity's.
    pub fn get(&self, name: &str) -> Option<Arc<Proxy>> {
        let all = self.all.read().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = all.get(name) {
            return Some(i.proxy.clone());
        }
        let renamed = self.renamed.read().unwrap_or_else(|p| p.into_inner());
        renamed.get(name).and_then(|now| all.get(now)).map(|i| i.proxy.clone())
    }

    fn exact(&self, name: &str) -> Option<Arc<Proxy>> {
        self.all.read().unwrap_or_else(|p| p.into_inner()).get(name).map(|i| i.proxy.clone())
    }

    /// Identity `old` re-registered as `new`, with the token `value`: the same engine and
    /// sessions under the new name, still reached at the old path too.
    pub fn rename(&self, old: &str, new: &str, value: &str) -> Result<(), Refused> {
        if !valid(new) {
            return Err(Refused::Invalid(format!("identity {new:?}: use 1-64 of A-Z a-z 0-9 - _ . (not first)")));
        }
        let token = usable(value)?;
        let mut all = self.all.write().unwrap_or_else(|p| p.into_inner());
        if all.contains_key(new) {
            return Err(Refused::Conflict(format!("identity {new} exists already")));
        }
        let proxy =
            all.get(old).map(|i| i.proxy.clone()).ok_or_else(|| Refused::Unknown(format!("no identity {old}")))?;
        proxy.upstream.credentials().set(&token).map_err(|e| Refused::Conflict(format!("identity {old}: {e}")))?;
        let Some(identity) = all.remove(old) else { return Err(Refused::Unknown(format!("no identity {old}"))) };
        all.insert(new.to_owned(), identity);
        let mut renamed = self.renamed.write().unwrap_or_else(|p| p.into_inner());
        for now in renamed.values_mut().filter(|n| n.as_str() == old) {
            *now = new.to_owned();
        }
        renamed.remove(new);
        renamed.insert(old.to_owned(), new.to_owned());
        tracing::info!(identity = new, was = old, "identity re-registered");
        Ok(())
    }

    /// Adds identity `name` with its credential `source` (fetched now: a broken one is refused),
    /// holding `token` from the start when one is given. Its engine, and what ends what serves it
    /// alone.
    pub async fn add(
        &self,
        name: &str,
        source: Source,
        token: Option<&crate::token::IssuedToken>,
    ) -> Result<(Arc<Proxy>, CancellationToken), Refused> {
        if !valid(name) {
            return Err(Refused::Invalid(format!("identity {name:?}: use 1-64 of A-Z a-z 0-9 - _ . (not first)")));
        }
        let up = UpstreamOptions { credential: Some(source), ..self.settings.upstream.clone() };
        let proxy = super::engine(&up, self.settings.max_body, self.shutdown.clone())
            .await
            .map_err(|e| Refused::Invalid(format!("identity {name}: {e}")))?;
        if let Some(t) = token {
            proxy.upstream.credentials().set(t).map_err(|e| Refused::Invalid(format!("identity {name}: {e}")))?;
        }
        proxy.sessions.set_limits(Limits::global(self.settings.max_sessions));
        let stop = self.shutdown.child_token();
        let mut all = self.all.write().unwrap_or_else(|p| p.into_inner());
        if all.contains_key(name) {
            return Err(Refused::Conflict(format!("identity {name} exists already")));
        }
        let sweeper = tokio::spawn(super::expire_sessions(proxy.clone(), self.settings.session_ttl)).abort_handle();
        all.insert(name.to_owned(), Identity { proxy: proxy.clone(), sweeper, stop: stop.clone() });
        // The name is this identity's now, no longer another's former one.
        self.renamed.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        tracing::info!(identity = name, "identity added at {}", path(name));
        Ok((proxy, stop))
    }

    /// Gives identity `name` the token `value` (added, with a token set from outside, when it is
    /// new): its next request carries it. Whether it was added.
    pub async fn set_token(&self, name: &str, value: &str) -> Result<bool, Refused> {
        let token = usable(value)?;
        // Twice at most: a new name another request added meanwhile is then set.
        for _ in 0..2 {
            if let Some(proxy) = self.exact(name) {
                proxy
                    .upstream
                    .credentials()
                    .set(&token)
                    .map_err(|e| Refused::Conflict(format!("identity {name}: {e}")))?;
                tracing::info!(identity = name, "identity's token set");
                return Ok(false);
            }
            match self.add(name, Source::Set, Some(&token)).await {
                Ok(_) => return Ok(true),
                Err(Refused::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Refused::Conflict(format!("identity {name} changed meanwhile; try again")))
    }

    /// Removes identity `name`: what serves it alone stops, its sessions end. Whether there was
    /// one.
    pub async fn remove(&self, name: &str) -> bool {
        let gone = self.all.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        let Some(identity) = gone else { return false };
        self.renamed.write().unwrap_or_else(|p| p.into_inner()).retain(|was, now| now != name && was != name);
        identity.stop.cancel();
        identity.sweeper.abort();
        identity.proxy.end_all_sessions().await;
        tracing::info!(identity = name, "identity removed");
        true
    }

    /// Every identity: its path, whether it has a token and until when, its sessions — never a
    /// token.
    pub fn status(&self) -> Value {
        let all = self.all.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<&String> = all.keys().collect();
        names.sort();
        let list: Vec<Value> = names
            .into_iter()
            .map(|name| {
                let proxy = &all[name].proxy;
                let (set, expires) = proxy.upstream.credentials().status();
                let expires = expires.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs());
                let secs = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
                let refused =
                    proxy.upstream.last_refusal().map(|(status, at)| json!({"status": status, "at": secs(at)}));
                json!({"name": name, "path": path(name), "token": set, "expiresAt": expires,
                       "sessions": proxy.sessions.len(), "lastRefusal": refused})
            })
            .collect();
        json!({"identities": list})
    }

    /// Ends every identity's sessions (at shutdown).
    pub async fn end_all(&self) {
        let proxies: Vec<Arc<Proxy>> =
            self.all.read().unwrap_or_else(|p| p.into_inner()).values().map(|i| i.proxy.clone()).collect();
        for p in proxies {
            p.end_all_sessions().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_named_by_its_path_and_nothing_else() {
        assert_eq!(path("reviewer"), "/agents/reviewer/mcp");
        assert_eq!(named("/agents/reviewer/mcp").as_deref(), Some("reviewer"));
        for p in ["/agents//mcp", "/agents/a/b/mcp", "/agents/../mcp", "/agents/a%2Fb/mcp", "/agents/reviewer", "/mcp"]
        {
            assert_eq!(named(p), None, "{p}");
        }
        assert!(!valid(&"x".repeat(65)) && !valid("a b") && !valid(".hidden") && valid("agent-1.v2_x"));
    }
}
