//! The `connect` engine's queues at their limits, with real processes: an upstream flooding a
//! client that does not read — through the `stdio` bridge (the client never reads its stdout)
//! and through `connect` in front of an HTTP+SSE upstream (the client never reads its POST's
//! stream). Memory is read from `/proc/<pid>/status`; the upstreams are a few lines of Node.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::harness::*;

/// Logs sent by each flood, and the size of each.
const FLOOD: usize = 50_000;
const LOG_BYTES: usize = 2000;

/// A Streamable HTTP server: `initialize` answered as JSON, a `tools/call` answered with an
/// event stream of `count` logs of `size` bytes and then the result; prints `flooded N` once
/// all of it is written.
const STREAMABLE: &str = r#"
const http = require("http");
const server = http.createServer((req, res) => {
  if (req.method !== "POST") { res.writeHead(405); return res.end(); }
  let body = "";
  req.on("data", (d) => body += d);
  req.on("end", async () => {
    const m = JSON.parse(body);
    if (m.method === "initialize") {
      res.writeHead(200, {"content-type": "application/json", "mcp-session-id": "s1"});
      return res.end(JSON.stringify({jsonrpc: "2.0", id: m.id, result: {protocolVersion: "2025-06-18",
        capabilities: {tools: {}, logging: {}}, serverInfo: {name: "flood", version: "1"}}}));
    }
    if (m.method !== "tools/call") { res.writeHead(202); return res.end(); }
    res.writeHead(200, {"content-type": "text/event-stream"});
    const {count, size} = m.params.arguments;
    const pad = "x".repeat(size);
    for (let n = 0; n < count; n++) {
      const ev = "data: " + JSON.stringify({jsonrpc: "2.0", method: "notifications/message",
        params: {level: "info", data: "log " + n + " " + pad}}) + "\n\n";
      if (!res.write(ev)) await new Promise((r) => res.once("drain", r));
    }
    res.end("data: " + JSON.stringify({jsonrpc: "2.0", id: m.id, result: {content: [{type: "text", text: "flooded"}]}}) + "\n\n");
    console.log("flooded " + count);
  });
});
server.listen(0, "127.0.0.1", () => console.log("listening on http://127.0.0.1:" + server.address().port + "/mcp"));
"#;

/// An HTTP+SSE (2024-11-05) server: one event stream, messages POSTed to `/message`; a
/// `tools/call` gets `count` logs of `size` bytes on the stream, then its result.
const LEGACY: &str = r#"
const http = require("http");
let stream = null;
const send = (m) => stream.write("event: message\ndata: " + JSON.stringify(m) + "\n\n");
const server = http.createServer((req, res) => {
  if (req.method === "GET") {
    res.writeHead(200, {"content-type": "text/event-stream"});
    res.write("event: endpoint\ndata: /message\n\n");
    stream = res;
    return;
  }
  let body = "";
  req.on("data", (d) => body += d);
  req.on("end", async () => {
    res.writeHead(202); res.end();
    const m = JSON.parse(body);
    if (m.method === "initialize") {
      send({jsonrpc: "2.0", id: m.id, result: {protocolVersion: "2024-11-05",
        capabilities: {tools: {}, logging: {}}, serverInfo: {name: "flood", version: "1"}}});
    } else if (m.method === "tools/call") {
      const {count, size} = m.params.arguments;
      const pad = "x".repeat(size);
      for (let n = 0; n < count; n++) {
        if (!send({jsonrpc: "2.0", method: "notifications/message", params: {level: "info", data: "log " + n + " " + pad}}))
          await new Promise((r) => stream.once("drain", r));
      }
      send({jsonrpc: "2.0", id: m.id, result: {content: [{type: "text", text: "flooded"}]}});
      console.log("flooded " + count);
    } else if (m.id !== undefined && m.method) {
      send({jsonrpc: "2.0", id: m.id, result: {}});
    }
  });
});
server.listen(0, "127.0.0.1", () => console.log("listening on http://127.0.0.1:" + server.address().port + "/sse"));
"#;

async fn node_server(name: &str, script: &str) -> Proc {
    let dir = tempdir(name);
    let path = dir.join("server.js");
    std::fs::write(&path, script).unwrap();
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(path);
    Proc::start(name, cmd).await
}

fn flood_call(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"flood","arguments":{{"count":{FLOOD},"size":{LOG_BYTES}}}}}}}"#
    )
}

