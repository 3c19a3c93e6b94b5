//! `mcpgate stdio URL` launched by the official TypeScript SDK's stdio client, in front of
//! real remote servers; and the bridge's stdin/stdout contract on its own.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::harness::*;

async fn via_stdio(url: &str, extra: &[&str], steps: &[&str]) -> serde_json::Value {
    let mut cmd = vec![mcpgate_bin().to_owned(), "stdio".into(), url.to_owned(), "-v".into()];
    cmd.extend(extra.iter().map(|s| s.to_string()));
    sdk_client_env("stdio", steps, &[("MCP_STDIO_COMMAND", &serde_json::to_string(&cmd).unwrap())]).await
}

/// Progress reaches the SDK client in order, before the result. (The SDK's stdio client may drop
/// the last one when the OS hands it over in one read with the result — its own race, see
/// src/stdio/mod.rs; that the bridge writes all of them before the result is checked below.)
fn assert_progress_in_order(r: &serde_json::Value) {
    let p: Vec<u64> = r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(!p.is_empty() && p.windows(2).all(|w| w[0] < w[1]) && p[0] == 1, "{p:?}");
    assert!(r["progress"]["lastProgressAt"].as_u64().unwrap() <= r["progress"]["resultAt"].as_u64().unwrap());
}

#[tokio::test]
async fn sdk_stdio_client_through_the_bridge_to_streamable_http() {
    let upstream = everything("streamableHttp", 0).await;
    let r = via_stdio(
        &upstream.url,
        &[],
        &["info", "tools", "echo", "progress", "elicit", "sampling", "resources", "prompts", "close"],
    )
    .await;
    assert_eq!(r["info"]["server"], "mcp-servers/everything");
    assert_eq!(r["echo"], "Echo: hello through mcpgate");
    assert_progress_in_order(&r);
    assert_eq!(r["elicit"]["asked"], 1);
    assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"));
    assert!(r["sampling"].as_str().unwrap().contains("sampled by the test client"));
    assert!(r["resources"]["read"] == 1 && r["prompts"]["got"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn sdk_stdio_client_through_the_bridge_to_legacy_sse() {
    let upstream = everything("sse", 0).await;
    let r = via_stdio(&upstream.url, &[], &["info", "echo", "progress", "elicit", "close"]).await;
    assert_eq!(r["echo"], "Echo: hello through mcpgate");
    assert_progress_in_order(&r);
    assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"));
}

/// stdout carries JSON-RPC lines only (logs go to stderr, even at -v); the URL may come from
/// MCP_BACKEND_URL; closing stdin lets in-flight requests finish, ends the upstream session, exits 0.
#[tokio::test]
async fn stdout_is_protocol_only_and_eof_drains_then_exits() {
    let dir = tempdir("stdio-eof");
    let log = dir.join("auth.log");
    let upstream = fixture(&["--auth-log", log.to_str().unwrap()]).await;
    let mut child = tokio::process::Command::new(mcpgate_bin())
        .args(["stdio", "-v"])
        .env("MCP_BACKEND_URL", &upstream.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
    stdin.write_all(format!("{init}\n").as_bytes()).await.unwrap();
    // The initialize answer must come back before the client goes on (as a real client waits).
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    tokio::time::timeout(Duration::from_secs(20), tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut first))
        .await
        .unwrap()
        .unwrap();
    let lines = [
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":5}}}"#,
        "this is not json",
    ];
    for l in lines {
        stdin.write_all(format!("{l}\n").as_bytes()).await.unwrap();
    }
    drop(stdin);
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(30), tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut rest))
        .await
        .unwrap()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = format!("{first}{rest}");
    let msgs: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON on stdout: {l}"))).collect();
    assert_eq!(msgs[0]["id"], 1);
    assert!(msgs.iter().any(|m| m["id"] == 2 && m["result"]["content"][0]["text"] == "5"), "{stdout}");
    let progress: Vec<usize> =
        msgs.iter().enumerate().filter(|(_, m)| m["method"] == "notifications/progress").map(|(i, _)| i).collect();
    let result = msgs.iter().position(|m| m["id"] == 2).unwrap();
    assert_eq!(progress.len(), 3, "{stdout}");
    assert!(progress.iter().all(|&i| i < result), "every progress line is written before the result: {stdout}");
    assert!(msgs.iter().any(|m| m["error"]["code"] == -32700), "a parse error answers the bad line: {stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("DEBUG"));
    let deletes = std::fs::read_to_string(&log).unwrap().lines().filter(|l| l.starts_with("DELETE")).count();
    assert_eq!(deletes, 1, "the upstream session is ended at EOF");
}

/// A legacy server that checks `MCP-Protocol-Version` on `initialize` too, and does not know the
/// revision the client asks for, refuses the bridge's first `initialize` (400, no modern error):
/// asked again without the header, as before the bridge sent one, it negotiates a revision it has.
#[tokio::test]
async fn legacy_server_refusing_the_revision_header_on_initialize() {
    let upstream = fixture(&["--refuse-initialize-version", "2025-11-25"]).await;
    let r = via_stdio(&upstream.url, &[], &["info", "tools", "close"]).await;
    assert_eq!(r["info"]["server"], "mcpgate-conformance-fixture", "{r}");
    assert!(r["tools"].as_array().unwrap().iter().any(|t| t == "test_simple_text"), "{r}");
}

/// A legacy (2025) stdio client through the bridge to a modern-only (2026-07-28) server: the
/// server refuses `initialize`, the bridge answers it from `server/discover`, sends every request
/// in the modern form, and turns input-required results into elicitation and sampling requests
/// to the client, whose answers go back in the retried request — the server's `roots/list` too.
#[tokio::test]
async fn legacy_stdio_client_through_the_bridge_to_a_modern_only_server() {
    let upstream = modern_fixture("32022").await;
    let stdio = serde_json::to_string(&[mcpgate_bin(), "stdio", &upstream.url]).unwrap();
    let steps = ["info", "tools", "echo", "progress", "elicit", "sampling", "roots_tool", "close"];
    let env = [("MCP_STDIO_COMMAND", stdio.as_str()), ("MCP_ROOTS", r#"["file:///home/legacy/work"]"#)];
    let r = sdk_client_env("stdio", &steps, &env).await;
    assert_eq!(r["info"]["server"], "mcpgate-modern-fixture");
    assert!(r["tools"].as_array().unwrap().iter().any(|t| t == "trigger-elicitation-request"), "{r}");
    assert_eq!(r["echo"], "Echo: hello through mcpgate");
    assert_progress_in_order(&r);
    assert_eq!(r["elicit"]["asked"], 1);
    assert_eq!(r["elicit"]["text"], "Hello, Ada Lovelace (state asked)");
    assert_eq!(r["sampling"], "LLM said: sampled by the test client");
    assert_eq!(r["roots_tool"]["text"], "Roots: file:///home/legacy/work", "{r}");
    assert_eq!(r["roots_tool"]["asked"], 1, "{r}");
}

/// The modern-only fixture, answering a legacy `initialize` as `--legacy-initialize` says.
async fn modern_fixture(legacy_initialize: &str) -> Proc {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/modern-server.mjs")).args(["--legacy-initialize", legacy_initialize]);
    Proc::start("modern fixture", cmd).await
}

/// A legacy stdio client through the bridge to a modern-only server that answers a bare
/// `initialize` as `legacy_initialize` says: the bridge must take it for modern all the same and
/// serve the client (a call with an input-required round included). The fixture logs the
/// `MCP-Protocol-Version` of each legacy `initialize`: the bridge's first one carries the
/// revision the client asked for (the SDK client's latest, 2025-11-25).
async fn modern_only_answering_initialize_with(legacy_initialize: &str) {
    let upstream = modern_fixture(legacy_initialize).await;
    let r = via_stdio(&upstream.url, &[], &["info", "echo", "elicit", "close"]).await;
    assert_eq!(r["info"]["server"], "mcpgate-modern-fixture", "{r}");
    assert_eq!(r["echo"], "Echo: hello through mcpgate");
    assert_eq!(r["elicit"]["text"], "Hello, Ada Lovelace (state asked)");
    let log = upstream.output();
    let first = log.lines().find_map(|l| l.strip_prefix("legacy initialize, MCP-Protocol-Version: "));
    assert_eq!(first, Some("2025-11-25"), "the first initialize names the client's revision:\n{log}");
    // Once learnt, the era is not asked again (the translation knows it from the bridge).
    let asked = log.lines().filter(|l| l.starts_with("legacy initialize")).count();
    assert_eq!(asked, 1, "the server was asked its era more than once:\n{log}");
}

/// (a) 400 with -32020 (`HeaderMismatch`), as a server that wants its standard headers answers.
#[tokio::test]
async fn modern_only_server_refusing_initialize_with_header_mismatch() {
    modern_only_answering_initialize_with("32020").await;
}

/// (b) 404 with -32601: `initialize` is a method the server does not have. (404 is also what
/// sends `connect` to try HTTP+SSE, which fails here; the bridge must not stop at that.)
#[tokio::test]
async fn modern_only_server_not_knowing_initialize() {
    modern_only_answering_initialize_with("32601").await;
}

/// (c) 200 with a modern result: `server/discover`'s, from a server that takes `initialize`
/// for discovery.
#[tokio::test]
async fn modern_only_server_answering_initialize_with_a_discover_result() {
    modern_only_answering_initialize_with("result").await;
}

/// (d) The same result on an event stream, after a log.
#[tokio::test]
async fn modern_only_server_answering_initialize_with_a_discover_result_on_a_stream() {
    modern_only_answering_initialize_with("result-sse").await;
}
