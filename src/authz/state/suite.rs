//! The contract every state backend keeps, as one test: run it against each (`embedded.rs`
//! does; a shared backend must too).

use std::sync::Arc;
use std::time::Duration;

use super::{State, Table};

/// Everything but restarts: reads and writes, tables kept apart, compare-and-swap, single
/// consumption under contention, lifetimes, listing.
pub async fn run(state: Arc<dyn State>) {
    let s = &*state;
    // Absent, written, read back; tables do not share keys.
    assert_eq!(s.get(Table::Client, "c1").await.unwrap(), None);
    s.put(Table::Client, "c1", b"one", None).await.unwrap();
    assert_eq!(s.get(Table::Client, "c1").await.unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(s.get(Table::Code, "c1").await.unwrap(), None);
    // Compare-and-swap: only from the value expected.
    assert!(!s.swap(Table::Client, "c1", Some(b"two"), Some(b"three"), None).await.unwrap());
    assert!(!s.swap(Table::Client, "c1", None, Some(b"three"), None).await.unwrap());
    assert!(s.swap(Table::Client, "c1", Some(b"one"), Some(b"two"), None).await.unwrap());
    assert_eq!(s.get(Table::Client, "c1").await.unwrap().as_deref(), Some(&b"two"[..]));
    assert!(s.swap(Table::Client, "c1", Some(b"two"), None, None).await.unwrap());
    assert_eq!(s.get(Table::Client, "c1").await.unwrap(), None);
    // A record taken by 32 callers at once is had by exactly one.
    s.put(Table::Code, "once", b"code", Some(Duration::from_secs(60))).await.unwrap();
    let takers: Vec<_> = (0..32)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move { state.take(Table::Code, "once").await.unwrap() })
        })
        .collect();
    let mut had = 0;
    for t in takers {
        had += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(had, 1, "a single-use record was taken {had} times");
    // 32 concurrent swaps from one value: one wins.
    s.put(Table::Refresh, "r", b"live", None).await.unwrap();
    let swappers: Vec<_> = (0..32u8)
        .map(|i| {
            let state = state.clone();
            tokio::spawn(async move { state.swap(Table::Refresh, "r", Some(b"live"), Some(&[i]), None).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in swappers {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    // Lifetimes: an expired record is absent, to reads, swaps and listings alike.
    s.put(Table::Login, "short", b"x", Some(Duration::from_secs(1))).await.unwrap();
    s.put(Table::Key, "k1", b"a", None).await.unwrap();
    s.put(Table::Key, "k2", b"b", Some(Duration::from_secs(1))).await.unwrap();
    s.put(Table::Consent, "k3", b"other table", None).await.unwrap();
    assert!(s.get(Table::Login, "short").await.unwrap().is_some());
    assert_eq!(s.all(Table::Key).await.unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(s.get(Table::Login, "short").await.unwrap(), None);
    assert!(s.swap(Table::Login, "short", None, Some(b"y"), None).await.unwrap(), "an expired record counts as absent");
    let keys = s.all(Table::Key).await.unwrap();
    assert_eq!(keys, vec![("k1".to_owned(), b"a".to_vec())]);
    s.put(Table::Family, "kept", b"across restarts", None).await.unwrap();
}

/// After `run` and a restart of the backend: what was written is still there.
pub async fn survives(state: Arc<dyn State>) {
    assert_eq!(state.get(Table::Family, "kept").await.unwrap().as_deref(), Some(&b"across restarts"[..]));
    assert_eq!(state.get(Table::Code, "once").await.unwrap(), None);
}
