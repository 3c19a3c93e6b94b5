//! A legacy stdio client in front of a modern-only (2026-07-28) server. The server's answer to
//! the client's `initialize` says it is one (`era::detect`: `-32022` and the revisions it
//! supports, `-32020`, `-32601`, or a modern result); from then on the bridge speaks the modern
//! era upstream and the legacy one downstream:
//!
//! - `initialize` is answered here from the server's `server/discover`;
//! - each request goes out statelessly with the `_meta` envelope and `Mcp-Method`/`Mcp-Name`;
//! - an input-required result becomes requests to the client (elicitation, sampling, roots),
//!   whose answers go back in a retry of the original request (with a new id, `requestState`
//!   echoed), until the result is complete;
//! - `ping` and `logging/setLevel` are answered here (the level travels in every `_meta`);
//!   list changes and subscriptions are not promised to the client (they need
//!   `subscriptions/listen`, not relayed yet).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::Bridge;
use crate::connect::modern::{Asker, ModernUpstream};
use crate::error::{Error, Kind};
use crate::http::wire;
use crate::jsonrpc::ids::Ids;
use crate::mcp::modern::{self, ClientEnvelope};

/// How long the client may take to answer an input request (a person may be typing).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

pub(super) struct Modern {
    envelope: ClientEnvelope,
    log_level: Mutex<Option<String>>,
    ids: Ids,
    /// Requests sent to the client, by id, waiting for its answer.
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    upstream: ModernUpstream,
}

/// The stdio client, as the modern driver's interlocutor.
struct ToClient<'a> {
    bridge: &'a Bridge,
    m: &'a Modern,
}

impl Asker for ToClient<'_> {
    fn ask(
        &self,
        method: String,
        params: Value,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send + '_>> {
        Box::pin(async move {
            let id = self.m.ids.next().text();
            let (tx, rx) = oneshot::channel();
            self.m.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), tx);
            self.bridge.emit(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string());
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, rx).await;
            self.m.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            let answer = answer
                .map_err(|_| format!("the client did not answer {method} within {ANSWER_TIMEOUT:?}"))?
                .map_err(|_| "the bridge stopped".to_owned())?;
            match answer.get("result") {
                Some(result) => Ok(result.clone()),
                None => Err(format!(
                    "the client refused the server's {method}: {}",
                    answer.get("error").cloned().unwrap_or_default()
                )),
            }
        })
    }

    fn notify(&self, msg: Value) {
        self.bridge.emit(msg.to_string());
    }
}

impl Bridge {
    /// The server's answer to `initialize` says it speaks only the modern era, `version` of it:
    /// ask it what it is (`server/discover`) and answer the client's `initialize` from that.
    pub(super) async fn start_modern(self: Arc<Self>, init: &[u8], version: String) {
        let init: Value = serde_json::from_slice(init).unwrap_or_default();
        let client_id = init.get("id").cloned().unwrap_or(Value::Null);
        let params = init.get("params").cloned().unwrap_or_default();
        let client_version = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("2025-11-25").to_owned();
        let m = Arc::new(Modern {
            envelope: ClientEnvelope::from_initialize(&params, &version),
            log_level: Mutex::new(None),
            ids: Ids::default(),
            waiting: Mutex::new(HashMap::new()),
            upstream: ModernUpstream::new(self.proxy.clone(), &version),
        });
        tracing::info!(upstream = %self.proxy.upstream.display, "the server speaks only {version}; translating for this {client_version} client");
        let discover =
            m.upstream.call(&m.envelope, None, "server/discover", json!({}), &ToClient { bridge: &self, m: &m }).await;
        let answer = match discover {
            Ok(a) => match a.get("result") {
                Some(result) => {
                    let r = json!({"jsonrpc":"2.0","id":client_id,"result":modern::initialize_result(result, &client_version)});
                    let _ = self.modern.set(m);
                    r
                }
                None => json!({"jsonrpc":"2.0","id":client_id,"error":a.get("error").cloned().unwrap_or_default()}),
            },
            Err(e) => error(&client_id, Error::new(Kind::UpstreamProtocol, e)),
        };
        self.emit(answer.to_string());
    }

    /// One message from the client, in a modern session.
    pub(super) async fn modern_dispatch(
        self: Arc<Self>,
        m: Arc<Modern>,
        body: Bytes,
        in_flight: &mut tokio::task::JoinSet<()>,
    ) {
        let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
            self.emit(wire::message(&Error::new(Kind::Parse, "not JSON"), None));
            return;
        };
        let method = msg.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = msg.get("id").cloned();
        match (method.as_deref(), id) {
            // A response: the answer to one of our input requests.
            (None, Some(id)) => {
                let key = id.as_str().map(str::to_owned).unwrap_or_else(|| id.to_string());
                let waiter = m.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(msg);
                    }
                    None => tracing::debug!("dropping a response to no request of ours"),
                }
            }
            // Notifications have no modern counterpart the bridge must send: `initialized`
            // and `roots/list_changed` do not exist there; cancellation is closing the stream.
            (Some(method), None) => tracing::debug!("not forwarding the notification {method} to a modern server"),
            (Some("ping"), Some(id)) => self.emit(json!({"jsonrpc":"2.0","id":id,"result":{}}).to_string()),
            (Some("logging/setLevel"), Some(id)) => {
                let level = msg.pointer("/params/level").and_then(Value::as_str).map(str::to_owned);
                *m.log_level.lock().unwrap_or_else(|p| p.into_inner()) = level;
                self.emit(json!({"jsonrpc":"2.0","id":id,"result":{}}).to_string());
            }
            (Some("resources/subscribe" | "resources/unsubscribe"), Some(id)) => {
                self.emit(
                    error(
                        &id,
                        Error::new(
                            Kind::MethodNotFound,
                            "subscriptions are not offered through this bridge to a modern server",
                        ),
                    )
                    .to_string(),
                );
            }
            (Some("initialize"), Some(id)) => {
                self.emit(error(&id, Error::new(Kind::BadRequest, "already initialized")).to_string())
            }
            (Some(_), Some(_)) => {
                in_flight.spawn(self.clone().modern_call(m, msg));
            }
            (None, None) => self.emit(wire::message(&Error::new(Kind::BadRequest, "not a JSON-RPC message"), None)),
        }
    }

    /// A client request, through as many rounds of input as the server needs.
    async fn modern_call(self: Arc<Self>, m: Arc<Modern>, msg: Value) {
        let client_id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = msg.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
        let params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
        let level = m.log_level.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let answer =
            m.upstream.call(&m.envelope, level.as_deref(), &method, params, &ToClient { bridge: &self, m: &m }).await;
        let out = match answer {
            Ok(mut a) => {
                let mut out = json!({"jsonrpc":"2.0","id":client_id});
                for k in ["result", "error"] {
                    if let Some(v) = a.get_mut(k) {
                        out[k] = v.take();
                    }
                }
                out
            }
            Err(e) => error(&client_id, Error::new(Kind::UpstreamProtocol, e)),
        };
        self.emit(out.to_string());
    }
}

/// An error message answering `id`.
fn error(id: &Value, e: Error) -> Value {
    let mut m = wire::answer(&e);
    m["jsonrpc"] = json!("2.0");
    m["id"] = id.clone();
    m
}
