//! Tokens verified lately, so that a client sending the same token on every request has its
//! signature checked once a minute, not every time (an RSA or ECDSA verification costs more than
//! the rest of a proxied call). Keyed by the whole token; an entry lives a minute at most, and
//! never past the token's `exp` (with the leeway), so a key the issuer withdraws stops
//! verifying within the minute. Bounded (`Expiring`).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Caller;

const KEEP: Duration = Duration::from_secs(60);
const MAX_ENTRIES: usize = 4096;

pub struct Verified {
    // The Fx hash (a tenth of SipHash's cost on a 600-byte token): only tokens whose signature
    // verified are inserted, and nobody but the issuer chooses their bytes, so no one can fill a
    // bucket with collisions; a lookup of any other key finds nothing, whatever its hash.
    map: Mutex<crate::expiring::Expiring<Box<str>, Caller, rustc_hash::FxBuildHasher>>,
}

impl Default for Verified {
    fn default() -> Self {
        Verified { map: Mutex::new(crate::expiring::Expiring::new(MAX_ENTRIES)) }
    }
}

impl Verified {
    pub fn get(&self, token: &str) -> Option<Caller> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).get(token)
    }

    /// Keeps `caller` for `token`, which expires at `exp_unix` (seconds, the leeway added).
    pub fn put(&self, token: &str, caller: &Caller, exp_unix: f64) {
        let now_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let left = Duration::try_from_secs_f64(exp_unix - now_unix).unwrap_or_default();
        let until = Instant::now() + left.min(KEEP);
        self.map.lock().unwrap_or_else(|p| p.into_inner()).insert(token.into(), caller.clone(), until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_a_minute_at_most_and_never_past_exp() {
        let v = Verified::default();
        let caller = Caller { subject: Some("alice".into()), ..Caller::default() };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        v.put("fresh", &caller, now + 3600.0);
        v.put("expired", &caller, now - 1.0);
        assert_eq!(v.get("fresh"), Some(caller.clone()));
        assert_eq!(v.get("expired"), None, "past its exp: checked again (and refused)");
        assert_eq!(v.get("other"), None);
        for i in 0..MAX_ENTRIES + 10 {
            v.put(&format!("t{i}"), &caller, now + 3600.0);
        }
        assert!(v.map.lock().unwrap().len() <= MAX_ENTRIES, "bounded");
    }
}
