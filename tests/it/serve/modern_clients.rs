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
