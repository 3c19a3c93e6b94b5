//! `mcpgate serve` at its limits, with real processes: a flood of `initialize` from one address,
//! the per-address cap from two loopback addresses, a stdio server that floods notifications or
//! writes a 100 MB stderr line, and servers that cannot start. Memory is read from the gateway's
//! `/proc/<pid>/status` (VmRSS now, VmHWM the peak).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::*;
use crate::idp::until;

/// A stdio MCP server in a few lines of Node: `echo`; `flood` (2 × `count` notifications, 100,000
/// unless told, around its answer: logs, and progress when the call asks for it); `shout` (one
/// 100 MB stderr line); `deafen` (answers, then never reads its stdin again).
const SERVER: &str = r#"
const fs = require("fs");
const out = (m) => fs.writeSync(1, JSON.stringify(m) + "\n");
let buf = "";
let deaf = false;
process.stdin.on("data", (d) => {
  buf += d;
  let i;
  while (!deaf && (i = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    if (line.trim()) handle(JSON.parse(line));
  }
});
function handle(m) {
  if (m.method === "initialize") {
    out({jsonrpc: "2.0", id: m.id, result: {protocolVersion: "2025-06-18",
      capabilities: {tools: {}, logging: {}}, serverInfo: {name: "limits", version: "1"}}});
  } else if (m.method === "tools/list") {
    out({jsonrpc: "2.0", id: m.id, result: {tools: ["echo", "flood", "shout", "deafen"].map((name) =>
      ({name, inputSchema: {type: "object"}}))}});
  } else if (m.method === "tools/call") {
    const token = m.params._meta && m.params._meta.progressToken;
    if (m.params.name === "flood") {
      const count = (m.params.arguments && m.params.arguments.count) || 100000;
      for (let n = 0; n < count; n++) {
        out({jsonrpc: "2.0", method: "notifications/message", params: {level: "info", data: "log line " + n + " ".repeat(200)}});
        if (token !== undefined) out({jsonrpc: "2.0", method: "notifications/progress", params: {progressToken: token, progress: n}});
        else out({jsonrpc: "2.0", method: "notifications/message", params: {level: "debug", data: "more " + n + " ".repeat(200)}});
      }
    } else if (m.params.name === "deafen") {
      deaf = true;
      process.stdin.pause();
      // A paused stdin does not keep node running.
      setInterval(() => {}, 1 << 30);
    } else if (m.params.name === "shout") {
      const mb = Buffer.alloc(1024 * 1024, 120);
      for (let n = 0; n < 100; n++) fs.writeSync(2, mb);
      fs.writeSync(2, "\n");
    }
    out({jsonrpc: "2.0", id: m.id, result: {content: [{type: "text", text: "done " + m.params.name}]}});
  } else if (m.id !== undefined && m.method) {
    out({jsonrpc: "2.0", id: m.id, result: {}});
  }
}
"#;

fn server(dir: &Path) -> Value {
    let path = dir.join("limits-server.js");
    std::fs::write(&path, SERVER).unwrap();
    json!({"command": node(), "args": [path]})
}

/// `mcpgate serve` with `settings` under "mcpgate" and `servers`, once `/readyz` says 200.
async fn gateway(dir: &Path, settings: Value, servers: Value) -> Proc {
    let config = dir.join("mcpgate.json");
    let cfg = json!({"mcpgate": settings, "mcpServers": servers});
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", "127.0.0.1:0"]);
    let gw = Proc::start("mcpgate serve", cmd).await;
    let readyz = format!("{}/readyz", base(&gw.url));
    let ready = until(Duration::from_secs(30), || async { request("GET", &readyz, &[], "").await.status == 200 }).await;
    assert!(ready, "not ready: {}\n{}", request("GET", &readyz, &[], "").await.body, gw.output());
    gw
}

fn base(url: &str) -> String {
    url.trim_end_matches("/mcp").to_owned()
}

fn addr(gw: &Proc) -> SocketAddr {
    base(&gw.url).trim_start_matches("http://").parse().unwrap()
}

/// (VmRSS, VmHWM) of the gateway, in bytes.
fn memory(gw: &Proc) -> (u64, u64) {
    memory_of(gw.child.id().expect("the gateway runs"))
}

/// One value of `/metrics`.
async fn metric(gw: &Proc, name: &str) -> u64 {
    let body = request("GET", &format!("{}/metrics", base(&gw.url)), &[], "").await.body;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{body}"))
        .parse()
        .unwrap()
}

/// A keep-alive HTTP/1.1 connection from a chosen loopback address, answers read by their
/// `Content-Length` (the gateway's JSON answers) — fast enough for tens of thousands.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(to: SocketAddr, from: IpAddr) -> Conn {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        Conn { stream: socket.connect(to).await.unwrap(), buf: Vec::new() }
    }

    /// POSTs `body` to /mcp; returns the status, the session id if any, and the body.
    async fn post(&mut self, session: Option<&str>, body: &str) -> (u16, Option<String>, String) {
        let sid =
            session.map(|s| format!("Mcp-Session-Id: {s}\r\nMCP-Protocol-Version: 2025-06-18\r\n")).unwrap_or_default();
        let req = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{sid}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(req.as_bytes()).await.unwrap();
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let header = |name: &str| head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()));
        let len: usize = header("content-length:").expect("a Content-Length answer").parse().unwrap();
        while self.buf.len() < head_end + len {
            self.fill().await;
        }
        let body = String::from_utf8_lossy(&self.buf[head_end..head_end + len]).into_owned();
        self.buf.drain(..head_end + len);
        (status, header("mcp-session-id:"), body)
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(Duration::from_secs(30), self.stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "the gateway closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

/// A GET stream held open on a session (the session is in use while it is).
async fn hold(to: SocketAddr, from: IpAddr, sid: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut s = socket.connect(to).await.unwrap();
    let req = format!(
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "the GET stream was refused");
    s
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const TWO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const THREE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

#[tokio::test]
async fn limits_fifty_thousand_initializes_from_one_address_stay_under_the_cap_and_64_mb() {
    let dir = tempdir("limits-flood-init");
    // The defaults: nothing under "mcpgate".
    let gw = gateway(&dir, json!({}), json!({"a": server(&dir)})).await;
    let to = addr(&gw);
    let max = metric(&gw, "mcpgate_sessions_per_client_max").await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(Conn::open(to, LOCAL).await);
    }
    let started = Instant::now();
    for i in 0..50_000 {
        let (status, sid, body) = conns[i % 4].post(None, INITIALIZE).await;
        assert_eq!(status, 200, "initialize {i}: {body}");
        assert!(sid.is_some());
    }
    let took = started.elapsed();
    let open = metric(&gw, "mcpgate_sessions_open").await;
    let evicted = metric(&gw, "mcpgate_sessions_evicted_total").await;
    let (rss, hwm) = memory(&gw);
    eprintln!(
        "50,000 initialize in {took:?}: {open} sessions open (cap {max}), {evicted} evicted, RSS {:.1} MB, peak {:.1} MB",
        mb(rss),
        mb(hwm)
    );
    assert!(open <= max, "{open} sessions open, over the cap of {max}");
    assert_eq!(evicted, 50_000 - open);
    assert!(hwm < 64 * 1024 * 1024, "peak RSS {:.1} MB", mb(hwm));
    // The newest sessions still work.
    let (_, sid, _) = conns[0].post(None, INITIALIZE).await;
    let (status, _, body) = conns[0].post(sid.as_deref(), r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("echo"), "{body}");
}

#[tokio::test]
async fn limits_one_address_cannot_take_the_others_places() {
    let dir = tempdir("limits-per-address");
    let gw = gateway(&dir, json!({"maxSessions": 5, "maxSessionsPerClient": 3}), json!({"a": server(&dir)})).await;
    let to = addr(&gw);
    let (mut two, mut three) = (Conn::open(to, TWO).await, Conn::open(to, THREE).await);
    // 127.0.0.2 fills its share and keeps every session busy (a GET stream on each).
    let mut held = Vec::new();
    let mut twos = Vec::new();
    for _ in 0..3 {
        let sid = two.post(None, INITIALIZE).await.1.unwrap();
        held.push(hold(to, TWO, &sid).await);
        twos.push(sid);
    }
    let (status, sid, body) = two.post(None, INITIALIZE).await;
    assert_eq!(status, 503, "{body}");
    assert!(sid.is_none());
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], -32006, "{body}");
    assert!(err["error"]["message"].as_str().unwrap().contains("maxSessionsPerClient"), "{body}");
    // 127.0.0.3 still gets its sessions: up to the global cap, then its own idle one goes.
    let first = three.post(None, INITIALIZE).await.1.unwrap();
    let second = three.post(None, INITIALIZE).await.1.unwrap();
    let (status, third, body) = three.post(None, INITIALIZE).await;
    assert_eq!(status, 200, "{body}");
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    assert_eq!(three.post(Some(&first), list).await.0, 404, "the oldest idle session was not the one evicted");
    assert_eq!(three.post(Some(&second), list).await.0, 200);
    assert_eq!(three.post(third.as_deref(), list).await.0, 200);
    for sid in &twos {
        assert_eq!(two.post(Some(sid), list).await.0, 200, "a busy session was evicted");
    }
    assert_eq!(metric(&gw, "mcpgate_sessions_refused_total").await, 1);
    assert_eq!(metric(&gw, "mcpgate_sessions_evicted_total").await, 1);
    assert_eq!(metric(&gw, "mcpgate_sessions_open").await, 5);
    drop(held);
}

