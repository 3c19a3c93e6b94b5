//! Client-facing sessions. The gateway issues its own session ids (128 random bits, hex) and
//! keeps, per session, what it needs to rebuild the upstream session behind the client's back:
//! the client's original `initialize` request, and whatever state the upstream's transport
//! needs (`S`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;

pub struct Session<S> {
    pub id: String,
    /// The id as a header value, ready to send back.
    pub header: HeaderValue,
    /// The client's `initialize` request body, replayed to re-initialize upstream.
    pub initialize: Bytes,
    /// The upstream side of the session.
    pub upstream: S,
    /// Milliseconds since `epoch()` at the last use: an atomic, since every request touches it.
    last_used: AtomicU64,
}

impl<S> Session<S> {
    fn touch(&self) {
        self.last_used.store(now_ms(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last_used.load(Ordering::Relaxed)))
    }

    /// A short, non-secret label for logs.
    pub fn label(&self) -> &str {
        &self.id[..8]
    }
}

/// Milliseconds since the first call (a process-local monotonic clock).
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

pub struct SessionTable<S> {
    map: RwLock<HashMap<String, Arc<Session<S>>, crate::hash::Fast>>,
}

impl<S> Default for SessionTable<S> {
    fn default() -> Self {
        SessionTable { map: RwLock::default() }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed: {0}")]
pub struct RandomError(String);

/// 128 bits from the OS generator, as 32 lowercase hex characters.
pub fn new_id() -> Result<String, RandomError> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl<S> SessionTable<S> {
    pub fn create(&self, initialize: Bytes, upstream: S) -> Result<Arc<Session<S>>, RandomError> {
        let id = new_id()?;
        let header = HeaderValue::try_from(id.as_str()).map_err(|e| RandomError(e.to_string()))?;
        let session =
            Arc::new(Session { id: id.clone(), header, initialize, upstream, last_used: AtomicU64::new(now_ms()) });
        self.map.write().unwrap_or_else(|p| p.into_inner()).insert(id, session.clone());
        Ok(session)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session<S>>> {
        let s = self.map.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()?;
        s.touch();
        Some(s)
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session<S>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner()).remove(id)
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every session now (to tell them all something).
    pub fn snapshot(&self) -> Vec<Arc<Session<S>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Removes and returns every session (shutdown).
    pub fn drain(&self) -> Vec<Arc<Session<S>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, s)| s).collect()
    }

    /// Removes sessions idle for longer than `ttl`; returns them so their upstream sessions can
    /// be ended.
    pub fn expire(&self, ttl: Duration) -> Vec<Arc<Session<S>>> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let idle: Vec<String> = map.iter().filter(|(_, s)| s.idle_for() >= ttl).map(|(k, _)| k.clone()).collect();
        idle.into_iter().filter_map(|k| map.remove(&k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_long() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn table() {
        let t = SessionTable::default();
        let s = t.create(Bytes::from_static(b"{}"), "up-1").unwrap();
        assert_eq!(t.get(&s.id).unwrap().upstream, "up-1");
        assert_eq!(t.get(&s.id).unwrap().header, s.id.as_str());
        assert!(t.get("nope").is_none());
        assert!(t.expire(Duration::from_secs(60)).is_empty());
        assert_eq!(t.expire(Duration::ZERO).len(), 1);
        assert!(t.is_empty());
    }
}
