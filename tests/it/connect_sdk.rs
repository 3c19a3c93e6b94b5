//! The official TypeScript SDK client through `mcpgate connect` to npm's server-everything.

use crate::harness::*;

#[tokio::test]
async fn sdk_client_through_connect_to_streamable_http_upstream() {
    let upstream = everything("streamableHttp", 0).await;
    let gw = connect(&upstream.url, &[]).await;
    let r = sdk_client(
        &gw.url,
        &["info", "tools", "echo", "progress", "elicit", "sampling", "resources", "prompts", "close"],
    )
    .await;

    assert_eq!(r["info"]["server"], "mcp-servers/everything");
    assert_eq!(r["info"]["session"], true);
    let tools: Vec<&str> = r["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(tools.contains(&"echo") && tools.contains(&"trigger-elicitation-request"), "{tools:?}");
    assert_eq!(r["echo"], "Echo: hello through mcpgate");
    // Progress notifications arrive, in order, before the result.
    assert_eq!(r["progress"]["progress"], serde_json::json!([1, 2, 3]));
    assert!(r["progress"]["lastProgressAt"].as_u64().unwrap() <= r["progress"]["resultAt"].as_u64().unwrap());
    assert!(r["progress"]["text"].as_str().unwrap().contains("completed"));
    // The server asked the client (elicitation/create) mid-call, and got the client's answer.
    assert_eq!(r["elicit"]["asked"], 1);
    assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"), "{}", r["elicit"]);
    assert!(r["sampling"].as_str().unwrap().contains("sampled by the test client"));
    assert!(r["resources"]["count"].as_u64().unwrap() > 0 && r["resources"]["read"] == 1);
    assert!(r["resources"]["templates"].as_u64().unwrap() > 0);
    assert!(r["prompts"]["names"].as_array().unwrap().len() > 1 && r["prompts"]["got"].as_u64().unwrap() >= 1);
}

/// A legacy HTTP+SSE (2024-11-05) upstream, found by the spec's fallback (initialize POSTed to
/// the URL is refused, so the GET event stream is tried) and forced by `--transport sse`.
#[tokio::test]
async fn sdk_client_through_connect_to_legacy_sse_upstream() {
    let upstream = everything("sse", 0).await;
    for args in [&[][..], &["--transport", "sse"][..]] {
        let gw = connect(&upstream.url, args).await;
        let r = sdk_client(&gw.url, &["info", "tools", "echo", "progress", "elicit", "resources", "prompts", "close"])
            .await;
        assert_eq!(r["info"]["server"], "mcp-servers/everything", "{args:?}");
        assert_eq!(r["echo"], "Echo: hello through mcpgate");
        assert_eq!(r["progress"]["progress"], serde_json::json!([1, 2, 3]));
        assert!(r["progress"]["lastProgressAt"].as_u64().unwrap() <= r["progress"]["resultAt"].as_u64().unwrap());
        assert_eq!(r["elicit"]["asked"], 1);
        assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"));
        assert!(r["resources"]["read"] == 1 && r["prompts"]["got"].as_u64().unwrap() >= 1);
    }
}

/// A modern-era (2026-07-28) client of the official v2 SDK, through `mcpgate connect`, to a server
/// that refuses every legacy request: the stateless path, with its `Mcp-Method`/`Mcp-Name` checks
/// passed, works end to end.
#[tokio::test]
async fn modern_client_through_connect_to_modern_only_upstream() {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/modern-server.mjs"));
    let upstream = Proc::start("modern fixture", cmd).await;
    let gw = connect(&upstream.url, &["-v"]).await;
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::process::Command::new(node())
            .arg(repo().join("tests/clients/modern-client.mjs"))
            .arg(&gw.url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a report");
    assert!(out.status.success(), "{report}\n{}", gw.output());
    assert_eq!(report["protocol"], "2026-07-28");
    assert_eq!(report["tools"][0], "echo");
    assert_eq!(report["echo"], "Echo: modern through mcpgate");
    assert!(!gw.output().contains("session started"), "the modern path keeps no session");
}
