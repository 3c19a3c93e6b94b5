//! The bounded queue on every path from a server to a client: what a server sends in the course
//! of a call, what it sends on its own (before the dispatcher takes it), and what waits for a
//! client's GET stream. A server can send faster than a client reads, or while no client
//! listens; the queue holds at most its capacity, and the policy is written once, here:
//!
//! - a notification that supersedes a queued one takes its place: progress of the same token,
//!   the same `list_changed`, an update of the same resource;
//! - over the capacity, the oldest log or progress notification is dropped, else the oldest
//!   other notification, else the new notification itself;
//! - requests (a server asking the client something) are never dropped: each one waits for an
//!   answer, so there are no more of them than calls in flight. Responses never travel here.
//!
//! Dropped and superseded messages are counted for `/metrics`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::Notify;

/// Notifications dropped because a queue was full (process-wide, for `/metrics`).
pub static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Notifications replaced by a newer one saying the same thing.
pub static SUPERSEDED: AtomicU64 = AtomicU64::new(0);

/// What waits for a client's GET stream.
pub const SESSION: usize = 256;
/// What a server sends in the course of one call, before the client's stream takes it.
pub const CALL: usize = 256;
/// What servers send on their own, before the dispatcher takes it.
pub const DISPATCH: usize = 1024;

/// How the queue may treat an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Never dropped (a request).
    Keep,
    /// A notification: `chatty` ones (logs, progress) are dropped first; one with a `key` takes
    /// the place of a queued one with the same key.
    Notification { chatty: bool, key: Option<String> },
}

impl Class {
    /// The class of a JSON-RPC message (`scope` sets apart keys of different servers or
    /// sessions sharing a queue).
    pub fn of(msg: &Value, scope: &str) -> Class {
        let Some(method) = msg.get("method").and_then(Value::as_str) else { return Class::Keep };
        if msg.get("id").is_some() {
            return Class::Keep;
        }
        let param = |p: &str| msg.pointer(p).map(Value::to_string).unwrap_or_default();
        match method {
            "notifications/message" => Class::Notification { chatty: true, key: None },
            "notifications/progress" => Class::Notification {
                chatty: true,
                key: Some(format!("{scope} progress {}", param("/params/progressToken"))),
            },
            "notifications/resources/updated" => {
                Class::Notification { chatty: false, key: Some(format!("{scope} updated {}", param("/params/uri"))) }
            }
            m if m.ends_with("/list_changed") => {
                Class::Notification { chatty: false, key: Some(format!("{scope} {m}")) }
            }
            _ => Class::Notification { chatty: false, key: None },
        }
    }
}

/// What a queue carries: anything that can say its class.
pub trait Item {
    fn class(&self) -> Class;
}

impl Item for Value {
    fn class(&self) -> Class {
        Class::of(self, "")
    }
}

struct State<T> {
    items: VecDeque<(T, Class)>,
    senders: usize,
    reader: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    capacity: usize,
}

/// The sending side (cloned for each producer).
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The one reader.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

pub fn bounded<T: Item>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { items: VecDeque::new(), senders: 1, reader: true }),
        ready: Notify::new(),
        capacity,
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Item> Sender<T> {
    /// Queues `item` under the policy above; false when no reader is left (the item is dropped:
    /// a request's reply channel then tells its server the client went away).
    pub fn push(&self, item: T) -> bool {
        let class = item.class();
        let mut state = self.shared.lock();
        if !state.reader {
            return false;
        }
        if let Class::Notification { key: Some(key), .. } = &class
            && let Some(slot) =
                state.items.iter_mut().find(|(_, c)| matches!(c, Class::Notification { key: Some(k), .. } if k == key))
        {
            *slot = (item, class);
            SUPERSEDED.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if state.items.len() >= self.shared.capacity {
            let victim = |chatty_only: bool| move |(_, c): &(T, Class)| matches!(c, Class::Notification { chatty, .. } if *chatty || !chatty_only);
            let oldest =
                state.items.iter().position(victim(true)).or_else(|| state.items.iter().position(victim(false)));
            match (oldest, &class) {
                (Some(i), _) => drop(state.items.remove(i)),
                // Only requests queued: a notification has no place; a request still goes in.
                (None, Class::Notification { .. }) => {
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                (None, Class::Keep) => {}
            }
            if oldest.is_some() {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        state.items.push_back((item, class));
        drop(state);
        self.shared.ready.notify_one();
        true
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender { shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.ready.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            {
                let mut state = self.shared.lock();
                if let Some((item, _)) = state.items.pop_front() {
                    return Some(item);
                }
                if state.senders == 0 {
                    return None;
                }
            }
            // `notify_one` keeps a permit when nobody waits: a push between the look above and
            // this wait is not missed.
            self.shared.ready.notified().await;
        }
    }

    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.lock().items.pop_front().map(|(item, _)| item)
    }

    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.reader = false;
        // What was queued goes now (a request's reply channel among it tells its server).
        state.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log(n: u64) -> Value {
        json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":n}})
    }

    fn drain(rx: &mut Receiver<Value>) -> Vec<Value> {
        std::iter::from_fn(|| rx.try_recv()).collect()
    }

    #[test]
    fn over_capacity_the_oldest_logs_go_and_requests_stay() {
        let (tx, mut rx) = bounded::<Value>(4);
        let ask = json!({"jsonrpc":"2.0","id":"mcpgate-1","method":"elicitation/create","params":{}});
        let changed = json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"});
        tx.push(log(0));
        tx.push(ask.clone());
        tx.push(changed.clone());
        for n in 1..1000 {
            tx.push(log(n));
        }
        // The request and the list change kept; of the logs, the newest.
        assert_eq!(drain(&mut rx), [ask.clone(), changed.clone(), log(998), log(999)]);
        // Full of requests: a notification has no place, requests still do.
        for _ in 0..4 {
            tx.push(ask.clone());
        }
        tx.push(log(5));
        tx.push(changed.clone());
        tx.push(ask.clone());
        assert_eq!(drain(&mut rx), vec![ask.clone(); 5]);
    }

    #[test]
    fn newer_progress_and_repeated_changes_take_the_queued_ones_place() {
        let (tx, mut rx) = bounded::<Value>(100);
        let progress = |t: &str, p: u64| json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":t,"progress":p}});
        let changed = json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"});
        tx.push(progress("a", 1));
        tx.push(changed.clone());
        tx.push(progress("b", 1));
        tx.push(progress("a", 2));
        tx.push(changed.clone());
        assert_eq!(drain(&mut rx), [progress("a", 2), changed, progress("b", 1)]);
    }

    #[tokio::test]
    async fn the_reader_sees_the_end_and_a_gone_reader_refuses() {
        let (tx, mut rx) = bounded::<Value>(2);
        let tx2 = tx.clone();
        tx.push(log(1));
        drop(tx);
        assert_eq!(rx.recv().await, Some(log(1)));
        drop(tx2);
        assert_eq!(rx.recv().await, None);
        let (tx, rx) = bounded::<Value>(2);
        drop(rx);
        assert!(!tx.push(log(1)));
    }
}
