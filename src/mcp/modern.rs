//! The 2026-07-28 ("modern") wire form, for speaking to a modern-only server on behalf of a
//! legacy client: recognizing the server's refusal of `initialize`, the per-request `_meta`
//! envelope, `server/discover` as the answer to `initialize`, and input-required results.
//! Pure functions on JSON values; the I/O lives in the front-end that uses them.

use serde_json::{Map, Value, json};

pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// On each notification of a `subscriptions/listen` stream: the listen request's id.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
pub use crate::jsonrpc::codes::UNSUPPORTED_VERSION;

/// A legacy `initialize` as sent to a server whose era is not known yet, and the revision it
/// asks for, to send as `MCP-Protocol-Version` (`None`: not a request for a legacy revision this
/// gateway knows — sent as it came; a modern revision on `initialize` is a contradiction modern
/// servers refuse with -32020). Beside the client's own params it carries the `_meta` envelope
/// every 2026-07-28 request carries (the client's own `_meta` keys kept): a modern-only server
/// reads it as a request of a revision it does not speak and answers -32022 with the revisions
/// it does, instead of refusing a request without the envelope. A legacy server ignores it
/// (`_meta` is allowed in any request's params); one that checks the header against the
/// revisions it knows may refuse it (400), and is asked again as the client asked.
pub fn initialize_probe(init: &[u8]) -> Option<(String, String)> {
    let mut init: Value = serde_json::from_slice(init).ok()?;
    let asked = init.pointer("/params/protocolVersion")?.as_str()?.to_owned();
    if super::era::era_of(Some(&asked)) != Ok(super::era::Era::Legacy) {
        return None;
    }
    let params = init.get_mut("params").filter(|p| p.is_object())?;
    ClientEnvelope::from_initialize(params, &asked).apply(params, None);
    Some((init.to_string(), asked))
}

/// What every modern request carries about the client (built from its `initialize`).
#[derive(Debug, Clone)]
pub struct ClientEnvelope {
    pub version: String,
    pub capabilities: Value,
    pub client_info: Option<Value>,
}

impl ClientEnvelope {
    /// From the legacy `initialize` params: capabilities in modern form (no `tasks`, no
    /// `roots.listChanged`: the modern era has neither).
    pub fn from_initialize(params: &Value, version: &str) -> ClientEnvelope {
        let mut caps = params.get("capabilities").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
        if let Some(map) = caps.as_object_mut() {
            map.remove("tasks");
            if let Some(roots) = map.get_mut("roots").and_then(Value::as_object_mut) {
                roots.remove("listChanged");
            }
        }
        ClientEnvelope {
            version: version.to_owned(),
            capabilities: caps,
            client_info: params.get("clientInfo").cloned(),
        }
    }

    /// Sets the envelope in `params._meta`, keeping the client's own keys (`progressToken`).
    pub fn apply(&self, params: &mut Value, log_level: Option<&str>) {
        if !params.is_object() {
            *params = json!({});
        }
        let Some(p) = params.as_object_mut() else { return };
        let meta = p.entry("_meta").or_insert_with(|| json!({}));
        if !meta.is_object() {
            *meta = json!({});
        }
        let Some(m) = meta.as_object_mut() else { return };
        m.insert(META_VERSION.into(), Value::String(self.version.clone()));
        m.insert(META_CAPABILITIES.into(), self.capabilities.clone());
        if let Some(info) = &self.client_info {
            m.insert(META_CLIENT_INFO.into(), info.clone());
        }
        if let Some(level) = log_level {
            m.insert(META_LOG_LEVEL.into(), Value::String(level.to_owned()));
        }
        // Task augmentation is a 2025 feature the modern core does not know.
        p.remove("task");
    }

    /// Whether the client declared what an input request needs.
    pub fn can_answer(&self, method: &str, params: &Value) -> bool {
        let caps = &self.capabilities;
        match method {
            "elicitation/create" => {
                let Some(e) = caps.get("elicitation") else { return false };
                match params.get("mode").and_then(Value::as_str) {
                    Some("url") => e.get("url").is_some(),
                    _ => e.get("form").is_some() || e.as_object().is_some_and(Map::is_empty),
                }
            }
            "sampling/createMessage" => caps.get("sampling").is_some(),
            "roots/list" => caps.get("roots").is_some(),
            _ => false,
        }
    }
}

