//! Hashing for the tables every request looks into: sessions by id, upstream sessions by the
//! client's session, metrics by server and method.
//!
//! The standard library's SipHash resists keys chosen to collide, at about 200 instructions
//! for a session id — several lookups per request. These tables do not need that resistance:
//! their keys are ids the gateway generated at random, or names from the configuration, so a
//! client can look up what it likes but cannot fill a table with colliding keys. Here: the
//! multiply-rotate hash rustc uses for its own tables, a word at a time.

use std::hash::{BuildHasher, Hasher};

/// `HashMap<K, V, Fast>` for the tables above, and only those.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fast;

impl BuildHasher for Fast {
    type Hasher = Word;

    fn build_hasher(&self) -> Word {
        Word(0)
    }
}

pub struct Word(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl Word {
    fn add(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(K);
    }
}

impl Hasher for Word {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // The table takes its bucket from the low bits and its tag from the high ones; the
        // multiply leaves the high bits well mixed, the rotation brings some of them down.
        self.0.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_alike_and_near_keys_apart() {
        let h = |s: &str| Fast.hash_one(s);
        assert_eq!(h("3f1c9a7e-session"), h(&String::from("3f1c9a7e-session")));
        let ids: std::collections::HashSet<u64> = (0..10_000).map(|i| h(&format!("session-{i}"))).collect();
        assert_eq!(ids.len(), 10_000);
        // Low bits (the bucket) spread too.
        let buckets: std::collections::HashSet<u64> = (0..1024).map(|i| h(&format!("s{i}")) & 1023).collect();
        assert!(buckets.len() > 550, "{}", buckets.len());
        assert_ne!(h("ab"), h("ab\0"));
    }
}
