//! Fidelity: what the gateway does not need to change arrives as the server sent it — every key
//! of a tool's schemas and of a result, in the server's order (property order is what form
//! builders show and how arguments are presented to models), compared with the same server
//! spoken to directly.

use serde_json::{Value, json};

use super::*;

/// `v` as text, keys in the order they hold (what a client's parser sees).
fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

/// server-everything's tools through each route, a call's result and an elicitation's form are
/// what the same server says direct: each key for key, in order (its output schema lists
/// `temperature, conditions, humidity`, which sorting would turn round), the prefix aside — to
/// a 2025 client, and the listing and `structuredContent` to a 2026-07-28 client too.
#[tokio::test]
async fn schemas_and_results_keep_their_key_order_on_every_route() {
    let m = Matrix::start("serve-fidelity", json!({}), json!({}), false).await;
    let direct_url = m.remote.lock().await.url.clone();
    let sid = session(&direct_url).await;
    let direct = call(&direct_url, &sid, &[], r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).await.message();
    let direct = Arc::new(direct["result"]["tools"].as_array().unwrap().clone());
    let args = json!({"location": "Chicago"});
    let want =
        call(&direct_url, &sid, &[], &tool_call(json!(3), "get-structured-content", args.clone())).await.message();
    assert_eq!(
        text(&want["result"]["structuredContent"]),
        r#"{"temperature":36,"conditions":"Light rain / drizzle","humidity":82}"#,
        "direct: {want}"
    );
    let form = elicitation_form(&direct_url, &sid, "trigger-elicitation-request").await;
    assert!(text(&form).contains(r#""properties":{"name":"#), "direct: {form}");
    let ctx = Arc::new((m, direct, want, form));
    on_routes(&ctx, &ROUTES, |ctx, route| async move {
        let (m, direct, want, form) = (&ctx.0, &ctx.1, &ctx.2, &ctx.3);
        let url = m.url(route);
        let sid = session(&url).await;
        let listed = call(&url, &sid, &[], r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).await.message();
        let mut compared = 0;
        for tool in listed["result"]["tools"].as_array().unwrap_or_else(|| panic!("{route}: {listed}")) {
            let Some(name) = tool["name"].as_str().unwrap().strip_prefix(&route.prefix()) else { continue };
            let Some(original) = direct.iter().find(|t| t["name"] == name) else { continue };
            let mut tool = tool.clone();
            tool["name"] = json!(name);
            assert_eq!(text(&tool), text(original), "{route}: {name} as listed, and direct");
            compared += 1;
        }
        assert!(compared >= 10, "{route}: only {compared} tools compared: {listed}");
        let name = route.name("get-structured-content");
        let got = call(&url, &sid, &[], &tool_call(json!(3), &name, json!({"location": "Chicago"}))).await.message();
        assert_eq!(text(&got["result"]), text(&want["result"]), "{route}: the call's result, and direct");
        let asked = elicitation_form(&url, &sid, &route.name("trigger-elicitation-request")).await;
        assert_eq!(text(&asked), text(form), "{route}: the form the server asks for, and direct");
        // A 2026-07-28 client (stateless, the `_meta` envelope) gets the same, key for key.
        let got = modern(&url, "tools/call", &name, json!({"name": name, "arguments": {"location": "Chicago"}})).await;
        let (got, want) = (&got["result"]["structuredContent"], &want["result"]["structuredContent"]);
        assert_eq!(text(got), text(want), "{route}: a modern client's structuredContent, and direct");
        let listed = modern(&url, "tools/list", "", json!({})).await;
        let tool = listed["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == name.as_str()).cloned();
        let mut tool = tool.unwrap_or_else(|| panic!("{route}: {name} not listed for a modern client: {listed}"));
        tool["name"] = json!("get-structured-content");
        let original = direct.iter().find(|t| t["name"] == "get-structured-content").unwrap();
        assert_eq!(text(&tool), text(original), "{route}: as listed for a modern client, and direct");
    })
    .await;
}

/// A 2026-07-28 request, stateless, as a modern client sends it; its answer (JSON or the last
/// event of a stream).
async fn modern(url: &str, method: &str, name: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "fidelity", "version": "1"},
    });
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}).to_string();
    let mut h = MCP_HEADERS.to_vec();
    h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", method)]);
    if !name.is_empty() {
        h.push(("mcp-name", name));
    }
    let r = request("POST", url, &h, &body).await;
    assert_eq!(r.status, 200, "{url} {method}: {}", r.body);
    r.message()
}

/// The params of the elicitation request a call of `tool` brings (the form's fields in order).
async fn elicitation_form(url: &str, sid: &str, tool: &str) -> Value {
    let mut s = Sse::post(url, sid, &tool_call(json!(4), tool, json!({}))).await;
    match s.next(std::time::Duration::from_secs(10)).await {
        Next::Message(m) if m["method"] == "elicitation/create" => m["params"].clone(),
        other => panic!("{url}: {tool} asked nothing: {other:?}"),
    }
}
