//! Other clients' configuration files served as they are: Claude Desktop's
//! `claude_desktop_config.json` with its own top-level keys and server names Claude accepts
//! (`"time.v2"`, `"my memory"`), named unchanged in paths, logs and metrics, their tools prefixed
//! with a safe form of the name.

use serde_json::json;

use super::*;

/// A Claude Desktop file, unchanged: its `preferences` and `isUsingBuiltInNodeForMcp` ignored (a
/// debug line names them), `"time.v2"` (server-everything, stdio) and `"my memory"` (a small echo
/// server) listed on `/mcp` as `time_v2__…` and `my_memory__…`, called there and alone on
/// `/servers/time.v2/mcp` and `/servers/my%20memory/mcp`, and counted under their own names.
#[tokio::test]
async fn a_claude_desktop_file_serves_unchanged() {
    let dir = tempdir("serve-claude-desktop");
    let config = dir.join("claude_desktop_config.json");
    // Written as Claude Desktop writes it, keys in its order (`json!` would sort them).
    let file = format!(
        r#"{{
  "isUsingBuiltInNodeForMcp": true,
  "preferences": {{
    "menuBarEnabled": false,
    "quickEntryShortcut": "off"
  }},
  "mcpServers": {{
    "time.v2": {},
    "my memory": {}
  }}
}}
"#,
        stdio_everything(&dir),
        echo_server(&dir)
    );
    std::fs::write(&config, file).unwrap();
    let gw = serve(&config).await;
    ready(&gw).await;
    assert!(
        gw.output().contains("other clients' keys, ignored: isUsingBuiltInNodeForMcp, preferences"),
        "{}",
        gw.output()
    );
    let url = gw.url.clone();
    // The gateway is ready with one server up (no `mcpgate.ready` in a Claude file): both, by
    // their names as written.
    let health = format!("{}/healthz", base(&url));
    let both = until(Duration::from_secs(30), || async {
        let h = request("GET", &health, &[], "").await.json();
        h["status"] == "ok" && h["servers"]["time.v2"]["status"] == "ready" && h["servers"]["my memory"].is_object()
    })
    .await;
    assert!(both, "{}\n{}", request("GET", &health, &[], "").await.body, gw.output());
    let sid = open_session(&url, &[]).await;
    let names = tool_names(&url, &sid).await;
    assert!(names.iter().any(|n| n == "time_v2__echo") && names.iter().any(|n| n == "my_memory__echo"), "{names:?}");
    assert!(
        names.iter().all(|n| (n.starts_with("time_v2__") || n.starts_with("my_memory__"))
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))),
        "{names:?}"
    );
    assert_eq!(text_of(&call_text(&url, &sid, "time_v2__echo", json!({"message": "merged"})).await), "Echo: merged");
    assert_eq!(text_of(&call_text(&url, &sid, "my_memory__echo", json!({"message": "m"})).await), "Echo: m");
    // Each alone, under its name as written (percent-encoded where a path needs it), unprefixed.
    for (path, message) in [("time.v2", "alone"), ("my%20memory", "spaced")] {
        let one = format!("{}/servers/{path}/mcp", base(&url));
        let sid = open_session(&one, &[]).await;
        let names = tool_names(&one, &sid).await;
        assert!(names.iter().any(|n| n == "echo") && !names.iter().any(|n| n.contains("__")), "{path}: {names:?}");
        let m = call_text(&one, &sid, "echo", json!({"message": message})).await;
        assert_eq!(text_of(&m), format!("Echo: {message}"), "{path}: {m}");
    }
    let r = request("POST", &format!("{}/servers/time_v2/mcp", base(&url)), MCP_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 404, "the prefix is not a server's name: {}", r.body);
    let metrics = request("GET", &format!("{}/metrics", base(&url)), &[], "").await.body;
    for label in [r#"server="time.v2",method="tools/call",outcome="ok""#, r#"server="my memory",method="tools/call""#] {
        assert!(metrics.contains(label), "{label} in:\n{metrics}");
    }
}
