//! Client-facing sessions. The gateway issues its own session ids (128 random bits, hex) and
//! keeps, per session, what it needs to rebuild the upstream session behind the client's back:
//! the client's original `initialize` request, and whatever state the upstream's transport
//! needs (`S`).
//!
//! The table is bounded: at most `Limits::total` sessions, and at most `Limits::per_client` for
//! one client address. A new session over a limit takes the place of the idle session used
//! longest ago (idle: nobody but the table holds it — no request in flight, no open stream); the
//! caller ends the evicted session upstream as an expiry would. When no session is idle, the
//! new one is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use rustc_hash::FxBuildHasher;

pub struct Session<S> {
    /// The id (32 lowercase hex characters) as a header value, ready to send back.
    pub header: HeaderValue,
    /// The client's `initialize` request body, replayed to re-initialize upstream (empty where
    /// nothing is replayed). Always a copy of its own, never a view into a connection's buffer.
    pub initialize: Bytes,
    /// The upstream side of the session.
    pub upstream: S,
    /// The client address the per-client limit counts this session against.
    client: IpAddr,
    /// Milliseconds since `epoch()` at the last use: an atomic, since every request touches it.
    last_used: AtomicU64,
    /// Order of creation: of two sessions last used in the same millisecond, the older goes.
    created: u64,
}

impl<S> Session<S> {
    /// The id the client sends in `Mcp-Session-Id`.
    pub fn id(&self) -> &str {
        // Made from 32 hex characters: always visible ASCII.
        self.header.to_str().unwrap_or_default()
    }

    fn touch(&self) {
        self.last_used.store(now_ms(), Ordering::Relaxed);
    }

    fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// How long since it was last used.
    pub fn idle_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last_used()))
    }

    /// A short, non-secret label for logs.
    pub fn label(&self) -> &str {
        self.id().get(..8).unwrap_or_default()
    }
}

/// A hold on a session for an owner that ends it itself: the table's sweeper (`expire_unheld`)
/// and eviction leave it alone while held; let go, it counts as used just then.
pub struct Lease<S>(Arc<Session<S>>);

impl<S> Lease<S> {
    pub fn new(session: Arc<Session<S>>) -> Lease<S> {
        Lease(session)
    }
}

impl<S> Drop for Lease<S> {
    fn drop(&mut self) {
        self.0.touch();
    }
}

/// Milliseconds since the first call (a process-local monotonic clock).
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// How many sessions the table holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    /// For one client address (an IPv6 client: its /64, which one host usually holds whole).
    pub per_client: usize,
}

impl Default for Limits {
    /// A gateway for a team: 10,000 sessions of about 1 KB each, a tenth of them for any one
    /// address.
    fn default() -> Self {
        Limits { total: 10_000, per_client: 1_000 }
    }
}