/// A warmed-up gateway's RSS, then its peak after `f`: the growth `f` caused.
async fn growth<F: std::future::Future<Output = ()>>(gw: &Proc, f: F) -> u64 {
    let (before, _) = memory(gw);
    f.await;
    let (_, peak) = memory(gw);
    peak.saturating_sub(before)
}

#[tokio::test]
async fn limits_a_notification_flood_with_nobody_listening_leaves_memory_flat() {
    let dir = tempdir("limits-notification-flood");
    let gw = gateway(&dir, json!({}), json!({"a": server(&dir), "b": server(&dir)})).await;
    let sid = open_session(&gw.url, &[]).await;
    let echo = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__echo","arguments":{}}}"#;
    assert_eq!(call(&gw.url, &sid, &[], echo).await.message()["result"]["content"][0]["text"], "done echo");
    let flood = |token: bool| {
        let meta = if token { r#","_meta":{"progressToken":"p1"}"# } else { "" };
        format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"a__flood","arguments":{{}}{meta}}}}}"#
        )
    };
    let grew = growth(&gw, async {
        // 200,000 log lines while the session has no GET stream open; the answer as JSON.
        let json_only = [
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("mcp-session-id", sid.as_str()),
            ("mcp-protocol-version", "2025-06-18"),
        ];
        let r = request("POST", &gw.url, &json_only, &flood(false)).await;
        assert_eq!(r.message()["result"]["content"][0]["text"], "done flood", "{}", r.body);
        // 100,000 log lines and 100,000 progress notifications on a call streamed as SSE.
        let r = call(&gw.url, &sid, &[], &flood(true)).await;
        assert_eq!(r.message()["result"]["content"][0]["text"], "done flood", "{}", r.body);
    })
    .await;
    let dropped = metric(&gw, "mcpgate_notifications_dropped_total").await;
    let superseded = metric(&gw, "mcpgate_notifications_superseded_total").await;
    eprintln!("notification flood: RSS grew {:.1} MB; {dropped} dropped, {superseded} superseded", mb(grew));
    assert!(grew < 20 * 1024 * 1024, "RSS grew {:.1} MB", mb(grew));
    assert!(dropped > 100_000, "only {dropped} notifications dropped");
}

