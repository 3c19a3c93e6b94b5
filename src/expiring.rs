//! A bounded map whose entries each live until a deadline: what the gateway keeps of tokens it
//! checked or was given (the tokens verified lately, the tokens exchanged per caller). When it is
//! full, what has expired goes, and if nothing has, everything (simple, and bounded).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

pub struct Expiring<K, V, S> {
    map: HashMap<K, (V, Instant), S>,
    max: usize,
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher + Default> Expiring<K, V, S> {
    pub fn new(max: usize) -> Self {
        Expiring { map: HashMap::default(), max }
    }

    /// The value for `key`, while it lives; an expired one is dropped.
    pub fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.map.get(key) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                self.map.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&mut self, key: K, value: V, until: Instant) {
        if self.map.len() >= self.max {
            let now = Instant::now();
            self.map.retain(|_, (_, u)| *u > now);
            if self.map.len() >= self.max {
                self.map.clear();
            }
        }
        self.map.insert(key, (value, until));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;
    use std::time::Duration;

    use super::*;

    #[test]
    fn entries_live_until_their_deadline_and_the_map_stays_bounded() {
        let mut m: Expiring<String, u32, RandomState> = Expiring::new(4);
        let later = Instant::now() + Duration::from_secs(60);
        m.insert("a".into(), 1, later);
        m.insert("gone".into(), 2, Instant::now());
        assert_eq!(m.get("a"), Some(1));
        assert_eq!(m.get("gone"), None);
        for i in 0..10 {
            m.insert(format!("k{i}"), i, later);
        }
        assert!(m.len() <= 4);
    }
}
