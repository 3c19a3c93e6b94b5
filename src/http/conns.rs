//! The open client connections: how many, from whom, which of them are idle, and how many bytes
//! of request bodies they hold. The acceptor asks here before a connection is served; when the
//! gateway is full, the connection idle the longest is closed to make room (nginx reuses its
//! keep-alive connections the same way), so idle sockets — a slowloris that never sends, a
//! browser's spare connections — can never keep a client that has something to say out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustc_hash::FxBuildHasher;
use tokio::sync::Notify;

use super::limits::Limits;

#[derive(Default)]
pub struct Conns {
    table: Mutex<Table>,
    /// Bytes of request bodies held at once, across connections.
    buffered: AtomicUsize,
    /// What was shed or refused, for `/metrics` and the logs.
    pub shed: AtomicU64,
    pub refused: AtomicU64,
}

#[derive(Default)]
struct Table {
    next: u64,
    /// Keyed by our own counter: the Fx hash is safe here (see `mcp::session`'s table).
    open: HashMap<u64, Arc<Conn>, FxBuildHasher>,
    per_client: HashMap<IpAddr, usize>,
}

/// One connection as the table sees it.
pub struct Conn {
    client: IpAddr,
    /// When it began waiting for a request, in µs since `epoch()` + 1; 0 while it is busy.
    idle_since: AtomicU64,
    /// How long, in µs, it may wait so (`sweep` closes it after that).
    idle_limit: AtomicU64,
    /// Tells the connection's task to close it.
    close: Notify,
}

/// Why a connection is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `max_connections` are open and none of them is idle.
    Gateway,
    /// `max_connections_per_client` from this address are open and none of them is idle.
    Client,
}

impl Conns {
    /// Registers a new connection from `client`, first closing the longest-idle connection
    /// (of that client, when it is the client's limit that is reached) if there is no room.
    pub fn admit(self: &Arc<Self>, client: IpAddr, limits: &Limits, cap: usize) -> Result<Ticket, Full> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let per_client = limits.max_connections_per_client;
        if per_client > 0 && t.per_client.get(&client).copied().unwrap_or(0) >= per_client {
            if !t.shed_oldest(Some(client)) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(Full::Client);
            }
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        if t.open.len() >= cap {
            if !t.shed_oldest(None) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(Full::Gateway);
            }
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        let id = t.next;
        t.next += 1;
        let conn = Arc::new(Conn {
            client,
            idle_since: AtomicU64::new(0),
            idle_limit: AtomicU64::new(0),
            close: Notify::new(),
        });
        t.open.insert(id, conn.clone());
        *t.per_client.entry(client).or_default() += 1;
        Ok(Ticket { conns: self.clone(), id, conn })
    }

    /// Closes the connection idle the longest (out of descriptors: room for the next accept);
    /// whether there was one.
    pub fn shed_one(&self) -> bool {
        let shed = self.table.lock().unwrap_or_else(|p| p.into_inner()).shed_oldest(None);
        if shed {
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        shed
    }

    /// Closes, every `every`, the connections that waited for a request longer than they may.
    /// One sweep for all connections instead of a timer set and cancelled around every request's
    /// wait: the idle limit is kept to within `every`.
    pub async fn sweep(self: Arc<Self>, every: std::time::Duration, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
            let now = now_us();
            let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
            let expired: Vec<u64> = t
                .open
                .iter()
                .filter(|(_, c)| {
                    let since = c.idle_since.load(Ordering::Acquire);
                    since != 0 && now.saturating_sub(since) > c.idle_limit.load(Ordering::Relaxed)
                })
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                if let Some(conn) = t.remove(id) {
                    conn.close.notify_one();
                }
            }
        }
    }

    pub fn open(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).open.len()
    }

    /// Holds `n` bytes of a request body against `limit`; `None` when they do not fit.
    pub fn hold(self: &Arc<Self>, n: usize, limit: usize) -> Option<Held> {
        let before = self.buffered.fetch_add(n, Ordering::AcqRel);
        if before.saturating_add(n) > limit {
            self.buffered.fetch_sub(n, Ordering::AcqRel);
            return None;
        }
        Some(Held { conns: self.clone(), n })
    }

    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }
}

impl Table {
    fn shed_oldest(&mut self, of: Option<IpAddr>) -> bool {
        let oldest = self
            .open
            .iter()
            .filter(|(_, c)| of.is_none_or(|ip| c.client == ip))
            .filter_map(|(id, c)| match c.idle_since.load(Ordering::Acquire) {
                0 => None,
                since => Some((since, *id)),
            })
            .min();
        let Some((_, id)) = oldest else { return false };
        if let Some(conn) = self.remove(id) {
            conn.close.notify_one();
        }
        true
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Conn>> {
        let conn = self.open.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&conn.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&conn.client);
            }
        }
        Some(conn)
    }
}

/// A connection's place in the table, for as long as it is open.
pub struct Ticket {
    conns: Arc<Conns>,
    id: u64,
    conn: Arc<Conn>,
}

