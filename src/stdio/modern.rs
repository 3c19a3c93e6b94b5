//! A legacy stdio client in front of a modern-only (2026-07-28) server. The server refuses the
//! client's `initialize` with `-32022` and the revisions it supports; from then on the bridge
//! speaks the modern era upstream and the legacy one downstream:
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::Bridge;
use crate::jsonrpc::codes;
use crate::mcp::headers::{METHOD, NAME, PROTOCOL_VERSION, SESSION_ID};
use crate::mcp::modern::{self, ClientEnvelope, Outcome};
use crate::transport::sse;

/// Most rounds of input a request may need (the SDK's limit is 10).
const MAX_ROUNDS: usize = 10;
/// How long the client may take to answer an input request (a person may be typing).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

pub(super) struct Modern {
    envelope: ClientEnvelope,
    log_level: Mutex<Option<String>>,
    next_id: AtomicU64,
    /// Requests sent to the client, by id, waiting for its answer.
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

impl Modern {
    fn id(&self, prefix: &str) -> String {
        format!("mcpgate-{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

impl Bridge {
    /// The server refused `initialize` and offered `version`: ask it what it is (`server/discover`)
    /// and answer the client's `initialize` from that.
    pub(super) async fn start_modern(self: Arc<Self>, init: &[u8], version: String) {
        let init: Value = serde_json::from_slice(init).unwrap_or_default();
        let client_id = init.get("id").cloned().unwrap_or(Value::Null);
        let params = init.get("params").cloned().unwrap_or_default();
        let client_version = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("2025-11-25").to_owned();
        let m = Arc::new(Modern {
            envelope: ClientEnvelope::from_initialize(&params, &version),
            log_level: Mutex::new(None),
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
        });
        tracing::info!(upstream = %self.proxy.upstream.display, "the server speaks only {version}; translating for this {client_version} client");
        let discover = self.leg(&m, "server/discover", None, json!({}), None).await;
        let answer = match discover {
            Ok(resp) => match resp.get("result") {
                Some(result) => {
                    let _ = self.modern.set(m);
                    json!({"jsonrpc":"2.0","id":client_id,"result":modern::initialize_result(result, &client_version)})
                }
                None => with_id(resp, &client_id),
            },
            Err(e) => error(&client_id, codes::UPSTREAM_PROTOCOL, &e),
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
            self.emit(crate::jsonrpc::error_response(None, codes::PARSE_ERROR, "not JSON"));
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
                    error(&id, -32601, "subscriptions are not offered through this bridge to a modern server")
                        .to_string(),
                );
            }
            (Some("initialize"), Some(id)) => {
                self.emit(error(&id, codes::INVALID_REQUEST, "already initialized").to_string())
            }
            (Some(_), Some(_)) => {
                in_flight.spawn(self.clone().modern_call(m, msg));
            }
            (None, None) => {
                self.emit(crate::jsonrpc::error_response(None, codes::INVALID_REQUEST, "not a JSON-RPC message"))
            }
        }
    }

    /// A client request, through as many rounds of input as the server needs.
    async fn modern_call(self: Arc<Self>, m: Arc<Modern>, msg: Value) {
        let client_id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = msg.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
        let params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
        let name = params
            .get(if method == "resources/read" { "uri" } else { "name" })
            .and_then(Value::as_str)
            .map(str::to_owned);
        let name = name.filter(|_| matches!(method.as_str(), "tools/call" | "prompts/get" | "resources/read"));
        let mut progress = Progress::default();
        let mut extra: Option<(Value, Option<String>)> = None;
        for _ in 0..MAX_ROUNDS {
            let mut p = params.clone();
            if let Some((responses, state)) = extra.take() {
                p["inputResponses"] = responses;
                if let Some(s) = state {
                    p["requestState"] = Value::String(s);
                }
            }
            let resp = match self.leg(&m, &method, name.as_deref(), p, Some(&mut progress)).await {
                Ok(r) => r,
                Err(e) => return self.emit(error(&client_id, codes::UPSTREAM_PROTOCOL, &e).to_string()),
            };
            let Some(result) = resp.get("result").cloned() else {
                return self.emit(with_id(resp, &client_id).to_string());
            };
            match modern::read_result(result) {
                Ok(Outcome::Complete(result)) => {
                    return self.emit(json!({"jsonrpc":"2.0","id":client_id,"result":result}).to_string());
                }
                Ok(Outcome::InputRequired { requests, state }) => match self.ask_client(&m, requests).await {
                    Ok(responses) => extra = Some((responses, state)),
                    Err(e) => return self.emit(error(&client_id, codes::UPSTREAM_PROTOCOL, &e).to_string()),
                },
                Err(e) => {
                    return self.emit(
                        error(&client_id, codes::UPSTREAM_PROTOCOL, &format!("the server's result is invalid: {e}"))
                            .to_string(),
                    );
                }
            }
        }
        self.emit(
            error(
                &client_id,
                codes::UPSTREAM_PROTOCOL,
                &format!("the server still asked for input after {MAX_ROUNDS} rounds"),
            )
            .to_string(),
        );
    }

    /// Sends the server's input requests to the client and collects the answers, keyed as asked.
    async fn ask_client(&self, m: &Modern, requests: Vec<(String, String, Value)>) -> Result<Value, String> {
        let mut pending = Vec::new();
        for (key, method, params) in requests {
            if !m.envelope.can_answer(&method, &params) {
                return Err(format!("the server asks the client for {method}, which the client did not declare"));
            }
            let id = m.id("input");
            let (tx, rx) = oneshot::channel();
            m.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), tx);
            self.emit(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string());
            pending.push((key, id, rx));
        }
        let mut responses = serde_json::Map::new();
        for (key, id, rx) in pending {
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, rx).await;
            m.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            let answer = answer
                .map_err(|_| format!("the client did not answer {key:?} within {ANSWER_TIMEOUT:?}"))?
                .map_err(|_| "the bridge stopped".to_owned())?;
            match answer.get("result") {
                Some(result) => {
                    responses.insert(key, result.clone());
                }
                None => {
                    return Err(format!(
                        "the client refused the server's request {key:?}: {}",
                        answer.get("error").cloned().unwrap_or_default()
                    ));
                }
            }
        }
        Ok(Value::Object(responses))
    }

    /// One modern request upstream; returns its response message. Notifications on its stream
    /// go to the client as they come (progress kept increasing across rounds).
    async fn leg(
        &self,
        m: &Modern,
        method: &str,
        name: Option<&str>,
        mut params: Value,
        progress: Option<&mut Progress>,
    ) -> Result<Value, String> {
        let log_level = m.log_level.lock().unwrap_or_else(|p| p.into_inner()).clone();
        m.envelope.apply(&mut params, log_level.as_deref());
        let id = m.id("req");
        let body = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string();
        let resp =
            self.proxy.clone().handle(self.modern_request(&m.envelope.version, method, name, Bytes::from(body))).await;
        let status = resp.status();
        let is_sse = resp.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let mut body = resp.into_body();
        if !is_sse {
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| format!("reading the server's answer failed: {e}"))?;
            return match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) if v.get("result").is_some() || v.get("error").is_some() => Ok(v),
                _ => Err(format!("the server answered HTTP {status}")),
            };
        }
        let mut progress = progress;
        let mut parser = sse::Parser::new();
        let mut events = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Some(data) = frame.data_ref() else { continue };
            parser.feed(data, &mut events);
            for ev in events.drain(..) {
                let Ok(msg) = serde_json::from_str::<Value>(&ev.data) else { continue };
                if msg.get("id").and_then(Value::as_str) == Some(id.as_str()) && msg.get("method").is_none() {
                    return Ok(msg);
                }
                if msg.get("method").is_some()
                    && msg.get("id").is_none()
                    && progress.as_deref_mut().is_none_or(|p| p.admit(&msg))
                {
                    self.emit(ev.data);
                }
            }
        }
        Err(format!("the server ended the response stream (HTTP {status}) without answering"))
    }

    fn modern_request(&self, version: &str, method: &str, name: Option<&str>, body: Bytes) -> Request<Body> {
        let mut req = self.request(Method::POST, body);
        let h = req.headers_mut();
        h.remove(SESSION_ID);
        if let Ok(v) = HeaderValue::try_from(version) {
            h.insert(PROTOCOL_VERSION, v);
        }
        if let Ok(v) = HeaderValue::try_from(method) {
            h.insert(METHOD, v);
        }
        if let Some(v) = name.and_then(|n| HeaderValue::try_from(modern::header_name_value(n)).ok()) {
            h.insert(NAME, v);
        }
        req
    }
}

/// Progress across the rounds of one request: the server counts each round afresh, the client
/// must see the values only increase.
#[derive(Default)]
struct Progress {
    last: Option<f64>,
}

impl Progress {
    fn admit(&mut self, msg: &Value) -> bool {
        if msg.get("method").and_then(Value::as_str) != Some("notifications/progress") {
            return true;
        }
        let Some(p) = msg.pointer("/params/progress").and_then(Value::as_f64) else { return true };
        if self.last.is_some_and(|l| p <= l) {
            return false;
        }
        self.last = Some(p);
        true
    }
}

fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message}})
}

/// The server's response, answering the client's id instead of ours.
fn with_id(mut resp: Value, id: &Value) -> Value {
    if let Some(m) = resp.as_object_mut() {
        m.insert("id".into(), id.clone());
    }
    resp
}