#[tokio::test]
async fn limits_a_100_mb_stderr_line_leaves_memory_flat() {
    let dir = tempdir("limits-stderr");
    let gw = gateway(&dir, json!({}), json!({"a": server(&dir)})).await;
    let sid = open_session(&gw.url, &[]).await;
    let echo = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    assert_eq!(call(&gw.url, &sid, &[], echo).await.message()["result"]["content"][0]["text"], "done echo");
    let shout = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"shout","arguments":{}}}"#;
    let grew = growth(&gw, async {
        let r = call(&gw.url, &sid, &[], shout).await;
        assert_eq!(r.message()["result"]["content"][0]["text"], "done shout", "{}", r.body);
        // The line is read to its end: the metric counts it once it is whole.
        let cut =
            until(Duration::from_secs(30), || async { metric(&gw, "mcpgate_child_stderr_lines_cut_total").await > 0 });
        assert!(cut.await, "the long stderr line was never cut");
    })
    .await;
    eprintln!("100 MB stderr line: RSS grew {:.1} MB", mb(grew));
    assert!(grew < 20 * 1024 * 1024, "RSS grew {:.1} MB", mb(grew));
}

#[tokio::test]
async fn limits_servers_that_cannot_start_leave_the_listing_at_once_and_readyz_names_them() {
    let dir = tempdir("limits-start");
    let servers = json!({
        "good": server(&dir),
        "missing": {"command": dir.join("no-such-server").to_str().unwrap()},
        "crashing": {"command": node(), "args": ["-e", "process.exit(3)"]},
    });
    let gw = gateway(&dir, json!({}), servers.clone()).await;
    let readyz = format!("{}/readyz", base(&gw.url));
    let r = request("GET", &readyz, &[], "").await;
    assert_eq!(r.status, 200, "ready: any is the default; {}", r.body);
    let sid = open_session(&gw.url, &[]).await;
    let started = Instant::now();
    let r = call(&gw.url, &sid, &[], r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).await;
    let took = started.elapsed();
    let names: Vec<String> = r.message()["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    eprintln!("merged tools/list with two servers that cannot start: {took:?}");
    assert_eq!(names, ["good__echo", "good__flood", "good__shout", "good__deafen"]);
    assert!(took < Duration::from_secs(3), "the listing waited {took:?}");
    // A call to one of them fails now, with the reason, not at the timeout.
    let started = Instant::now();
    let body = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"missing__x","arguments":{}}}"#;
    let answer = call(&gw.url, &sid, &[], body).await.message();
    assert!(started.elapsed() < Duration::from_secs(3), "the call waited {:?}", started.elapsed());
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    // Each server's state, with the reason and the next attempt.
    let health = request("GET", &readyz, &[], "").await.json();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["servers"]["good"]["status"], "ready", "{health}");
    for name in ["missing", "crashing"] {
        let s = &health["servers"][name];
        assert_eq!(s["status"], "failed", "{health}");
        assert!(s["reason"].as_str().is_some_and(|r| !r.is_empty()), "{health}");
        assert!(s["retryInMs"].as_u64().is_some(), "{health}");
    }
    assert!(health["servers"]["missing"]["reason"].as_str().unwrap().contains("could not be started"), "{health}");
    // "ready": "all", applied by a reload: the gateway is not ready while a server is down.
    let cfg = json!({"mcpgate": {"ready": "all"}, "mcpServers": servers});
    std::fs::write(dir.join("mcpgate.json"), serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let r = request("POST", &format!("{}/admin/reload", base(&gw.url)), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(request("GET", &readyz, &[], "").await.status, 503);
}

/// A stdio server that stops reading its stdin: what waits for it is bounded (1 MiB), and the
/// calls that do not fit fail at once with the reason, on the lone server's fast path and on the
/// message path (a progress token) alike — not at the timeout, and not by growing the gateway
/// by the 128 MB the clients send.
#[tokio::test]
async fn limits_a_stdio_server_that_stops_reading_fails_calls_at_once_and_memory_stays_flat() {
    let dir = tempdir("limits-deaf");
    let mut deaf = server(&dir);
    deaf["timeout"] = json!(3);
    let gw = gateway(&dir, json!({}), json!({"a": deaf})).await;
    let sid = open_session(&gw.url, &[]).await;
    let deafen = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deafen","arguments":{}}}"#;
    assert_eq!(call(&gw.url, &sid, &[], deafen).await.message()["result"]["content"][0]["text"], "done deafen");
    let padding = std::sync::Arc::new("x".repeat(128 * 1024));
    let calls = 1000usize;
    let at_once = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let grew = growth(&gw, async {
        let one = |i: usize| {
            let meta = if i.is_multiple_of(2) { r#","_meta":{"progressToken":"p"}"# } else { "" };
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"echo","arguments":{{"pad":"{padding}"}}{meta}}}}}"#
            );
            let (url, sid, at_once) = (gw.url.clone(), sid.clone(), at_once.clone());
            async move {
                let started = Instant::now();
                let answer = call(&url, &sid, &[], &body).await.message();
                let message = answer["error"]["message"].as_str().unwrap_or_default().to_owned();
                if message.contains("not reading its input") {
                    assert_eq!(answer["error"]["code"], -32001, "{answer}");
                    assert!(started.elapsed() < Duration::from_secs(2), "refused after {:?}", started.elapsed());
                    at_once.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    // Queued before the room ran out: it waits for the server, up to the timeout.
                    assert!(answer["error"].is_object(), "the deaf server answered: {answer}");
                }
            }
        };
        // 50 clients at a time.
        let mut running = tokio::task::JoinSet::new();
        for i in 0..calls {
            if running.len() >= 50 {
                running.join_next().await.unwrap().unwrap();
            }
            running.spawn(one(i));
        }
        while let Some(done) = running.join_next().await {
            done.unwrap();
        }
    })
    .await;
    let refused = metric(&gw, "mcpgate_child_stdin_refused_total").await;
    let at_once = at_once.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{calls} calls of 128 KiB to a server not reading: {at_once} refused at once, RSS grew {:.1} MB",
        mb(grew)
    );
    assert!(at_once >= calls - 50, "only {at_once} of {calls} calls were refused at once");
    assert_eq!(refused, at_once as u64);
    assert!(grew < 40 * 1024 * 1024, "RSS grew {:.1} MB", mb(grew));
}

