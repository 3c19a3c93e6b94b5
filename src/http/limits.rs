//! What a client connection may take of the gateway: time (head, body, idle and write
//! timeouts) and room (connections, in all and per client address, and request bodies held in
//! memory at once). nginx's defaults are the reference; where they differ it says why.
//!
//! The values are shared by every event loop and may be replaced by a reload (`Shared::set`);
//! a connection reads them as each request begins.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A request head must arrive whole within this once it has begun (nginx
    /// `client_header_timeout`, 60 s; hyper's default, 30 s).
    pub head_timeout: Duration,
    /// A request body may pause this long between reads (nginx `client_body_timeout`)…
    pub body_timeout: Duration,
    /// …and must arrive at this average rate at least, in bytes per second, after the first
    /// `body_timeout` (a trickle of one byte a minute is not a client).
    pub min_body_rate: u64,
    /// A kept-alive connection may wait this long for its next request (nginx
    /// `keepalive_timeout`, 75 s), and a new one this long for its first.
    pub idle_timeout: Duration,
    /// A write to the client may wait this long for the client to read (nginx `send_timeout`).
    pub write_timeout: Duration,
    /// Connections open at once; past it, the oldest idle one is closed to make room, and a
    /// new one is refused when none is idle. Never more than the descriptors allow.
    pub max_connections: usize,
    /// Connections open at once from one client address (0: no limit of its own).
    pub max_connections_per_client: usize,
    /// Request bodies held in memory at once, across connections, in bytes: a body that does
    /// not fit waits for nothing — it is refused with 503.
    pub max_buffered_bodies: usize,
    /// The largest request body (413 beyond it).
    pub max_body: usize,
    /// How long requests in flight may take to finish once shutdown begins; the connections
    /// still open then are closed. Read when shutdown begins, so a reload applies to it.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            min_body_rate: 1024,
            idle_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_connections_per_client: 1024,
            max_buffered_bodies: 64 * 1024 * 1024,
            max_body: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// How long a body of `len` bytes may take in all.
    pub fn body_deadline(&self, len: u64) -> Duration {
        let rate = self.min_body_rate.max(1);
        self.body_timeout + Duration::from_secs(len / rate)
    }
}

/// A value every event loop reads and a reload may replace (the limits, the Host/Origin
/// guard). Readers keep a `Cached` copy and look at a version number per request: a plain load
/// of a word nobody writes between reloads, where taking the lock and the `Arc` each time would
/// make two event loops fight over one cache line on every request.
#[derive(Debug)]
pub struct Shared<T> {
    inner: Arc<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    version: AtomicU64,
    current: RwLock<Arc<T>>,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared { inner: self.inner.clone() }
    }
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Shared { inner: Arc::new(Inner { version: AtomicU64::new(0), current: RwLock::new(Arc::new(value)) }) }
    }

    pub fn get(&self) -> Arc<T> {
        self.inner.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, value: T) {
        *self.inner.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
        self.inner.version.fetch_add(1, Ordering::Release);
    }

    /// A copy to keep, refreshed by `Cached::get` when a reload replaced the value.
    pub fn cached(&self) -> Cached<T> {
        let version = self.inner.version.load(Ordering::Acquire);
        Cached { shared: self.clone(), version, value: self.get() }
    }
}

/// A reader's copy of a `Shared` value.
#[derive(Debug)]
pub struct Cached<T> {
    shared: Shared<T>,
    version: u64,
    value: Arc<T>,
}

impl<T> Cached<T> {
    /// Whether this is a copy of `shared`'s value.
    pub fn is_of(&self, shared: &Shared<T>) -> bool {
        Arc::ptr_eq(&self.shared.inner, &shared.inner)
    }

    /// The current value: the copy kept, unless a reload replaced it since.
    pub fn get(&mut self) -> &Arc<T> {
        let now = self.shared.inner.version.load(Ordering::Acquire);
        if now != self.version {
            self.version = now;
            self.value = self.shared.get();
        }
        &self.value
    }
}

/// The limits in force on a listener.
pub type Edge = Shared<Limits>;

/// The descriptors this process may open, after raising its soft limit to the hard one (as Go
/// and nginx's `worker_rlimit_nofile` do: the soft default of 1024 is a relic).
pub fn descriptors() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    }
}

/// The connection cap the descriptors allow: a quarter of them (at least 32) stay for upstream
/// connections, children's pipes and files.
pub fn connection_cap(configured: usize, descriptors: u64) -> usize {
    let reserve = (descriptors / 4).max(32);
    let room = descriptors.saturating_sub(reserve).max(8);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(connection_cap(4096, 256), 192);
        assert_eq!(connection_cap(100, 256), 100);
        assert_eq!(connection_cap(4096, 1 << 20), 4096);
        assert_eq!(connection_cap(4096, 20), 8);
    }

    #[test]
    fn a_cached_copy_follows_a_reload() {
        let shared = Shared::new(1);
        let mut cached = shared.cached();
        assert_eq!(**cached.get(), 1);
        shared.set(2);
        assert_eq!(**cached.get(), 2);
        assert_eq!(*shared.get(), 2);
    }

    #[test]
    fn a_body_may_take_longer_the_larger_it_is() {
        let l = Limits { body_timeout: Duration::from_secs(10), min_body_rate: 1000, ..Limits::default() };
        assert_eq!(l.body_deadline(0), Duration::from_secs(10));
        assert_eq!(l.body_deadline(50_000), Duration::from_secs(60));
    }
}