/// Waits until the upstream has written its whole flood.
async fn flooded(upstream: &Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !upstream.output().contains("flooded") {
        assert!(Instant::now() < deadline, "the upstream never finished its flood:\n{}", upstream.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `mcpgate stdio` whose client reads the answer to `initialize` and then stops reading its
/// stdout while the server floods 100 MB of logs: the bridge's peak memory stays flat, the
/// oldest logs are dropped, and the response to the call still arrives after them.
#[tokio::test]
async fn a_stdio_client_that_stops_reading_its_stdout_leaves_the_bridge_flat() {
    let upstream = node_server("connect-limits-streamable", STREAMABLE).await;
    let mut bridge = tokio::process::Command::new(mcpgate_bin())
        .args(["stdio", &upstream.url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = bridge.id().unwrap();
    let mut stdin = bridge.stdin.take().unwrap();
    let mut stdout = BufReader::new(bridge.stdout.take().unwrap());
    stdin.write_all(format!("{INITIALIZE}\n").as_bytes()).await.unwrap();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line)).await.unwrap().unwrap();
    assert!(line.contains("\"result\""), "{line}");
    stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n").await.unwrap();
    let (base, _) = memory_of(pid);
    // The flood, with nobody reading.
    stdin.write_all(format!("{}\n", flood_call(2)).as_bytes()).await.unwrap();
    flooded(&upstream).await;
    // Now read: logs (what was kept of them), then the answer.
    let (mut logs, started) = (0usize, Instant::now());
    loop {
        line.clear();
        let n = tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut line)).await.unwrap().unwrap();
        assert!(n > 0, "the bridge closed its stdout before answering");
        if line.contains("\"id\":2") {
            assert!(line.contains("flooded"), "{line}");
            break;
        }
        logs += 1;
    }
    let (_, peak) = memory_of(pid);
    let grew = peak.saturating_sub(base);
    eprintln!(
        "stdio bridge, {FLOOD} logs of {LOG_BYTES} B to a client not reading: {logs} kept, peak RSS grew {:.1} MB (read in {:?})",
        mb(grew),
        started.elapsed()
    );
    // Kept: the bridge's queue (1,024) and what the pipe took.
    assert!(logs < FLOOD / 10, "{logs} of {FLOOD} logs were kept for the client");
    assert!(grew < 30 * 1024 * 1024, "peak RSS grew {:.1} MB", mb(grew));
}

/// `connect` in front of an HTTP+SSE upstream, a client that does not read its call's stream
/// while the upstream floods 100 MB of logs on its event stream: the routing queues give way
/// (memory flat) and the call's answer still arrives after what was kept.
#[tokio::test]
async fn a_client_that_stops_reading_a_legacy_upstreams_flood_leaves_connect_flat() {
    let upstream = node_server("connect-limits-legacy", LEGACY).await;
    let gw = connect(&upstream.url, &["--transport", "sse"]).await;
    let sid = open_session(&gw.url, &[]).await;
    let pid = gw.child.id().unwrap();
    let (base, _) = memory_of(pid);
    // The call on a raw connection, its answer left unread while the upstream floods.
    let addr = gw.url.trim_start_matches("http://").trim_end_matches("/mcp").to_owned();
    // A small receive buffer: what the kernel holds for the client is not what is measured.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut conn = socket.connect(addr.parse().unwrap()).await.unwrap();
    let body = flood_call(2);
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2024-11-05\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    flooded(&upstream).await;
    // Now read until the answer.
    let (mut seen, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen[seen.len().saturating_sub(4096)..]).contains("flooded") {
        let n = tokio::time::timeout_at(deadline.into(), conn.read(&mut chunk))
            .await
            .expect("no answer to the call")
            .unwrap();
        assert!(n > 0, "connect closed the stream before answering");
        seen.extend_from_slice(&chunk[..n]);
    }
    let logs = String::from_utf8_lossy(&seen).matches("notifications/message").count();
    let (_, peak) = memory_of(pid);
    let grew = peak.saturating_sub(base);
    eprintln!(
        "connect → HTTP+SSE, {FLOOD} logs of {LOG_BYTES} B to a client not reading: {logs} kept, peak RSS grew {:.1} MB",
        mb(grew)
    );
    // Kept: the call's queue, the stream's 16 events, and what the kernel's send buffer took.
    assert!(logs < FLOOD / 5, "{logs} of {FLOOD} logs were kept for the client");
    assert!(grew < 30 * 1024 * 1024, "peak RSS grew {:.1} MB", mb(grew));
}
