//! Streams through `mcpgate connect`: resumption with `Last-Event-ID`, the upstream session ended
//! at shutdown, and machine-readable logs.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::harness::*;

/// Reads an SSE response until `until` appears in what was read or `limit` passes: GET streams stay open.
async fn read_stream(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
    until: &str,
    limit: Duration,
) -> String {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut text = String::new();
    let _ = tokio::time::timeout(limit, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                text.push_str(&String::from_utf8_lossy(d));
                if text.contains(until) {
                    break;
                }
            }
        }
    })
    .await;
    text
}

#[tokio::test]
async fn a_get_with_last_event_id_resumes_through_the_proxy() {
    let upstream = fixture(&[]).await;
    let gw = connect(&upstream.url, &[]).await;
    let sid = open_session(&gw.url, &[]).await;
    let mut h = MCP_HEADERS.to_vec();
    h.push(("mcp-session-id", &sid));
    h.push(("mcp-protocol-version", "2025-11-25"));
    let call = r#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"tok-41"}}}"#;
    let first = read_stream("POST", &gw.url, &h, call, "\"id\":41", Duration::from_secs(10)).await;
    let ids: Vec<&str> = first.lines().filter_map(|l| l.strip_prefix("id: ")).collect();
    assert!(ids.len() >= 3, "the upstream's event ids reach the client: {first}");

    // Resume after the first event: the upstream replays the rest of that stream, through mcpgate.
    let mut h = h.clone();
    h.retain(|(k, _)| *k != "content-type");
    h.push(("last-event-id", ids[0]));
    let replay = read_stream("GET", &gw.url, &h, "", "\"id\":41", Duration::from_secs(10)).await;
    assert!(replay.contains("\"progress\":100") && replay.contains("\"id\":41"), "replayed: {replay}");
    assert!(!replay.contains(&format!("id: {}\n", ids[0])), "the event before the resume point is not replayed");
}

#[tokio::test]
async fn shutdown_ends_the_upstream_sessions() {
    let dir = tempdir("shutdown-delete");
    let log = dir.join("auth.log");
    let upstream = fixture(&["--auth-log", log.to_str().unwrap()]).await;
    let mut gw = connect(&upstream.url, &[]).await;
    open_session(&gw.url, &[]).await;
    open_session(&gw.url, &[]).await;
    gw.signal(libc::SIGINT);
    assert!(gw.wait(Duration::from_secs(15)).await.success());
    let deletes = std::fs::read_to_string(&log).unwrap().lines().filter(|l| l.starts_with("DELETE")).count();
    assert_eq!(deletes, 2, "each upstream session is ended with a DELETE");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let upstream = fixture(&[]).await;
    let gw = connect(&upstream.url, &["--log-format", "json", "-v"]).await;
    open_session(&gw.url, &[]).await;
    assert!(eventually(Duration::from_secs(5), || gw.output().contains("session started")).await);
    let out = gw.output();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string() && v["timestamp"].is_string(), "{line}");
    }
}
