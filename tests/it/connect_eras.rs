//! `connect` between the eras: a 2026-07-28 client (the official v2 SDK client) in front of a
//! 2025 server (npm's server-everything), and a 2025 client (the official SDK client) in front
//! of a 2026-07-28-only server (tests/fixtures/modern-server.mjs), each through the gateway's
//! translation — a server's questions as input-required results and back, progress streamed.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

/// The v2 SDK client probes with `server/discover`, which connect's 2025 upstream does not
/// know: it is answered by the translation, and so is every request after it — its progress
/// streams, the server's elicitation comes to it as an input-required result answered in its
/// retry, and its `ping` is answered.
#[tokio::test]
async fn a_modern_client_reaches_a_legacy_server_through_connect() {
    let upstream = everything("streamableHttp", 0).await;
    let gw = connect(&upstream.url, &[]).await;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(node())
            .arg(repo().join("tests/clients/modern-client.mjs"))
            .arg(&gw.url)
            .args(["progress", "elicit", "ping"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("{}\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr), gw.output())
    });
    assert!(out.status.success(), "{report}\n{}", gw.output());
    assert_eq!(report["protocol"], "2026-07-28", "{report}");
    assert_eq!(report["echo"], "Echo: modern through mcpgate", "{report}");
    assert_eq!(report["ping"]["status"], 200, "ping: {report}");
    assert_eq!(report["elicit"]["asked"], 1, "{report}");
    assert!(report["elicit"]["text"].as_str().unwrap().contains("Grace Hopper"), "{report}");
    assert_eq!(report["progress"]["progress"], json!([1, 2, 3]), "progress streamed: {report}");
    let tools = report["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| *t == "trigger-elicitation-request"), "{tools:?}");
    assert!(gw.output().contains("the upstream speaks the Legacy era"), "{}", gw.output());
}

/// The SDK client's `initialize` meets a server that has none: connect learns it speaks only
/// 2026-07-28 and serves the client's session through the translation — its tools, a call, the
/// server's progress, and the server's input-required results as elicitation and sampling
/// requests to the client, answered.
#[tokio::test]
async fn a_legacy_client_reaches_a_modern_only_server_through_connect() {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/modern-server.mjs"));
    let upstream = Proc::start("modern fixture", cmd).await;
    let gw = connect(&upstream.url, &[]).await;
    let r = sdk_client(&gw.url, &["tools", "echo", "progress", "elicit", "sampling", "close"]).await;
    assert!(r["tools"].as_array().unwrap().iter().any(|t| *t == "trigger-elicitation-request"), "{r}");
    assert_eq!(r["echo"], "Echo: hello through mcpgate", "{r}");
    let p: Vec<u64> = r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(p, [1, 2, 3], "{r}");
    assert_eq!(r["elicit"]["text"], "Hello, Ada Lovelace (state asked)", "{r}");
    assert_eq!(r["sampling"], "LLM said: sampled by the test client", "{r}\n{}", gw.output());
    assert!(gw.output().contains("the upstream speaks the Modern era"), "{}", gw.output());
}
