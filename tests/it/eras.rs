//! Between the eras, through `connect` and `stdio`: a 2026-07-28 client (the official v2 SDK
//! client) in front of a 2025 server (npm's server-everything), and a 2025 client (the official
//! SDK client) in front of a 2026-07-28-only server (tests/fixtures/modern-server.mjs), each
//! through the gateway's translation — a server's questions as input-required results and back,
//! progress streamed. (`serve`: serve/modern_clients.rs.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

/// The v2 SDK client (tests/clients/modern-client.mjs) at `url` — over HTTP, or launching
/// `mcpgate stdio url` with `stdio` — running `steps`: its report.
async fn modern_client(url: &str, stdio: bool, steps: &[&str]) -> Value {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/clients/modern-client.mjs")).arg(url).args(steps).kill_on_drop(true);
    if stdio {
        cmd.env("MCPGATE_STDIO", mcpgate_bin());
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.unwrap().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    report
}

/// The progress the client heard: all three, in order — over stdio at least the first two: the
/// bridge writes all three before the result (in order, as the server sent them), but a server
/// sends the last one and the result together, and the SDK's stdio client, reading both at once,
/// settles the call before it hears the last progress now and then.
fn assert_progress(report: &Value, stdio: bool) {
    let progress = report["progress"]["progress"].as_array().unwrap();
    let heard = if stdio {
        progress.starts_with(&[json!(1), json!(2)]) && progress.len() <= 3
    } else {
        *progress == [json!(1), json!(2), json!(3)]
    };
    assert!(heard, "progress streamed: {report}");
}

/// What the v2 SDK client reports in front of server-everything: the revision, a call, its
/// progress streamed, the server's elicitation as an input-required result answered in its retry.
fn assert_reached_everything(report: &Value, stdio: bool) {
    assert_eq!(report["protocol"], "2026-07-28", "{report}");
    // Its sampling and roots answered, as input-required rounds: server-everything asks for roots
    // on its own (when a session opens), so the client is asked before its call.
    assert_eq!(report["sampling"]["asked"], 1, "{report}");
    assert!(report["sampling"]["text"].as_str().unwrap().contains("sampled by the modern client"), "{report}");
    assert!(report["roots"]["text"].as_str().unwrap().contains("file:///home/modern/work"), "{report}");
    assert_eq!(report["echo"], "Echo: modern through mcpgate", "{report}");
    assert_eq!(report["elicit"]["asked"], 1, "{report}");
    assert!(report["elicit"]["text"].as_str().unwrap().contains("Grace Hopper"), "{report}");
    assert_progress(report, stdio);
    let tools = report["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| *t == "trigger-elicitation-request"), "{tools:?}");
}

/// The v2 SDK client probes with `server/discover`, which connect's 2025 upstream does not
/// know: it is answered by the translation, and so is every request after it, its `ping` too.
#[tokio::test]
async fn a_modern_client_reaches_a_legacy_server_through_connect() {
    let upstream = everything("streamableHttp", 0).await;
    let gw = connect(&upstream.url, &[]).await;
    let report = modern_client(&gw.url, false, &["progress", "elicit", "sampling", "roots", "ping"]).await;
    assert_reached_everything(&report, false);
    assert_eq!(report["ping"]["status"], 200, "ping: {report}");
    assert!(gw.output().contains("the upstream does not speak the Modern era"), "{}", gw.output());
}

/// The same client launching `mcpgate stdio`: its requests (no `initialize`; each names its
/// revision in `_meta`) go through the same translation.
#[tokio::test]
async fn a_modern_client_reaches_a_legacy_server_through_the_stdio_bridge() {
    let upstream = everything("streamableHttp", 0).await;
    let report = modern_client(&upstream.url, true, &["progress", "elicit", "sampling", "roots"]).await;
    assert_reached_everything(&report, true);
}

/// A 2026-07-28 client and server through `mcpgate stdio`: each request as it came, with the
/// headers of its revision, the server's input-required results the client's to answer.
#[tokio::test]
async fn a_modern_client_reaches_a_modern_server_through_the_stdio_bridge() {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/modern-server.mjs"));
    let upstream = Proc::start("modern fixture", cmd).await;
    let report = modern_client(&upstream.url, true, &["progress", "elicit", "sampling", "roots"]).await;
    assert_eq!(report["protocol"], "2026-07-28", "{report}");
    assert_eq!(report["echo"], "Echo: modern through mcpgate", "{report}");
    assert_progress(&report, true);
    assert_eq!(report["elicit"]["asked"], 1, "{report}");
    assert_eq!(report["sampling"]["text"], "LLM said: sampled by the modern client", "{report}");
    assert_eq!(report["roots"]["text"], "Roots: file:///home/modern/work", "{report}");
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
    let roots = [("MCP_ROOTS", r#"["file:///home/legacy/work"]"#)];
    let r =
        sdk_client_env(&gw.url, &["tools", "echo", "progress", "elicit", "sampling", "roots_tool", "close"], &roots)
            .await;
    assert!(r["tools"].as_array().unwrap().iter().any(|t| *t == "trigger-elicitation-request"), "{r}");
    assert_eq!(r["echo"], "Echo: hello through mcpgate", "{r}");
    let p: Vec<u64> = r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(p, [1, 2, 3], "{r}");
    assert_eq!(r["elicit"]["text"], "Hello, Ada Lovelace (state asked)", "{r}");
    assert_eq!(r["sampling"], "LLM said: sampled by the test client", "{r}\n{}", gw.output());
    // The server's roots/list input request, put to the client as a roots/list request.
    assert_eq!(r["roots_tool"]["text"], "Roots: file:///home/legacy/work", "{r}");
    assert_eq!(r["roots_tool"]["asked"], 1, "{r}");
    assert!(gw.output().contains("the upstream does not speak the Legacy era"), "{}", gw.output());
}

/// A 2026-07-28-only server's list changes reach a 2025 client through `connect`: the
/// translation keeps a `subscriptions/listen` stream open at the server and tells the client's
/// GET stream (the 2026-07-28 conformance fixture's dynamic tool, switched by a call).
#[tokio::test]
async fn a_modern_servers_list_changes_reach_a_legacy_client_through_connect() {
    use crate::serve::{Sse, call_text, session, text_of};
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/conformance-server-2026.mjs"));
    let upstream = Proc::start("2026-07-28 fixture", cmd).await;
    let gw = connect(&upstream.url, &[]).await;
    let sid = session(&gw.url).await;
    let mut events = Sse::get(&gw.url, &sid).await;
    let r = call_text(&gw.url, &sid, "test_trigger_tool_change", json!({})).await;
    assert!(text_of(&r).starts_with("test_dynamic_tool"), "{r}\n{}", gw.output());
    let heard = events.until(Duration::from_secs(10), |m| m["method"] == "notifications/tools/list_changed").await;
    assert!(heard.is_ok(), "no list change: {heard:?}\n{}", gw.output());
    assert!(gw.output().contains("the upstream does not speak the Legacy era"), "{}", gw.output());
}

/// A server of both eras through `connect`: each client as it came, whichever comes first — the
/// 2025 client gets the server's own answers (not the translation's), the 2026-07-28 client too,
/// and nothing is translated.
#[tokio::test]
async fn a_server_of_both_eras_is_reached_as_it_is_by_clients_of_either_through_connect() {
    for modern_first in [true, false] {
        let mut cmd = tokio::process::Command::new(node());
        cmd.arg(repo().join("tests/fixtures/modern-server.mjs")).arg("--dual");
        let upstream = Proc::start("modern fixture, both eras", cmd).await;
        let gw = connect(&upstream.url, &[]).await;
        let legacy = async {
            let r = sdk_client(&gw.url, &["info", "echo", "close"]).await;
            assert_eq!(r["info"]["server"], "mcpgate-modern-fixture", "{r}");
            assert_eq!(r["echo"], "Echo: hello through mcpgate", "{r}");
        };
        let modern = async {
            let report = modern_client(&gw.url, false, &[]).await;
            assert_eq!(report["protocol"], "2026-07-28", "{report}");
            assert_eq!(report["echo"], "Echo: modern through mcpgate", "{report}");
        };
        if modern_first {
            modern.await;
            legacy.await;
        } else {
            legacy.await;
            modern.await;
        }
        assert!(!gw.output().contains("does not speak"), "translated for a server of both eras:\n{}", gw.output());
    }
}

/// The `subscriptions/listen` request of a 2026-07-28 client that wants to hear of tool list
/// changes.
fn listen_for_tools() -> Value {
    json!({"jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": true},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}})
}

/// A 2025-only server's list changes reach a 2026-07-28 client's `subscriptions/listen` stream
/// through `connect`: the translation keeps a session at the server, and its
/// `notifications/tools/list_changed` is told on the listen stream, tagged with its id (the 2025
/// conformance fixture's dynamic tool, switched by the client's call).
#[tokio::test]
async fn a_legacy_servers_list_changes_reach_a_modern_clients_listen_stream_through_connect() {
    use crate::serve::modern_clients::modern;
    use crate::serve::{Next, Sse};
    let upstream = fixture(&[]).await;
    let gw = connect(&upstream.url, &[]).await;
    let mut h = MCP_HEADERS.to_vec();
    h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", "subscriptions/listen")]);
    let mut stream = Sse::open("POST", &gw.url, &h, &listen_for_tools().to_string()).await;
    assert_eq!(stream.status, 200, "{}", gw.output());
    let Next::Message(ack) = stream.next(Duration::from_secs(10)).await else { panic!("no acknowledgement") };
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "{ack}");
    let call = json!({"name": "test_trigger_tool_change", "arguments": {}});
    let said = modern(&gw.url, "tools/call", Some("test_trigger_tool_change"), call, json!({})).await.message();
    assert!(said.to_string().contains("Tools changed"), "{said}\n{}", gw.output());
    let heard = stream.until(Duration::from_secs(10), |n| n["method"] == "notifications/tools/list_changed").await;
    let heard = heard.unwrap_or_else(|got| panic!("no list change: {got:?}\n{}", gw.output()));
    assert_eq!(heard["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1", "{heard}");
    // Once: the server tells each of its sessions (the caller's and the gateway's own).
    let again = stream.until(Duration::from_millis(500), |n| n["method"] == "notifications/tools/list_changed").await;
    assert!(again.is_err(), "the list change told twice: {again:?}");
    assert!(gw.output().contains("the upstream does not speak the Modern era"), "{}", gw.output());
}

/// The same through `mcpgate stdio`, the client's lines on its stdin: the listen request's
/// acknowledgement, the call's result and the list change come out as lines.
#[tokio::test]
async fn a_legacy_servers_list_changes_reach_a_modern_clients_listen_stream_through_the_stdio_bridge() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let upstream = fixture(&[]).await;
    let mut bridge = tokio::process::Command::new(mcpgate_bin())
        .args(["stdio", &upstream.url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = bridge.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(bridge.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut until = async |pred: &dyn Fn(&Value) -> bool, seen: &mut Vec<Value>| {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let msg: Value = serde_json::from_str(&line).unwrap();
                seen.push(msg.clone());
                if pred(&msg) {
                    return msg;
                }
            }
            panic!("the bridge ended: {seen:?}")
        })
        .await
        .unwrap_or_else(|_| panic!("not heard in time: {seen:?}"))
    };
    stdin.write_all(format!("{}\n", listen_for_tools()).as_bytes()).await.unwrap();
    let ack = until(&|m| m["method"] == "notifications/subscriptions/acknowledged", &mut seen).await;
    assert_eq!(ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1", "{ack}");
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "test_trigger_tool_change", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
    stdin.write_all(format!("{call}\n").as_bytes()).await.unwrap();
    // The call's result and the list change, in either order.
    let changed = |m: &Value| m["method"] == "notifications/tools/list_changed";
    until(&|m| m["id"] == 2, &mut seen).await;
    let result = seen.iter().find(|m| m["id"] == 2).cloned().unwrap();
    assert!(result["result"].to_string().contains("Tools changed"), "{result}");
    if !seen.iter().any(changed) {
        until(&changed, &mut seen).await;
    }
    let heard = seen.iter().find(|m| changed(m)).unwrap();
    assert_eq!(heard["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1", "{heard}");
}

/// A 2025 client (the SDK's, launching `mcpgate stdio`) in front of a 2026-07-28-only server
/// hears its list changes: the translation keeps a `subscriptions/listen` stream open at the
/// server and tells the client (the 2026 conformance fixture's dynamic tool, switched by a call;
/// the listing after it has the tool).
#[tokio::test]
async fn a_modern_servers_list_changes_reach_a_legacy_client_through_the_stdio_bridge() {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/conformance-server-2026.mjs"));
    let upstream = Proc::start("2026-07-28 fixture", cmd).await;
    let stdio = serde_json::to_string(&[mcpgate_bin(), "stdio", &upstream.url]).unwrap();
    let r = sdk_client_env("stdio", &["tools", "tools_changed", "close"], &[("MCP_STDIO_COMMAND", &stdio)]).await;
    assert_eq!(r["tools_changed"]["heard"], true, "{r}");
    let before = r["tools"].as_array().unwrap().len();
    let after = r["tools_changed"]["tools"].as_array().unwrap().len();
    assert_ne!(before, after, "the listing changed with the tools: {r}");
}

/// `connect` ends client sessions idle for `--session-ttl`, but not the translation's own at the
/// upstream, which it keeps listening on: a 2026-07-28 client listening quietly past the limit
/// still hears the 2025 server's list changes (here made by another client, at the server).
#[tokio::test]
async fn the_translation_keeps_its_upstream_sessions_past_connects_session_ttl() {
    use crate::serve::{Next, Sse};
    let upstream = fixture(&[]).await;
    let gw = connect(&upstream.url, &["--session-ttl", "1s"]).await;
    let mut h = MCP_HEADERS.to_vec();
    h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", "subscriptions/listen")]);
    let mut stream = Sse::open("POST", &gw.url, &h, &listen_for_tools().to_string()).await;
    let Next::Message(ack) = stream.next(Duration::from_secs(10)).await else { panic!("no acknowledgement") };
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "{ack}");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = sdk_client(&upstream.url, &["tools_changed", "close"]).await;
    assert_eq!(r["tools_changed"]["heard"], true, "{r}");
    let heard = stream.until(Duration::from_secs(10), |n| n["method"] == "notifications/tools/list_changed").await;
    assert!(heard.is_ok(), "no list change past the session limit: {heard:?}\n{}", gw.output());
}

/// A 2025 client's resource subscription at a 2026-07-28-only server, through `connect` and
/// through `mcpgate stdio`: the revision has no `resources/subscribe`; the translation names the
/// resource on a `subscriptions/listen` stream of the client's session, and the server's update
/// reaches the client.
#[tokio::test]
async fn a_modern_servers_resource_updates_reach_a_legacy_subscriber_through_connect_and_stdio() {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/conformance-server-2026.mjs"));
    let upstream = Proc::start("2026-07-28 fixture", cmd).await;
    let gw = connect(&upstream.url, &[]).await;
    let r = sdk_client(&gw.url, &["resource_updated", "close"]).await;
    assert_eq!(r["resource_updated"], json!({"heard": true, "uri": "test://watched-resource"}), "{r}\n{}", gw.output());
    let stdio = serde_json::to_string(&[mcpgate_bin(), "stdio", &upstream.url]).unwrap();
    let r = sdk_client_env("stdio", &["resource_updated", "close"], &[("MCP_STDIO_COMMAND", &stdio)]).await;
    assert_eq!(r["resource_updated"], json!({"heard": true, "uri": "test://watched-resource"}), "{r}");
}

/// A subscription a 2026-07-28 server does not honour (it declares no `resources.subscribe`: its
/// listen acknowledgement leaves the resource out) is refused, not promised.
#[tokio::test]
async fn a_subscription_a_modern_server_does_not_honour_is_refused_through_connect() {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/modern-server.mjs"));
    let upstream = Proc::start("modern fixture", cmd).await;
    let gw = connect(&upstream.url, &[]).await;
    let sid = crate::serve::session(&gw.url).await;
    let sub = json!({"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri": "demo://anything"}});
    let r = call(&gw.url, &sid, &[], &sub.to_string()).await.message();
    assert_eq!(r["error"]["code"], -32602, "{r}\n{}", gw.output());
    assert!(r["error"]["message"].as_str().unwrap().contains("no updates of demo://anything"), "{r}");
}

/// How `connect` learns an upstream's era from a 2025 client's `initialize`, each way a server
/// answers it: a legacy server that refuses the revision header the first form carries is asked
/// again as the client asked (and the client served); a 2026-07-28-only server answering with a
/// result of its revision, as JSON or on an event stream, is taken for what it is and the client
/// translated; a legacy server's result makes later `initialize`s go as they came (the server is
/// not asked its era again).
#[tokio::test]
async fn connect_learns_the_era_from_each_answer_to_initialize() {
    let strict = fixture(&["--refuse-initialize-version", "2025-11-25"]).await;
    let gw = connect(&strict.url, &[]).await;
    let r = sdk_client(&gw.url, &["info", "tools", "close"]).await;
    assert_eq!(r["info"]["server"], "mcpgate-conformance-fixture", "{r}\n{}", gw.output());
    assert!(r["tools"].as_array().unwrap().iter().any(|t| t == "test_simple_text"), "{r}");
    for answer in ["result", "result-sse"] {
        let mut cmd = tokio::process::Command::new(node());
        cmd.arg(repo().join("tests/fixtures/modern-server.mjs")).args(["--legacy-initialize", answer]);
        let upstream = Proc::start("modern fixture", cmd).await;
        let gw = connect(&upstream.url, &[]).await;
        for _ in 0..2 {
            let r = sdk_client(&gw.url, &["info", "echo", "close"]).await;
            assert_eq!(r["info"]["server"], "mcpgate-modern-fixture", "{answer}: {r}\n{}", gw.output());
            assert_eq!(r["info"]["protocol"], "2025-11-25", "{answer}: the client's revision: {r}");
            assert_eq!(r["echo"], "Echo: hello through mcpgate", "{answer}: {r}");
        }
        let asked = upstream.output().lines().filter(|l| l.starts_with("legacy initialize")).count();
        assert_eq!(asked, 1, "{answer}: asked its era once:\n{}", upstream.output());
    }
}
