//! Faults around `mcpgate connect`: an upstream that is down, silent, or restarts; and a
//! shutdown in the middle of a call.

use std::time::{Duration, Instant};

use crate::harness::*;

#[tokio::test]
async fn upstream_down_is_a_502_with_a_jsonrpc_error_naming_it() {
    let port = free_port();
    let upstream = format!("http://127.0.0.1:{port}/mcp");
    let gw = connect(&upstream, &[]).await;
    let r = request("POST", &gw.url, MCP_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let v = r.json();
    assert_eq!(v["id"], 1);
    assert_eq!(v["error"]["code"], -32001);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&upstream) && msg.to_lowercase().contains("refused"), "{msg}");
}

#[tokio::test]
async fn a_silent_upstream_ends_in_a_504_at_the_timeout() {
    // A socket that accepts and never answers: a fault no real server produces on demand.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let gw = connect(&format!("http://{addr}/mcp"), &["--timeout", "300ms"]).await;
    let started = Instant::now();
    let r = request("POST", &gw.url, MCP_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], -32002);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A server that answers each request and then closes the connection without saying so (no
/// `Connection: close`): a kept-alive connection that is gone when the next request comes, as
/// after Node's and uvicorn's idle timeouts, on demand. Returns its address and how many
/// connections it took.
async fn closing_after_each_answer() -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = taken.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(k) = s.read(&mut chunk).await else { return };
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break buf[end + 4..end + 4 + len].to_vec();
                    }
                };
                let msg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let reply = match msg["method"].as_str() {
                    _ if msg.get("id").is_none() => String::new(),
                    Some("initialize") => serde_json::json!({"jsonrpc": "2.0", "id": msg["id"], "result": {
                        "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                        "serverInfo": {"name": "closer", "version": "1"}}})
                    .to_string(),
                    _ => serde_json::json!({"jsonrpc": "2.0", "id": msg["id"],
                        "result": {"content": [{"type": "text", "text": "ok"}]}})
                    .to_string(),
                };
                let status = if reply.is_empty() { "202 Accepted" } else { "200 OK" };
                let out = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = s.write_all(out.as_bytes()).await;
            });
        }
    });
    (addr, taken)
}

#[tokio::test]
async fn an_upstream_closing_kept_alive_connections_never_fails_a_call() {
    let (addr, taken) = closing_after_each_answer().await;
    let gw = connect(&format!("http://{addr}/mcp"), &[]).await;
    let sid = open_session(&gw.url, &[]).await;
    for i in 0..40u64 {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"x","arguments":{{}}}}}}"#);
        let r = call(&gw.url, &sid, &[], &body).await;
        assert_eq!(r.status, 200, "call {i}: {}\n{}", r.body, gw.output());
        assert_eq!(r.message()["result"]["content"][0]["text"], "ok", "call {i}");
        // Now and then a pause, so the close is sometimes seen before the next call and
        // sometimes only when it is sent.
        if i % 3 == 0 {
            tokio::time::sleep(Duration::from_millis(12)).await;
        }
    }
    assert!(taken.load(std::sync::atomic::Ordering::SeqCst) > 20, "the server closed its connections");
}

/// Opens a session through mcpgate to server-everything in `mode`, restarts the upstream on the
/// same port, and checks the same client session keeps working. Returns mcpgate, for its log.
async fn restart_keeps_the_session(mode: &str, args: &[&str]) -> Proc {
    let port = free_port();
    let mut upstream = everything(mode, port).await;
    let gw = connect(&upstream.url, args).await;
    let sid = open_session(&gw.url, &[]).await;
    let echo = |m: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{m}"}}}}}}"#
        )
    };
    assert_eq!(
        call(&gw.url, &sid, &[], &echo("before")).await.message()["result"]["content"][0]["text"],
        "Echo: before"
    );

    upstream.kill().await;
    let _upstream = everything(mode, port).await;

    let r = call(&gw.url, &sid, &[], &echo("after")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, gw.output());
    assert_eq!(r.message()["result"]["content"][0]["text"], "Echo: after");
    assert_eq!(r.header("mcp-session-id"), Some(sid.as_str()));
    gw
}

#[tokio::test]
async fn an_upstream_restart_is_invisible_to_the_client() {
    // The upstream answers for its lost session; mcpgate re-initializes it and retries.
    let gw = restart_keeps_the_session("streamableHttp", &[]).await;
    assert!(gw.output().contains("re-initializing"), "{}", gw.output());
}

/// The event stream of a legacy HTTP+SSE upstream is lost: it is reopened and the session
/// re-initialized on the next request.
#[tokio::test]
async fn a_legacy_sse_upstream_restart_is_invisible_to_the_client() {
    restart_keeps_the_session("sse", &["--transport", "sse"]).await;
}

#[tokio::test]
async fn an_upstream_restart_is_invisible_to_the_sdk_client() {
    let port = free_port();
    let mut upstream = everything("streamableHttp", port).await;
    let gw = connect(&upstream.url, &[]).await;
    let mut client = PausedClient::start(&gw.url, &["echo", "wait", "echo", "tools", "close"]);
    client.paused().await;
    upstream.kill().await;
    let _upstream = everything("streamableHttp", port).await;
    client.go().await;
    let report = client.report().await;
    assert_eq!(report["echo"], "Echo: hello through mcpgate");
    assert!(report["tools"].as_array().unwrap().len() > 3);
}

#[tokio::test]
async fn sigterm_drains_in_flight_calls_then_exits_zero() {
    let upstream = everything("streamableHttp", 0).await;
    let mut gw = connect(&upstream.url, &["--shutdown-grace", "10s"]).await;
    let sid = open_session(&gw.url, &[]).await;
    let url = gw.url.clone();
    let long = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":1.5,"steps":3},"_meta":{"progressToken":"p1"}}}"#;
    let in_flight = tokio::spawn(async move { call(&url, &sid, &[], long).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    gw.signal(libc::SIGTERM);
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("notifications/progress"), "{}", r.body);
    assert!(r.message()["result"]["content"][0]["text"].as_str().unwrap().contains("completed"), "{}", r.body);
    let status = gw.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}; output:\n{}", gw.output());
    // It stopped accepting.
    assert!(
        tokio::net::TcpStream::connect(gw.url.trim_start_matches("http://").split('/').next().unwrap()).await.is_err()
    );
}