/// A server logging to 10,000 sessions that have no GET stream open: the logs have nobody to go
/// to and are not kept (dropped, counted), so memory stays flat; a session that listens still
/// gets them. (Before, each idle session kept 256: about 300 KB of these, 3 GB for 10,000. The
/// flood comes in steps, memory read after each, so a regression fails at the first.)
#[tokio::test]
async fn limits_a_log_flood_to_10_000_idle_sessions_leaves_memory_flat() {
    let dir = tempdir("limits-idle-sessions");
    let settings = json!({"maxSessions": 10_001, "maxSessionsPerClient": 10_001});
    let gw = gateway(&dir, settings, json!({"a": server(&dir)})).await;
    let to = addr(&gw);
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(Conn::open(to, LOCAL).await);
    }
    for i in 0..10_000 {
        let (status, _, body) = conns[i % 4].post(None, INITIALIZE).await;
        assert_eq!(status, 200, "initialize {i}: {body}");
    }
    // One more session, listening.
    let (_, sid, _) = conns[0].post(None, INITIALIZE).await;
    let sid = sid.unwrap();
    let mut listening = hold(to, LOCAL, &sid).await;
    let (base, _) = memory(&gw);
    let dropped_before = metric(&gw, "mcpgate_notifications_dropped_total").await;
    let (steps, per_step) = (15u64, 20u64);
    for step in 1..=steps {
        // `flood` sends two logs per count: 40 a step, each to 10,000 idle sessions.
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{step},"method":"tools/call","params":{{"name":"flood","arguments":{{"count":{per_step}}}}}}}"#
        );
        let json_only = [
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("mcp-session-id", sid.as_str()),
            ("mcp-protocol-version", "2025-06-18"),
        ];
        let r = request("POST", &gw.url, &json_only, &body).await;
        assert_eq!(r.message()["result"]["content"][0]["text"], "done flood", "{}", r.body);
        let expected = dropped_before + step * 2 * per_step * 10_000;
        // (Past the limit, the memory is read all the same.)
        until(Duration::from_secs(10), || async {
            metric(&gw, "mcpgate_notifications_dropped_total").await >= expected
        })
        .await;
        let (rss, _) = memory(&gw);
        assert!(
            rss < base + 30 * 1024 * 1024,
            "after {} logs to 10,000 idle sessions RSS grew {:.1} MB",
            step * 2 * per_step,
            mb(rss.saturating_sub(base))
        );
    }
    let (rss, hwm) = memory(&gw);
    let dropped = metric(&gw, "mcpgate_notifications_dropped_total").await - dropped_before;
    eprintln!(
        "{} logs to 10,000 idle sessions: {dropped} dropped, RSS {:.1} MB (grew {:.1} MB), peak {:.1} MB",
        steps * 2 * per_step,
        mb(rss),
        mb(rss.saturating_sub(base)),
        mb(hwm)
    );
    assert!(dropped >= steps * 2 * per_step * 10_000, "{dropped} dropped");
    // Only the listening session holds logs (its stream is not read yet): its queue's worth.
    let queued = metric(&gw, "mcpgate_notifications_queued").await;
    assert!(queued <= 256, "{queued} notifications queued: an idle session kept logs");
    // The session that listens got them.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains("log line") {
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout_at(deadline.into(), listening.read(&mut chunk))
            .await
            .expect("the listening session got no log")
            .unwrap();
        assert!(n > 0, "the GET stream ended");
        seen.extend_from_slice(&chunk[..n]);
    }
}