/// The legacy `initialize` result for a client, from the server's `server/discover` result.
/// Capabilities this bridge does not relay (list changes and subscriptions need
/// `subscriptions/listen`) are not promised.
pub fn initialize_result(discover: &Value, client_version: &str) -> Value {
    let mut caps = discover.get("capabilities").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    if let Some(map) = caps.as_object_mut() {
        map.remove("tasks");
        for key in ["tools", "prompts", "resources"] {
            if let Some(c) = map.get_mut(key).and_then(Value::as_object_mut) {
                c.remove("listChanged");
                c.remove("subscribe");
            }
        }
    }
    let server_info = discover
        .get("_meta")
        .and_then(|m| m.get(META_SERVER_INFO))
        .or_else(|| discover.get("serverInfo"))
        .cloned()
        .unwrap_or_else(|| json!({ "name": "mcpgate", "version": env!("CARGO_PKG_VERSION") }));
    let legacy = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
    let version = if legacy.contains(&client_version) { client_version } else { "2025-11-25" };
    let mut result = json!({ "protocolVersion": version, "capabilities": caps, "serverInfo": server_info });
    if let Some(i) = discover.get("instructions").filter(|i| i.is_string()) {
        result["instructions"] = i.clone();
    }
    result
}

/// A final result, read for what comes next.
pub enum Outcome {
    /// Done: the result for the client (`resultType` removed: legacy clients never saw it).
    Complete(Value),
    /// The server needs answers first: (key, method, params) per request, and its state.
    InputRequired { requests: Vec<(String, String, Value)>, state: Option<String> },
}

pub fn read_result(mut result: Value) -> Result<Outcome, String> {
    let kind = result.get("resultType").and_then(Value::as_str).unwrap_or("complete").to_owned();
    match kind.as_str() {
        "complete" => {
            if let Some(m) = result.as_object_mut() {
                m.remove("resultType");
            }
            Ok(Outcome::Complete(result))
        }
        "input_required" => {
            let state = result.get("requestState").and_then(Value::as_str).map(str::to_owned);
            let mut requests = Vec::new();
            if let Some(map) = result.get("inputRequests").and_then(Value::as_object) {
                for (key, req) in map {
                    let method = req.get("method").and_then(Value::as_str).ok_or("an input request has no method")?;
                    requests.push((
                        key.clone(),
                        method.to_owned(),
                        req.get("params").cloned().unwrap_or_else(|| json!({})),
                    ));
                }
            }
            if requests.is_empty() && state.is_none() {
                return Err("an input-required result with neither inputRequests nor requestState".into());
            }
            Ok(Outcome::InputRequired { requests, state })
        }
        other => Err(format!("unknown resultType {other:?}")),
    }
}

/// `Mcp-Name` for a value that may not be a plain header value: `=?base64?…?=` (SEP-2243).
pub fn header_name_value(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() || b == b' ') && !name.starts_with("=?") {
        name.to_owned()
    } else {
        use base64::Engine;
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_and_initialize() {
        let init = json!({"protocolVersion":"2025-06-18","capabilities":{"elicitation":{},"roots":{"listChanged":true},"tasks":{}},"clientInfo":{"name":"c","version":"1"}});
        let env = ClientEnvelope::from_initialize(&init, "2026-07-28");
        let mut params = json!({"name":"echo","_meta":{"progressToken":7},"task":{}});
        env.apply(&mut params, Some("info"));
        assert_eq!(params["_meta"]["progressToken"], 7);
        assert_eq!(params["_meta"][META_VERSION], "2026-07-28");
        assert_eq!(params["_meta"][META_CAPABILITIES], json!({"elicitation":{},"roots":{}}));
        assert_eq!(params["_meta"][META_LOG_LEVEL], "info");
        assert!(params.get("task").is_none());
        assert!(env.can_answer("elicitation/create", &json!({"mode":"form"})));
        assert!(!env.can_answer("elicitation/create", &json!({"mode":"url"})));
        assert!(!env.can_answer("sampling/createMessage", &json!({})));

        let discover = json!({"supportedVersions":["2026-07-28"],"capabilities":{"tools":{"listChanged":true},"resources":{"subscribe":true}},"_meta":{META_SERVER_INFO:{"name":"s","version":"2"}},"instructions":"hi"});
        let r = initialize_result(&discover, "2025-06-18");
        assert_eq!(
            r,
            json!({"protocolVersion":"2025-06-18","capabilities":{"tools":{},"resources":{}},"serverInfo":{"name":"s","version":"2"},"instructions":"hi"})
        );
        assert_eq!(initialize_result(&json!({}), "2030-01-01")["protocolVersion"], "2025-11-25");
    }

    #[test]
    fn results() {
        assert!(
            matches!(read_result(json!({"content":[],"resultType":"complete"})), Ok(Outcome::Complete(v)) if v.get("resultType").is_none())
        );
        let r = read_result(
            json!({"resultType":"input_required","inputRequests":{"k":{"method":"roots/list"}},"requestState":"s"}),
        );
        assert!(
            matches!(r, Ok(Outcome::InputRequired { requests, state }) if requests[0].1 == "roots/list" && state.as_deref() == Some("s"))
        );
        assert!(read_result(json!({"resultType":"input_required"})).is_err());
        assert!(read_result(json!({"resultType":"weird"})).is_err());
        assert_eq!(header_name_value("echo"), "echo");
        assert_eq!(header_name_value("héllo"), "=?base64?aMOpbGxv?=");
    }
}
