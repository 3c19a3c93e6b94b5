//! The modern era (2026-07-28) through the gateway: a modern client (stateless requests, the
//! `_meta` envelope, input-required results) in front of 2025 servers, and a 2025 client in
//! front of a modern-only server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

/// The official v2 SDK client, probing with `server/discover`, on every route (`MCP_TOOL_PREFIX`
/// for the merged ones): its requests are stateless, its progress streams, a server's
/// elicitation comes to it as an input-required result answered in its retry, and its `ping`
/// is answered.
#[tokio::test]
async fn a_modern_client_reaches_legacy_servers_on_every_route() {
    let m = Matrix::start("serve-modern", json!({}), json!({}), false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(node())
                .arg(repo().join("tests/clients/modern-client.mjs"))
                .arg(m.url(route))
                .args(["progress", "elicit", "ping"])
                .env("MCP_TOOL_PREFIX", route.prefix())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap()
        .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!("{route}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        });
        assert!(out.status.success(), "{route}: {report}\n{}", m.output());
        assert_eq!(report["protocol"], "2026-07-28", "{route}: {report}");
        assert_eq!(report["echo"], "Echo: modern through mcpgate", "{route}: {report}");
        // Answered by the gateway on every endpoint, though the revision dropped it.
        assert_eq!(report["ping"]["status"], 200, "{route}: ping: {report}");
        assert_eq!(report["ping"]["body"]["id"], "ping-1", "{route}: ping: {report}");
        assert!(report["ping"]["body"]["result"].is_object(), "{route}: ping: {report}");
        assert_eq!(report["elicit"]["asked"], 1, "{route}: {report}");
        assert!(report["elicit"]["text"].as_str().unwrap().contains("Grace Hopper"), "{route}: {report}");
        assert_eq!(report["progress"]["progress"], json!([1, 2, 3]), "{route}: progress streamed: {report}");
        // Last: the listing (see listings.rs for what it holds on each route).
        let elicitation = route.name("trigger-elicitation-request");
        let tools = &report["tools"];
        assert!(
            tools.as_array().unwrap().iter().any(|t| *t == elicitation.as_str()),
            "{route}: {elicitation} not listed: {tools}"
        );
    })
    .await;
}

/// A modern-only (2026-07-28) server behind the gateway, used by a 2025 client (the official
/// SDK), alone and merged: the server refuses `initialize`, the gateway learns it with
/// `server/discover` and speaks its revision, turning its input-required results into
/// elicitation and sampling requests to the client that made the call. (A stdio child is spoken
/// to in 2025 only: there is no modern-only stdio server to put behind the gateway.)
#[tokio::test]
async fn a_legacy_client_reaches_a_modern_only_server_on_every_remote_route() {
    let dir = tempdir("serve-modern-upstream");
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/modern-server.mjs"));
    let upstream = Proc::start("modern fixture", cmd).await;
    let gw = serve_ready(&dir, json!({"remote": {"url": upstream.url}, "local": stdio_everything(&dir)})).await;
    let ctx = Arc::new((gw, upstream));
    on_routes(&ctx, &REMOTE, |ctx, route| async move {
        let gw = &ctx.0;
        let prefix = route.prefix();
        let r = sdk_client_env(
            &route.url(&gw.url),
            &["tools", "echo", "progress", "elicit", "sampling", "close"],
            &[("MCP_TOOL_PREFIX", &prefix)],
        )
        .await;
        let elicitation = route.name("trigger-elicitation-request");
        assert!(r["tools"].as_array().unwrap().iter().any(|t| *t == elicitation.as_str()), "{route}: {r}");
        assert_eq!(r["echo"], "Echo: hello through mcpgate", "{route}: {r}");
        let p: Vec<u64> = r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(p, [1, 2, 3], "{route}: {r}");
        assert_eq!(r["elicit"]["text"], "Hello, Ada Lovelace (state asked)", "{route}: {r}");
        assert_eq!(r["sampling"], "LLM said: sampled by the test client", "{route}: {r}\n{}", gw.output());
    })
    .await;
}

/// A 2026-07-28 request the revision does not allow is refused with HTTP 400 (-32602) before
/// anything is done with it — without `_meta`, without the client's capabilities, with a retry's
/// `inputResponses` that are not answers — and a resource read says how long it may be kept, on
/// every route.
#[tokio::test]
async fn malformed_modern_requests_are_400_and_reads_carry_cache_hints_on_every_route() {
    let m = Matrix::start("serve-modern-shape", json!({}), json!({}), false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let url = m.url(route);
        let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}});
        let post = |method: &'static str, name: Option<String>, params: Value| {
            let url = url.clone();
            async move {
                let mut h = MCP_HEADERS.to_vec();
                h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", method)]);
                if let Some(n) = &name {
                    h.push(("mcp-name", n.as_str()));
                }
                let body = json!({"jsonrpc": "2.0", "id": 3, "method": method, "params": params});
                request("POST", &url, &h, &body.to_string()).await
            }
        };
        let echo = route.name("echo");
        let args = json!({"message": "x"});
        for (params, why) in [
            (json!({"name": echo, "arguments": args}), "no _meta"),
            (
                json!({"name": echo, "arguments": args, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
                "no clientCapabilities",
            ),
            (json!({"name": echo, "arguments": args, "_meta": meta, "inputResponses": null, "requestState": "s"}), "inputResponses null"),
            (json!({"name": echo, "arguments": args, "_meta": meta, "inputResponses": {"input": 5}, "requestState": "s"}), "an answer not an object"),
            (json!({"name": echo, "arguments": args, "_meta": meta, "requestState": 7}), "requestState a number"),
        ] {
            let r = post("tools/call", Some(echo.clone()), params).await;
            assert_eq!(r.status, 400, "{route}: {why}: {}", r.body);
            assert_eq!(r.json()["error"]["code"], json!(-32602), "{route}: {why}: {}", r.body);
        }
        let ok = post("tools/call", Some(echo.clone()), json!({"name": echo, "arguments": args, "_meta": meta})).await;
        assert_eq!(ok.status, 200, "{route}: {}", ok.body);
        let uri = route.uri("demo://resource/static/document/architecture.md");
        let read = post("resources/read", Some(uri.clone()), json!({"uri": uri, "_meta": meta})).await;
        let read = read.message();
        let result = &read["result"];
        assert!(result["contents"].is_array(), "{route}: {read}");
        assert!(result["ttlMs"].is_u64() && result["cacheScope"].is_string(), "{route}: cache hints: {read}");
    })
    .await;
}
