//! The ticket in a sign-in link: which server, for which user, until when — sealed, so the link
//! names no user (a URL is logged and shown; the spec keeps personal data out of it) and cannot
//! be made or altered by anyone but the gateway. Whoever opens it must still be that user.

use serde::{Deserialize, Serialize};

use crate::store::Sealer;

/// How long a link may be opened after it was given.
const LIFETIME: u64 = 600;
/// What tickets are sealed for (no other sealed value opens as one).
const OWNER: &str = "upstream-sign-in-ticket";

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The server to sign in to.
    pub server: String,
    /// The user it was given to.
    pub sub: String,
    /// Seconds since the epoch.
    pub expires: u64,
}

impl Ticket {
    pub fn new(server: &str, sub: &str) -> Ticket {
        let expires = super::super::state::now_secs() + LIFETIME;
        Ticket { server: server.to_owned(), sub: sub.to_owned(), expires }
    }

    /// Sealed, in URL-safe characters.
    pub fn seal(&self, sealer: &Sealer) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let sealed = sealer.seal(OWNER, &json).unwrap_or_default();
        sealed.trim_end_matches('=').replace('+', "-").replace('/', "_")
    }

    /// The ticket `text` holds, if the gateway sealed it and it is still current.
    pub fn open(sealer: &Sealer, text: &str, now: u64) -> Option<Ticket> {
        if text.len() > 2048 {
            return None;
        }
        let mut standard = text.replace('-', "+").replace('_', "/");
        while !standard.len().is_multiple_of(4) {
            standard.push('=');
        }
        let t: Ticket = serde_json::from_slice(&sealer.open(OWNER, &standard)?).ok()?;
        (t.expires > now).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_only_as_sealed_and_while_current() {
        let dir = |n: &str| {
            let d = std::env::temp_dir().join(format!("mcpgate-ticket-{n}-{}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let sealer = Sealer::load_or_create(&dir("a")).unwrap();
        let t = Ticket::new("github", "alice");
        let text = t.seal(&sealer);
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{text}");
        assert!(!text.contains("alice"), "the link names no user");
        assert_eq!(Ticket::open(&sealer, &text, 0).as_ref(), Some(&t));
        assert_eq!(Ticket::open(&sealer, &text, t.expires), None, "expired");
        let mut altered = text.clone().into_bytes();
        altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(Ticket::open(&sealer, std::str::from_utf8(&altered).unwrap(), 0), None);
        assert_eq!(Ticket::open(&Sealer::load_or_create(&dir("b")).unwrap(), &text, 0), None, "another gateway's");
        let sealed_for_else = sealer.seal("upstream:x:access", &serde_json::to_vec(&t).unwrap()).unwrap();
        assert_eq!(Ticket::open(&sealer, &sealed_for_else, 0), None, "a value sealed for something else");
        for n in ["a", "b"] {
            let _ = std::fs::remove_dir_all(dir(n));
        }
    }
}
