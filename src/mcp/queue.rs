//! The bounded queue on every path from a server to a client: in `serve`, what a server sends in
//! the course of a call, what it sends on its own (before the dispatcher takes it), and what
//! waits for a client's GET stream; in `connect`, what an HTTP+SSE upstream's event stream
//! carries to the client's streams; in `stdio`, what waits for the client to read its stdout.
//! A server can send faster than a client reads, or while no client listens; the queue holds at
//! most its capacity, and the policy is written once, here:
//!
//! - a notification that supersedes a queued one takes its place: progress of the same token,
//!   the same `list_changed`, an update of the same resource;
//! - over the capacity, the oldest log or progress notification is dropped, else the oldest
//!   other notification, else the new notification itself;
//! - responses are never dropped: each answers a request of the reader's own, so there are no
//!   more of them than the reader asked for;
//! - requests (a server asking the client something) are never dropped to make room, but a
//!   queue holds at most `capacity` of them: one more is refused (dropped at once, which closes
//!   its reply channel, so its server gets an error answer instead of a growing queue);
//! - while the reader is not listening (a session with no GET stream open), the queue keeps only
//!   what must not be lost or replaces its like (responses, requests, list changes, resource
//!   updates): logs, progress and other notifications have nobody to go to and are dropped, so
//!   10,000 idle sessions hold none of a server's log flood;
//! - queues towards clients share one process-wide budget of droppable notifications
//!   (`CLIENTS`): once it is spent, a queue holding `FLOOR` or more of them makes room by
//!   dropping its own oldest. A client that reads keeps getting its notifications (its queue is
//!   nearly empty) while those that do not cannot together hold more than the budget plus
//!   `FLOOR` each — the same order as the 16 events an SSE body already holds per stream.
//!
//! Dropped, superseded and refused messages are counted for `/metrics`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::Notify;

/// Notifications dropped because a queue was full or nobody listened (process-wide).
pub static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Notifications replaced by a newer one saying the same thing.
pub static SUPERSEDED: AtomicU64 = AtomicU64::new(0);
/// Server→client requests refused because a queue already held `capacity` of them.
pub static REFUSED: AtomicU64 = AtomicU64::new(0);

/// What waits for a client's GET stream.
pub const SESSION: usize = 256;
/// What a server sends in the course of one call, before the client's stream takes it.
pub const CALL: usize = 256;
/// What servers send on their own, before the dispatcher takes it.
pub const DISPATCH: usize = 1024;
/// Droppable notifications a queue may hold however spent the budget is.
pub const FLOOR: usize = 16;

/// A count of droppable notifications shared by many queues.
pub struct Budget {
    queued: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub const fn new(limit: usize) -> Budget {
        Budget { queued: AtomicUsize::new(0), limit }
    }

    /// Droppable notifications queued now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    fn spent(&self) -> bool {
        self.queued() >= self.limit
    }
}

/// The budget of every queue towards a client (process-wide): 16,384 notifications, a few MB
/// of typical log lines.
pub static CLIENTS: Budget = Budget::new(16 * 1024);

/// How the queue may treat an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Never dropped (a response).
    Keep,
    /// Never dropped to make room, but at most `capacity` queued (a server→client request).
    Request,
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
            return Class::Request;
        }
        let param = |p: &str| msg.pointer(p).map(Value::to_string).unwrap_or_default();
        Class::notification(method, scope, param("/params/progressToken"), param("/params/uri"))
    }

    /// The class of a message as it came, unparsed (only its envelope is read). A batch or
    /// something that is not JSON-RPC is kept, as a response would be: only an upstream's answer
    /// to a batch the client sent comes as one.
    pub fn of_raw(msg: &[u8], scope: &str) -> Class {
        let Ok(crate::jsonrpc::Payload::Single(m)) = crate::jsonrpc::Payload::parse(msg) else { return Class::Keep };
        let Some(method) = m.method() else { return Class::Keep };
        if m.id.is_some() {
            return Class::Request;
        }
        let uri = || {
            #[derive(serde::Deserialize)]
            struct Uri<'a> {
                #[serde(borrow)]
                uri: Option<&'a serde_json::value::RawValue>,
            }
            m.params
                .and_then(|p| serde_json::from_str::<Uri>(p.get()).ok())
                .and_then(|u| u.uri.map(|r| r.get().to_owned()))
                .unwrap_or_default()
        };
        match method {
            "notifications/progress" => {
                Class::notification(method, scope, m.progress_token().unwrap_or_default(), String::new())
            }
            "notifications/resources/updated" => Class::notification(method, scope, String::new(), uri()),
            _ => Class::notification(method, scope, String::new(), String::new()),
        }
    }

    fn notification(method: &str, scope: &str, token: String, uri: String) -> Class {
        match method {
            "notifications/message" => Class::Notification { chatty: true, key: None },
            "notifications/progress" => {
                Class::Notification { chatty: true, key: Some(format!("{scope} progress {token}")) }
            }
            "notifications/resources/updated" => {
                Class::Notification { chatty: false, key: Some(format!("{scope} updated {uri}")) }
            }
            m if m.ends_with("/list_changed") => {
                Class::Notification { chatty: false, key: Some(format!("{scope} {m}")) }
            }
            _ => Class::Notification { chatty: false, key: None },
        }
    }

    /// Kept while nobody listens: what must not be lost, or replaces its like.
    fn kept_unheard(&self) -> bool {
        !matches!(self, Class::Notification { key: None, .. } | Class::Notification { chatty: true, .. })
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

/// A message as it came (the `stdio` bridge, `connect`'s HTTP+SSE routing).
impl Item for bytes::Bytes {
    fn class(&self) -> Class {
        Class::of_raw(self, "")
    }
}

struct State<T> {
    items: VecDeque<(T, Class)>,
    senders: usize,
    reader: bool,
    /// Whether the reader listens now (a GET stream is open).
    listening: bool,
    /// Droppable notifications, requests and responses among `items`.
    droppable: usize,
    requests: usize,
    responses: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    capacity: usize,
    budget: Option<&'static Budget>,
}

/// The sending side (cloned for each producer).
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The one reader.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A queue towards a client: within the process-wide budget `CLIENTS`.
pub fn bounded<T: Item>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    within(capacity, Some(&CLIENTS))
}

