//! The ids of the requests mcpgate sends on its own — to a server (its own `initialize`, a
//! client's call under an id the shared server cannot confuse) or to a client (a server's
//! question relayed) — in one format, `"mcpgate-<n>"`, counted per peer. A response is told to
//! be an answer to one of them by its id alone (`is_ours`).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

const PREFIX: &str = "mcpgate-";

/// One peer's counter.
pub struct Ids(AtomicU64);

impl Default for Ids {
    fn default() -> Self {
        Ids(AtomicU64::new(1))
    }
}

impl Ids {
    pub fn next(&self) -> Id {
        Id(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// One id, written as needed.
#[derive(Debug, Clone, Copy)]
pub struct Id(u64);

impl Id {
    /// The id's text: `mcpgate-<n>`.
    pub fn text(self) -> String {
        format!("{PREFIX}{}", self.0)
    }

    /// As a JSON value (a string).
    pub fn value(self) -> Value {
        Value::String(self.text())
    }

    /// As JSON text, quoted: what is spliced into a message's bytes.
    pub fn json(self) -> String {
        format!("\"{PREFIX}{}\"", self.0)
    }
}

/// Whether `raw` (an id as JSON text) is one mcpgate gave.
pub fn is_ours(raw: &str) -> bool {
    raw.strip_prefix('"').is_some_and(|r| r.starts_with(PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_format_in_every_form() {
        let ids = Ids::default();
        let (a, b) = (ids.next(), ids.next());
        assert_eq!(a.text(), "mcpgate-1");
        assert_eq!(b.value(), Value::String("mcpgate-2".into()));
        assert_eq!(b.json(), serde_json::to_string(&b.value()).unwrap());
        assert!(is_ours(&a.json()));
        assert!(!is_ours("\"client-1\"") && !is_ours("1") && !is_ours("mcpgate-1"));
    }
}
