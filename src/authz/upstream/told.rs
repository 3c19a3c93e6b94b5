//! The client sessions sent to sign in to a server, each under one elicitation while its user's
//! sign-in is pending: asked again, a session gets the same elicitation — and within `QUIET` of
//! being sent, its merged listings stop waiting for it (a user who does not sign in still sees the
//! other servers' tools); when the user has signed in, each is told
//! (`notifications/elicitation/complete`). One entry per user and session, the latest `KEPT`: a
//! client polling fills no more than its own.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sessions remembered per server.
const KEPT: usize = 256;
/// How long after a session was sent to sign in its listings leave the server out.
const QUIET: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Told(Mutex<VecDeque<Entry>>);

struct Entry {
    sub: String,
    session: String,
    elicitation: String,
    sent: Instant,
}

impl Told {
    /// The elicitation `session` of `sub` is sent to sign in under, and whether it was sent
    /// there within `QUIET` (the sign-in still pending).
    pub fn ask(&self, sub: &str, session: &str) -> (String, bool) {
        self.ask_at(sub, session, Instant::now())
    }

    fn ask_at(&self, sub: &str, session: &str, now: Instant) -> (String, bool) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = all.iter_mut().find(|e| e.sub == sub && e.session == session) {
            if now.duration_since(e.sent) < QUIET {
                return (e.elicitation.clone(), true);
            }
            e.sent = now;
            return (e.elicitation.clone(), false);
        }
        if all.len() == KEPT {
            all.pop_front();
        }
        let elicitation = super::super::wire::random();
        let entry =
            Entry { sub: sub.to_owned(), session: session.to_owned(), elicitation: elicitation.clone(), sent: now };
        all.push_back(entry);
        (elicitation, false)
    }

    /// `sub` signed in: the sessions to tell, each with its elicitation (forgotten here).
    pub fn done(&self, sub: &str) -> Vec<(String, String)> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (done, left): (VecDeque<Entry>, VecDeque<Entry>) =
            std::mem::take(&mut *all).into_iter().partition(|e| e.sub == sub);
        *all = left;
        done.into_iter().map(|e| (e.session, e.elicitation)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_keeps_its_elicitation_until_its_user_signs_in() {
        let told = Told::default();
        let (a, again) = told.ask("alice", "s1");
        assert!(!again);
        assert_eq!(told.ask("alice", "s1"), (a.clone(), true), "asked again: the same elicitation");
        let (b, _) = told.ask("bob", "s2");
        assert_ne!(a, b);
        let later = Instant::now() + QUIET;
        assert_eq!(
            told.ask_at("alice", "s1", later),
            (a.clone(), false),
            "sent again once quiet: the same elicitation"
        );
        assert_eq!(told.ask_at("alice", "s1", later), (a.clone(), true));
        for i in 0..1000 {
            told.ask("alice", "s1");
            told.ask("mallory", &format!("m{}", i % 3));
        }
        assert_eq!(told.done("alice"), vec![("s1".to_owned(), a)], "one entry per user and session");
        assert!(told.done("alice").is_empty(), "told once");
        assert_eq!(told.done("bob"), vec![("s2".to_owned(), b)]);
    }
}