impl Limits {
    /// One limit for everyone (`connect`: one user on loopback).
    pub fn global(total: usize) -> Self {
        Limits { total, per_client: total }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    Random(#[from] RandomError),
    /// Over a limit, and no session idle to make room.
    #[error("too many sessions: {max} are open ({setting}) and none is idle; try again later")]
    Full { setting: &'static str, max: usize },
}

/// A new session, and the idle ones it took the place of (to be ended upstream).
pub struct Created<S> {
    pub session: Arc<Session<S>>,
    pub evicted: Vec<Arc<Session<S>>>,
}

pub struct SessionTable<S> {
    inner: RwLock<Inner<S>>,
    /// Sessions created so far (their `created`).
    created: AtomicU64,
    /// Sessions ended to make room for new ones.
    pub evicted: AtomicU64,
    /// New sessions refused: over a limit with none idle.
    pub refused: AtomicU64,
}

struct Inner<S> {
    /// Keyed by the id's 128 bits (no string per session; see `key`). The Fx hash (rustc's own,
    /// from `rustc-hash`) rather than SipHash, which resists keys chosen to collide at several
    /// times the cost, and every request looks here. This table needs no such resistance, nor do
    /// the others that use `FxBuildHasher` (upstream sessions, connections, metrics): their keys
    /// are ids the gateway generated at random or names from the configuration, so a client can
    /// look up what it likes but never fill a table with keys of its choosing.
    map: HashMap<u128, Arc<Session<S>>, FxBuildHasher>,
    /// Each client address's sessions. The standard hash: these keys are the clients' choice.
    clients: HashMap<IpAddr, Vec<u128>>,
    limits: Limits,
}

impl<S> Default for SessionTable<S> {
    fn default() -> Self {
        SessionTable::new(Limits::default())
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

/// The table key of an id as issued: 32 lowercase hex characters, nothing else (an id written
/// any other way is not one the gateway issued).
/// Checked and read in one pass, through a table (every request looks up one or two:
/// `from_str_radix` after a check of its own cost ten times this).
fn key(id: &str) -> Option<u128> {
    const fn digits() -> [u8; 256] {
        let mut t = [0xff; 256];
        let mut i = 0;
        while i < 16 {
            t[b"0123456789abcdef"[i] as usize] = i as u8;
            i += 1;
        }
        t
    }
    static DIGIT: [u8; 256] = digits();
    let id: &[u8; 32] = id.as_bytes().try_into().ok()?;
    // Two halves of 64 bits, each digit's bits or'ed into `seen`: one test at the end for all.
    let (mut hi, mut lo, mut seen) = (0u64, 0u64, 0u8);
    for (h, l) in id[..16].iter().zip(&id[16..]) {
        let (h, l) = (DIGIT[usize::from(*h)], DIGIT[usize::from(*l)]);
        seen |= h | l;
        hi = hi << 4 | u64::from(h);
        lo = lo << 4 | u64::from(l);
    }
    (seen < 16).then_some(u128::from(hi) << 64 | u128::from(lo))
}

/// The address a client's sessions are counted under: IPv4 as it is (also when mapped into
/// IPv6), IPv6 by its /64.
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

impl<S> Inner<S> {
    fn insert(&mut self, k: u128, s: Arc<Session<S>>) {
        self.clients.entry(s.client).or_default().push(k);
        self.map.insert(k, s);
    }

    fn remove(&mut self, k: u128) -> Option<Arc<Session<S>>> {
        let s = self.map.remove(&k)?;
        if let Some(keys) = self.clients.get_mut(&s.client) {
            keys.retain(|x| *x != k);
            if keys.is_empty() {
                self.clients.remove(&s.client);
            }
        }
        Some(s)
    }

    /// The idle session among `keys` used longest ago.
    fn oldest_idle(&self, keys: impl Iterator<Item = u128>) -> Option<u128> {
        keys.filter_map(|k| self.map.get(&k).map(|s| (k, s)))
            // Only the table holds it: no request in flight, no stream open.
            .filter(|(_, s)| Arc::strong_count(s) == 1)
            .min_by_key(|(_, s)| (s.last_used(), s.created))
            .map(|(k, _)| k)
    }

    /// Makes room for one more session of `client`: evicts what the limits require, or says
    /// which limit cannot be met.
    fn make_room(&mut self, client: IpAddr) -> Result<Vec<Arc<Session<S>>>, CreateError> {
        let mut evicted = Vec::new();
        let mine = self.clients.get(&client).map(Vec::as_slice).unwrap_or_default();
        if mine.len() >= self.limits.per_client {
            match self.oldest_idle(mine.iter().copied()) {
                Some(k) => evicted.extend(self.remove(k)),
                None => return Err(CreateError::Full { setting: "maxSessionsPerClient", max: self.limits.per_client }),
            }
        }
        if self.map.len() >= self.limits.total {
            match self.oldest_idle(self.map.keys().copied()) {
                Some(k) => evicted.extend(self.remove(k)),
                None => return Err(CreateError::Full { setting: "maxSessions", max: self.limits.total }),
            }
        }
        Ok(evicted)
    }
}

impl<S> SessionTable<S> {
    pub fn new(limits: Limits) -> Self {
        SessionTable {
            inner: RwLock::new(Inner { map: HashMap::default(), clients: HashMap::new(), limits }),
            created: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<S>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<S>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn limits(&self) -> Limits {
        self.read().limits
    }

    /// New limits (a reload); sessions over them are evicted now, idle ones oldest first, and
    /// returned to be ended upstream. Busy ones stay until they are idle or expire.
    pub fn set_limits(&self, limits: Limits) -> Vec<Arc<Session<S>>> {
        let mut inner = self.write();
        inner.limits = limits;
        let mut evicted = Vec::new();
        let crowded: Vec<IpAddr> =
            inner.clients.iter().filter(|(_, keys)| keys.len() > limits.per_client).map(|(c, _)| *c).collect();
        for client in crowded {
            while inner.clients.get(&client).is_some_and(|keys| keys.len() > limits.per_client) {
                let keys = inner.clients.get(&client).cloned().unwrap_or_default();
                let Some(k) = inner.oldest_idle(keys.into_iter()) else { break };
                evicted.extend(inner.remove(k));
            }
        }
        while inner.map.len() > limits.total {
            let Some(k) = inner.oldest_idle(inner.map.keys().copied()) else { break };
            evicted.extend(inner.remove(k));
        }
        self.evicted.fetch_add(evicted.len() as u64, Ordering::Relaxed);
        evicted
    }

    /// A new session for a client at `peer`, within the limits.
    pub fn create(&self, peer: IpAddr, initialize: &[u8], upstream: S) -> Result<Created<S>, CreateError> {
        let id = new_id()?;
        let k = key(&id).ok_or_else(|| RandomError("an id that is not 32 hex characters".into()))?;
        let header = HeaderValue::try_from(id).map_err(|e| RandomError(e.to_string()))?;
        let client = client_of(peer);
        let session = Arc::new(Session {
            header,
            // A copy: the body may be a slice of the connection's whole read buffer.
            initialize: Bytes::copy_from_slice(initialize),
            upstream,
            client,
            last_used: AtomicU64::new(now_ms()),
            created: self.created.fetch_add(1, Ordering::Relaxed),
        });
        let mut inner = self.write();
        let evicted = match inner.make_room(client) {
            Ok(evicted) => evicted,
            Err(e) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        inner.insert(k, session.clone());
        drop(inner);
        self.evicted.fetch_add(evicted.len() as u64, Ordering::Relaxed);
        Ok(Created { session, evicted })
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session<S>>> {
        let s = self.read().map.get(&key(id)?).cloned()?;
        s.touch();
        Some(s)
    }

    /// `get` without counting as a use (a server's message is no sign of its client).
    pub fn peek(&self, id: &str) -> Option<Arc<Session<S>>> {
        self.read().map.get(&key(id)?).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session<S>>> {
        self.write().remove(key(id)?)
    }

    pub fn len(&self) -> usize {
        self.read().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every session now (to tell them all something).
    pub fn snapshot(&self) -> Vec<Arc<Session<S>>> {
        self.read().map.values().cloned().collect()
    }

    /// Calls `f` on every session, under the table's read lock (`f` must not wait or reenter).
    pub fn for_each(&self, mut f: impl FnMut(&Arc<Session<S>>)) {
        for s in self.read().map.values() {
            f(s);
        }
    }

    /// Removes and returns every session (shutdown).
    pub fn drain(&self) -> Vec<Arc<Session<S>>> {
        let mut inner = self.write();
        inner.clients.clear();
        inner.map.drain().map(|(_, s)| s).collect()
    }

    /// Removes sessions idle for longer than `ttl`; returns them so their upstream sessions can
    /// be ended.
    /// `expire`, but for sessions held elsewhere too (a `Lease`, a request in flight).
    pub fn expire_unheld(&self, ttl: Duration) -> Vec<Arc<Session<S>>> {
        let mut inner = self.write();
        let idle: Vec<u128> = inner
            .map
            .iter()
            .filter(|(_, s)| s.idle_for() >= ttl && Arc::strong_count(s) == 1)
            .map(|(k, _)| *k)
            .collect();
        idle.into_iter().filter_map(|k| inner.remove(k)).collect()
    }

    pub fn expire(&self, ttl: Duration) -> Vec<Arc<Session<S>>> {
        let mut inner = self.write();
        let idle: Vec<u128> = inner.map.iter().filter(|(_, s)| s.idle_for() >= ttl).map(|(k, _)| *k).collect();
        idle.into_iter().filter_map(|k| inner.remove(k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_32_lowercase_hex_characters() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(key(id), u128::from_str_radix(id, 16).ok());
        assert_eq!(key(&"f".repeat(32)), Some(u128::MAX));
        for bad in [
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "",
            "+123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(key(bad), None, "{bad}");
        }
        assert_eq!(key("0123456789abcdef0123456789abcdeg"), None);
        assert_eq!(key("0123456789abcdef0123456789abcdé"), None);
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    #[test]
    fn ids_are_random_and_long() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn a_leased_session_is_neither_swept_nor_evicted_and_counts_as_used_when_let_go() {
        let t = SessionTable::new(Limits { total: 1, per_client: 1 });
        let held = t.create(A, b"{}", "held").unwrap().session;
        let lease = Lease::new(t.get(held.id()).unwrap());
        drop(held);
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.expire_unheld(Duration::ZERO).is_empty(), "held: not swept");
        assert!(t.create(A, b"{}", "another").is_err(), "held: not evicted to make room");
        drop(lease);
        assert!(t.expire_unheld(Duration::from_secs(60)).is_empty(), "let go: used just then");
        assert_eq!(t.expire_unheld(Duration::ZERO).len(), 1, "let go: swept once idle");
    }

    #[test]
    fn table() {
        let t = SessionTable::default();
        let s = t.create(A, b"{}", "up-1").unwrap().session;
        assert_eq!(t.get(s.id()).unwrap().upstream, "up-1");
        assert_eq!(t.get(s.id()).unwrap().header, s.id());
        assert!(t.get("nope").is_none());
        // Only the id exactly as issued finds the session.
        assert!(t.get(&s.id().to_uppercase()).is_none());
        assert!(t.get(&format!("+{}", &s.id()[1..])).is_none());
        assert!(t.expire(Duration::from_secs(60)).is_empty());
        assert_eq!(t.expire(Duration::ZERO).len(), 1);
        assert!(t.is_empty());
    }

    /// Sessions used at the given moments (ms), as if time had passed between them.
    fn aged(
        t: &SessionTable<&'static str>,
        client: IpAddr,
        name: &'static str,
        used: u64,
    ) -> Arc<Session<&'static str>> {
        let s = t.create(client, b"{}", name).unwrap().session;
        s.last_used.store(used, Ordering::Relaxed);
        s
    }

    #[test]
    fn over_the_limit_the_idle_session_used_longest_ago_goes_first() {
        let t = SessionTable::new(Limits { total: 3, per_client: 100 });
        let a = aged(&t, A, "a", 10);
        let b = aged(&t, A, "b", 20);
        let c = aged(&t, A, "c", 30);
        // `a` is used again: `b` is now the one used longest ago.
        a.last_used.store(40, Ordering::Relaxed);
        let (ida, idb, idc) = (a.id().to_owned(), b.id().to_owned(), c.id().to_owned());
        drop((a, b, c));
        let d = t.create(A, b"{}", "d").unwrap();
        assert_eq!(d.evicted.iter().map(|s| s.upstream).collect::<Vec<_>>(), ["b"]);
        assert!(t.get(&idb).is_none());
        assert_eq!(t.len(), 3);
        // A session in use (a request in flight holds it) is never evicted: `c` then `a` go.
        let busy = t.get(d.session.id()).unwrap();
        drop(d);
        let e = t.create(A, b"{}", "e").unwrap();
        let f = t.create(A, b"{}", "f").unwrap();
        let gone: Vec<_> = e.evicted.iter().chain(&f.evicted).map(|s| s.upstream).collect();
        assert_eq!(gone, ["c", "a"]);
        assert!(t.get(&idc).is_none() && t.get(&ida).is_none());
        assert_eq!(t.evicted.load(Ordering::Relaxed), 3);
        // Nothing idle: refused, and the table is as it was.
        let (_e, _f) = (e.session, f.session);
        match t.create(A, b"{}", "g") {
            Err(CreateError::Full { setting: "maxSessions", max: 3 }) => {}
            other => panic!("expected a refusal, got {:?}", other.map(|c| c.session.upstream)),
        }
        assert_eq!(t.refused.load(Ordering::Relaxed), 1);
        assert_eq!(t.len(), 3);
        drop(busy);
    }

    #[test]
    fn of_two_sessions_last_used_in_the_same_millisecond_the_older_goes() {
        let t = SessionTable::new(Limits { total: 2, per_client: 2 });
        for name in ["first", "second"] {
            let _ = aged(&t, A, name, 7);
        }
        let made = t.create(B, b"{}", "third").unwrap();
        assert_eq!(made.evicted.iter().map(|s| s.upstream).collect::<Vec<_>>(), ["first"]);
    }

    #[test]
    fn one_address_cannot_take_the_others_places() {
        let t = SessionTable::new(Limits { total: 10, per_client: 2 });
        let b1 = aged(&t, B, "b1", 1);
        let idb1 = b1.id().to_owned();
        drop(b1);
        // A's flood evicts only A's own sessions, B's older one stays.
        for i in 0..50 {
            let _ = aged(&t, A, "a", 100 + i);
        }
        assert!(t.get(&idb1).is_some(), "B's session was evicted by A's");
        assert_eq!(t.len(), 3);
        assert_eq!(t.evicted.load(Ordering::Relaxed), 48);
        // With both of A's sessions busy, A is refused, and B can still open one.
        let held: Vec<_> = t.snapshot().into_iter().filter(|s| s.upstream == "a").collect();
        assert!(matches!(t.create(A, b"{}", "a"), Err(CreateError::Full { setting: "maxSessionsPerClient", max: 2 })));
        assert!(t.create(B, b"{}", "b2").is_ok());
        drop(held);
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_of(one), client_of(same));
        assert_ne!(client_of(one), client_of(other));
        assert_eq!(client_of("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn lower_limits_from_a_reload_evict_the_idle_excess() {
        let t = SessionTable::new(Limits { total: 10, per_client: 10 });
        for i in 0..6 {
            let _ = aged(&t, A, "a", i);
        }
        let gone = t.set_limits(Limits { total: 4, per_client: 3 });
        assert_eq!(gone.len(), 3);
        assert_eq!(t.len(), 3);
        assert_eq!(t.limits(), Limits { total: 4, per_client: 3 });
    }
}
