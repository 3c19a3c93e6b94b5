//! How often one client address may register a client or start an authorization: the two
//! requests anyone can send that make the gateway write a record. A fixed window per address
//! (IPv6 by its /64), bounded in the addresses it tracks. Behind a reverse proxy every client
//! shares its address: the limits are sized for a team's sign-ins through one address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most (past it, the expired go, then all).
const MAX_ADDRESSES: usize = 65_536;
const WINDOW: Duration = Duration::from_secs(60);

pub struct Limit {
    per_window: u32,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Limit {
    /// `per_minute` requests per address per minute.
    pub fn per_minute(per_minute: u32) -> Limit {
        Limit { per_window: per_minute, seen: Mutex::default() }
    }

    /// Whether a request from `peer` is within the limit (counted if it is); else how long until
    /// it would be.
    pub fn check(&self, peer: IpAddr) -> Result<(), Duration> {
        let key = crate::mcp::session::client_of(peer);
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_ADDRESSES && !seen.contains_key(&key) {
            seen.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if seen.len() >= MAX_ADDRESSES {
                seen.clear();
            }
        }
        let entry = seen.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_window {
            return Err(WINDOW.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_others_theirs() {
        let limit = Limit::per_minute(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.check(a).is_ok());
        }
        let wait = limit.check(a).unwrap_err();
        assert!(wait <= WINDOW && wait > Duration::from_secs(50), "{wait:?}");
        assert!(limit.check("192.0.2.2".parse().unwrap()).is_ok());
        // One IPv6 host is its /64.
        let limit = Limit::per_minute(1);
        assert!(limit.check("2001:db8::1".parse().unwrap()).is_ok());
        assert!(limit.check("2001:db8::2".parse().unwrap()).is_err());
        assert!(limit.check("2001:db8:0:1::1".parse().unwrap()).is_ok());
    }
}