impl Ticket {
    /// The connection waits for a request from now on, for `limit` at most: it may be closed to
    /// make room, and is closed by `Conns::sweep` once the limit has passed.
    pub fn idle(&self, limit: std::time::Duration) {
        self.conn.idle_limit.store(limit.as_micros() as u64, Ordering::Relaxed);
        self.conn.idle_since.store(now_us(), Ordering::Release);
    }

    /// A request began.
    pub fn busy(&self) {
        self.conn.idle_since.store(0, Ordering::Release);
    }

    /// Resolves when the gateway needs this connection's place (it was idle).
    pub async fn closing(&self) {
        self.conn.close.notified().await;
    }

    pub fn conns(&self) -> &Arc<Conns> {
        &self.conns
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.conns.table.lock().unwrap_or_else(|p| p.into_inner()).remove(self.id);
    }
}

/// Request-body bytes held against the gateway's budget until dropped.
pub struct Held {
    conns: Arc<Conns>,
    n: usize,
}

impl Held {
    /// Holds `more` bytes besides; false when they do not fit (what was held stays held).
    pub fn grow(&mut self, more: usize, limit: usize) -> bool {
        match self.conns.hold(more, limit) {
            Some(extra) => {
                self.n += extra.n;
                std::mem::forget(extra);
                true
            }
            None => false,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.conns.buffered.fetch_sub(self.n, Ordering::AcqRel);
    }
}

/// µs since the first call, plus one (0 means "busy").
fn now_us() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: std::time::Duration = std::time::Duration::from_secs(3600);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn room_is_made_by_closing_the_longest_idle_connection() {
        let conns = Arc::new(Conns::default());
        let limits = Limits { max_connections_per_client: 0, ..Limits::default() };
        let a = conns.admit(ip(1), &limits, 3).unwrap();
        let b = conns.admit(ip(1), &limits, 3).unwrap();
        let c = conns.admit(ip(1), &limits, 3).unwrap();
        // Full, and nobody idle: refused.
        assert_eq!(conns.admit(ip(2), &limits, 3).err(), Some(Full::Gateway));
        b.idle(LONG);
        std::thread::sleep(std::time::Duration::from_millis(2));
        a.idle(LONG);
        let d = conns.admit(ip(2), &limits, 3).unwrap();
        // b waited longest: it was told to close, and its place is d's.
        assert!(futures_now(b.closing()));
        assert!(!futures_now(a.closing()));
        assert_eq!(conns.open(), 3);
        drop((a, b, c, d));
        assert_eq!(conns.open(), 0);
        assert_eq!(conns.shed.load(Ordering::Relaxed), 1);
        assert_eq!(conns.refused.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_client_at_its_limit_makes_room_among_its_own() {
        let conns = Arc::new(Conns::default());
        let limits = Limits { max_connections_per_client: 2, ..Limits::default() };
        let other = conns.admit(ip(9), &limits, 100).unwrap();
        other.idle(LONG);
        let a = conns.admit(ip(1), &limits, 100).unwrap();
        let _b = conns.admit(ip(1), &limits, 100).unwrap();
        assert_eq!(conns.admit(ip(1), &limits, 100).err(), Some(Full::Client));
        a.idle(LONG);
        let _c = conns.admit(ip(1), &limits, 100).unwrap();
        assert!(futures_now(a.closing()));
        // The other client's idle connection was not touched.
        assert!(!futures_now(other.closing()));
    }

    #[tokio::test]
    async fn connections_idle_past_their_limit_are_swept() {
        let conns = Arc::new(Conns::default());
        let limits = Limits::default();
        let quick = conns.admit(ip(1), &limits, 10).unwrap();
        let patient = conns.admit(ip(1), &limits, 10).unwrap();
        let busy = conns.admit(ip(1), &limits, 10).unwrap();
        quick.idle(std::time::Duration::from_millis(1));
        patient.idle(LONG);
        let stop = tokio_util::sync::CancellationToken::new();
        let sweeper = tokio::spawn(conns.clone().sweep(std::time::Duration::from_millis(5), stop.clone()));
        tokio::time::timeout(std::time::Duration::from_secs(5), quick.closing()).await.unwrap();
        assert!(!futures_now(patient.closing()) && !futures_now(busy.closing()));
        assert_eq!(conns.open(), 2);
        stop.cancel();
        sweeper.await.unwrap();
    }

    #[test]
    fn bodies_are_held_within_the_budget() {
        let conns = Arc::new(Conns::default());
        let mut a = conns.hold(600, 1000).unwrap();
        assert!(conns.hold(500, 1000).is_none());
        assert!(a.grow(400, 1000));
        assert!(!a.grow(1, 1000));
        assert_eq!(conns.buffered(), 1000);
        drop(a);
        assert_eq!(conns.buffered(), 0);
    }

    /// Whether a future is ready at its first poll.
    fn futures_now(f: impl std::future::Future<Output = ()>) -> bool {
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        f.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_ready()
    }
}
