//! Speaking 2026-07-28 to a modern-only server through the engine, on behalf of a client of the
//! 2025 era (the stdio bridge's, or `serve`'s): every request stateless with the `_meta` envelope
//! and `Mcp-Method`/`Mcp-Name`, an input-required result turned into questions to the client
//! (through an `Asker`) whose answers go back in a retry — a new id, the server's `requestState`
//! echoed — until the result is complete. Progress across rounds is kept increasing.
//!
//! The client's side of SEP-2243 is done here too, for the client that cannot: the tools a
//! `tools/list` answers whose `x-mcp-header` marks break the rules are not passed on, and a
//! `tools/call` of a listed tool carries the `Mcp-Param-*` headers its marks ask for.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderMap;
use http::header::HeaderValue;
use serde_json::{Value, json};

use super::{Forward, Proxy};
use crate::error::{Error, Kind};
use crate::http::wire;
use crate::jsonrpc::ids::Ids;
use crate::mcp::modern::{self, ClientEnvelope, Outcome};
use crate::mcp::param_headers::{self, Declaration};

/// Most rounds of input a request may need (the SDK's limit is 10).
const MAX_ROUNDS: usize = 10;

/// What a call needs from whoever stands for the client.
pub trait Asker: Send + Sync {
    /// Puts a server's question (`elicitation/create`, `sampling/createMessage`, `roots/list`) to the
    /// client; its result, or why there is none.
    fn ask(&self, method: String, params: Value) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + '_>>;
    /// A notification of the call (progress, logging), as it arrives.
    fn notify(&self, msg: Value);
}

pub struct ModernUpstream {
    proxy: Arc<Proxy>,
    ids: Ids,
    pub version: String,
    /// The `x-mcp-header` marks of each tool the last `tools/list` pages listed, by tool name.
    tool_headers: Mutex<HashMap<String, Vec<Declaration>>>,
}

/// The final answer of a call: `{"result": …}` (without `resultType`) or `{"error": …}`.
pub type Answer = Value;

impl ModernUpstream {
    pub fn new(proxy: Arc<Proxy>, version: &str) -> ModernUpstream {
        ModernUpstream { proxy, ids: Ids::default(), version: version.to_owned(), tool_headers: Mutex::default() }
    }

    /// A request through as many rounds of input as the server needs.
    pub async fn call(
        &self,
        env: &ClientEnvelope,
        log_level: Option<&str>,
        method: &str,
        params: Value,
        asker: &dyn Asker,
    ) -> Result<Answer, String> {
        let name = params
            .get(if method == "resources/read" { "uri" } else { "name" })
            .and_then(Value::as_str)
            .map(str::to_owned);
        let name = name.filter(|_| matches!(method, "tools/call" | "prompts/get" | "resources/read"));
        let mirrored = if method == "tools/call" { self.param_headers(&params) } else { None };
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
            let resp =
                self.leg(env, log_level, method, (name.as_deref(), mirrored.as_ref()), p, &mut progress, asker).await?;
            let Some(result) = resp.get("result").cloned() else {
                return Ok(match resp.get("error") {
                    Some(e) => json!({"error": e}),
                    None => wire::answer(&Error::new(Kind::UpstreamProtocol, "the server's answer had no result")),
                });
            };
            match modern::read_result(result).map_err(|e| format!("the server's result is invalid: {e}"))? {
                Outcome::Complete(mut result) => {
                    if method == "tools/list" {
                        self.learn_tools(&mut result);
                    }
                    return Ok(json!({"result": result}));
                }
                Outcome::InputRequired { requests, state } => {
                    let mut responses = serde_json::Map::new();
                    for (key, method, params) in requests {
                        if !env.can_answer(&method, &params) {
                            return Err(format!(
                                "the server asks the client for {method}, which the client did not declare"
                            ));
                        }
                        responses.insert(key, asker.ask(method, params).await?);
                    }
                    extra = Some((Value::Object(responses), state));
                }
            }
        }
        Err(format!("the server still asked for input after {MAX_ROUNDS} rounds"))
    }

    /// Drops the tools whose `x-mcp-header` marks are invalid from a `tools/list` result (a
    /// client must not call them: the server would refuse whatever headers it sent), and keeps
    /// the marks of the others for their calls.
    fn learn_tools(&self, result: &mut Value) {
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else { return };
        let mut known = self.tool_headers.lock().unwrap_or_else(|p| p.into_inner());
        tools.retain(|tool| {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            match param_headers::scan(tool.get("inputSchema").unwrap_or(&Value::Null)) {
                Ok(marks) => {
                    known.insert(name.to_owned(), marks);
                    true
                }
                Err(why) => {
                    known.remove(name);
                    tracing::warn!(tool = name, "leaving out a tool the server lists: {why}");
                    false
                }
            }
        });
    }

    /// The `Mcp-Param-*` headers of a `tools/call`, from the marks its tool was listed with (a
    /// tool not listed yet gets none, as a client that never listed it would send).
    fn param_headers(&self, params: &Value) -> Option<HeaderMap> {
        let name = params.get("name").and_then(Value::as_str)?;
        let known = self.tool_headers.lock().unwrap_or_else(|p| p.into_inner());
        let h = param_headers::headers(known.get(name)?, params.get("arguments").unwrap_or(&Value::Null));
        (!h.is_empty()).then_some(h)
    }

    /// One modern request upstream; its response message. `headers`: its `Mcp-Name` value and
    /// its `Mcp-Param-*` headers.
    #[allow(clippy::too_many_arguments)]
    async fn leg(
        &self,
        env: &ClientEnvelope,
        log_level: Option<&str>,
        method: &str,
        (name, extra): (Option<&str>, Option<&HeaderMap>),
        mut params: Value,
        progress: &mut Progress,
        asker: &dyn Asker,
    ) -> Result<Value, String> {
        env.apply(&mut params, log_level);
        let id = self.ids.next().text();
        let body = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string();
        let to = Forward {
            version: HeaderValue::try_from(env.version.as_str()).ok(),
            method: HeaderValue::try_from(method).ok(),
            name: name.and_then(|n| HeaderValue::try_from(modern::header_name_value(n)).ok()),
            ..Default::default()
        };
        let resp = self.proxy.send_with(&to, extra, Bytes::from(body)).await;
        let status = resp.status();
        let mut answer = None;
        let end = crate::transport::answer::read(resp, crate::transport::answer::MAX_JSON, |bytes| {
            let Ok(msg) = serde_json::from_slice::<Value>(&bytes) else { return true };
            // A leg carries one request: the response on its stream is its answer.
            if msg.get("method").is_none() && (msg.get("result").is_some() || msg.get("error").is_some()) {
                answer = Some(msg);
                return false;
            }
            if msg.get("method").is_some() && msg.get("id").is_none() && progress.admit(&msg) {
                asker.notify(msg);
            }
            true
        })
        .await;
        if let Some(answer) = answer {
            return Ok(answer);
        }
        Err(match end.broken {
            Some(e) => format!("reading the server's answer failed: {e}"),
            None if end.messages == 0 => format!("the server answered HTTP {status}"),
            None => format!("the server ended the response stream (HTTP {status}) without answering"),
        })
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