/// A queue with its own bound only (the dispatcher's, one for the whole gateway).
pub fn unbudgeted<T: Item>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    within(capacity, None)
}

/// A queue within `budget`, if any.
pub fn within<T: Item>(capacity: usize, budget: Option<&'static Budget>) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            reader: true,
            listening: true,
            droppable: 0,
            requests: 0,
            responses: 0,
        }),
        ready: Notify::new(),
        capacity,
        budget,
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accounts for an item of `class` entering (`+1`) or leaving (`-1`) the queue.
    fn count(&self, state: &mut State<T>, class: &Class, entering: bool) {
        let (field, budgeted) = match class {
            Class::Notification { .. } => (&mut state.droppable, true),
            Class::Request => (&mut state.requests, false),
            Class::Keep => (&mut state.responses, false),
        };
        if entering {
            *field += 1;
        } else {
            *field -= 1;
        }
        if let (true, Some(b)) = (budgeted, self.budget) {
            if entering {
                b.queued.fetch_add(1, Ordering::Relaxed);
            } else {
                b.queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Removes the oldest log or progress notification, else the oldest other one (counted as
    /// dropped), if there is one.
    fn drop_oldest(&self, state: &mut State<T>) -> Option<T> {
        let victim = |chatty_only: bool| move |(_, c): &(T, Class)| matches!(c, Class::Notification { chatty, .. } if *chatty || !chatty_only);
        let i = state.items.iter().position(victim(true)).or_else(|| state.items.iter().position(victim(false)))?;
        let (item, class) = state.items.remove(i)?;
        self.count(state, &class, false);
        DROPPED.fetch_add(1, Ordering::Relaxed);
        Some(item)
    }

    fn pop(&self) -> Option<T> {
        let mut state = self.lock();
        let (item, class) = state.items.pop_front()?;
        self.count(&mut state, &class, false);
        Some(item)
    }
}

impl<T: Item> Sender<T> {
    /// Queues `item` under the policy above. False when it was not queued and the sender may
    /// want to know: no reader is left, or a request was refused (the item is dropped: a
    /// request's reply channel then tells its server). A dropped notification is not reported.
    pub fn push(&self, item: T) -> bool {
        self.push_as(item.class(), || item)
    }

    /// `push`, for an item of a class known already, made only if the queue takes it: a
    /// message told to thousands of sessions is not copied for those that drop it.
    pub fn push_as(&self, class: Class, make: impl FnOnce() -> T) -> bool {
        let shared = &*self.shared;
        let mut state = shared.lock();
        if !state.reader {
            return false;
        }
        if !state.listening && !class.kept_unheard() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if let Class::Notification { key: Some(key), .. } = &class
            && let Some(slot) =
                state.items.iter_mut().find(|(_, c)| matches!(c, Class::Notification { key: Some(k), .. } if k == key))
        {
            let old = std::mem::replace(slot, (make(), class));
            drop(state);
            drop(old);
            SUPERSEDED.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let full = state.items.len() >= shared.capacity;
        let mut evicted = None;
        match &class {
            Class::Request if state.requests >= shared.capacity => {
                drop(state);
                REFUSED.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "a server asked a client more than {} questions it has not read; refused",
                    shared.capacity
                );
                return false;
            }
            Class::Notification { .. } => {
                let budget_spent = shared.budget.is_some_and(Budget::spent) && state.droppable >= FLOOR;
                if full || budget_spent {
                    match shared.drop_oldest(&mut state) {
                        Some(old) => evicted = Some(old),
                        // Only requests and responses queued: a notification has no place.
                        None => {
                            DROPPED.fetch_add(1, Ordering::Relaxed);
                            return true;
                        }
                    }
                }
            }
            // A request or a response still goes in; a notification makes room if there is one.
            _ if full => evicted = shared.drop_oldest(&mut state),
            _ => {}
        }
        shared.count(&mut state, &class, true);
        state.items.push_back((make(), class));
        drop(state);
        // Dropped outside the lock (a request's reply channel wakes its server).
        drop(evicted);
        shared.ready.notify_one();
        true
    }
}

impl<T> Sender<T> {
    /// Responses waiting: what a producer that also reads its reader's requests (the `stdio`
    /// bridge) watches to stop reading them while its reader does not read.
    pub fn responses(&self) -> usize {
        self.shared.lock().responses
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
            if let Some(item) = self.shared.pop() {
                return Some(item);
            }
            if self.shared.lock().senders == 0 {
                // A push may have come in between the two looks.
                return self.shared.pop();
            }
            // `notify_one` keeps a permit when nobody waits: a push between the look above and
            // this wait is not missed.
            self.shared.ready.notified().await;
        }
    }

    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.pop()
    }

    /// Whether the reader listens: a queue whose reader does not (a session with no GET stream
    /// open) takes only what `Class::kept_unheard` keeps.
    pub fn listen(&self, listening: bool) {
        self.shared.lock().listening = listening;
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
        let drained = {
            let mut state = self.shared.lock();
            state.reader = false;
            let drained = std::mem::take(&mut state.items);
            for (_, class) in &drained {
                self.shared.count(&mut state, class, false);
            }
            drained
        };
        // What was queued goes now (a request's reply channel among it tells its server).
        drop(drained);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log(n: u64) -> Value {
        json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":n}})
    }

    fn drain<T>(rx: &mut Receiver<T>) -> Vec<T> {
        std::iter::from_fn(|| rx.try_recv()).collect()
    }

    fn budget(limit: usize) -> &'static Budget {
        Box::leak(Box::new(Budget::new(limit)))
    }

    #[test]
    fn over_capacity_the_oldest_logs_go_and_requests_stay_up_to_the_capacity() {
        let (tx, mut rx) = within::<Value>(4, Some(budget(1000)));
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
        // Full of requests: a notification has no place, and a fifth request is refused.
        for _ in 0..4 {
            assert!(tx.push(ask.clone()));
        }
        tx.push(log(5));
        tx.push(changed.clone());
        assert!(!tx.push(ask.clone()));
        assert_eq!(drain(&mut rx), vec![ask.clone(); 4]);
        // A response is never dropped nor refused.
        let answer = json!({"jsonrpc":"2.0","id":7,"result":{}});
        for _ in 0..10 {
            assert!(tx.push(answer.clone()));
        }
        assert_eq!(drain(&mut rx).len(), 10);
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

    #[test]
    fn raw_messages_are_classed_as_parsed_ones() {
        let cases = [
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t1","progress":1}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/custom","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
        ];
        for raw in cases {
            let parsed: Value = serde_json::from_str(raw).unwrap();
            assert_eq!(Class::of_raw(raw.as_bytes(), "s"), Class::of(&parsed, "s"), "{raw}");
        }
        assert_eq!(Class::of_raw(b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}]", ""), Class::Keep);
        assert_eq!(Class::of_raw(b"not json", ""), Class::Keep);
    }

    #[test]
    fn nobody_listening_only_what_must_not_be_lost_is_kept() {
        let (tx, mut rx) = within::<Value>(100, Some(budget(1000)));
        rx.listen(false);
        let ask = json!({"jsonrpc":"2.0","id":"mcpgate-1","method":"roots/list"});
        let changed = json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"});
        let custom = json!({"jsonrpc":"2.0","method":"notifications/custom"});
        for n in 0..50 {
            tx.push(log(n));
            tx.push(custom.clone());
        }
        tx.push(changed.clone());
        tx.push(ask.clone());
        assert_eq!(drain(&mut rx), [changed, ask]);
        rx.listen(true);
        tx.push(log(1));
        assert_eq!(drain(&mut rx), [log(1)]);
    }

    #[test]
    fn queues_share_the_budget_and_each_keeps_its_floor() {
        let b = budget(100);
        let mut queues: Vec<_> = (0..4).map(|_| within::<Value>(256, Some(b))).collect();
        for n in 0..1000 {
            for (tx, _) in &queues {
                tx.push(log(n));
            }
        }
        // Four queues that are not read share the budget, each holding the newest.
        let held: Vec<usize> = queues.iter().map(|(_, rx)| rx.len()).collect();
        assert_eq!(held, [25; 4]);
        assert_eq!(b.queued(), 100);
        // One more still gets its floor, and no more.
        queues.push(within::<Value>(256, Some(b)));
        for n in 0..1000 {
            queues[4].0.push(log(n));
        }
        assert_eq!(queues[4].1.len(), FLOOR);
        assert_eq!(b.queued(), 100 + FLOOR);
        // A reader that reads keeps getting what comes.
        let (tx, rx) = &mut queues[0];
        assert_eq!(drain(rx).last(), Some(&log(999)));
        tx.push(log(5000));
        assert_eq!(drain(rx), [log(5000)]);
        drop(queues);
        assert_eq!(b.queued(), 0, "what a queue held is given back when it goes");
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
