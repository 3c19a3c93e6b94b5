//! Harness for the sign-in tests: a certified OpenID provider (tests/fixtures/oidc-provider.mjs),
//! MCP servers behind it (tests/fixtures/protected-server.mjs), the browser commands mcpgate runs
//! (headless Chromium through tests/fixtures/browser-login.mjs, counted), and a raw stdio client for
//! the bridge.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::harness::*;

/// The OpenID provider, with `args` (e.g. `--fault no-s256`) and an access-token lifetime.
pub async fn idp(args: &[&str], token_ttl_secs: u64) -> Proc {
    let mut cmd = Command::new(node());
    cmd.arg(repo().join("tests/fixtures/oidc-provider.mjs"))
        .args(args)
        .env("ACCESS_TOKEN_TTL", token_ttl_secs.to_string());
    Proc::start("oidc-provider", cmd).await
}

/// An MCP server whose tokens come from `issuer`.
pub async fn protected(issuer: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(node());
    cmd.arg(repo().join("tests/fixtures/protected-server.mjs")).args(["--issuer", issuer]).args(args);
    Proc::start("protected server", cmd).await
}

pub async fn get_json(url: &str) -> Value {
    request("GET", url, &[], "").await.json()
}

pub async fn post(url: &str) -> Value {
    request("POST", url, &[("content-type", "application/json")], "{}").await.json()
}

/// The IdP's counters (`/__test/stats`).
pub async fn stats(idp: &Proc) -> Value {
    get_json(&format!("{}/__test/stats", idp.url)).await
}

/// Every token a protected server was shown (`/__test/seen`).
pub async fn seen(server: &Proc) -> Vec<Value> {
    let base = server.url.trim_end_matches("/mcp");
    get_json(&format!("{base}/__test/seen")).await.as_array().cloned().unwrap_or_default()
}

/// Polls the async `probe` every 100 ms until it holds, for at most `limit`.
pub async fn until<F, Fut>(limit: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if probe().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A browser command for mcpgate (`MCPGATE_BROWSER`): appends a line to `count` each time it runs,
/// then signs in with headless Chromium (or, with `sign_in` false, fails: "no browser expected").
pub fn browser(count: &Path, sign_in: bool) -> String {
    let then = if sign_in {
        format!("{} {}", node().display(), repo().join("tests/fixtures/browser-login.mjs").display())
    } else {
        "false".to_owned()
    };
    format!("echo opened >> {}; {then}", count.display())
}

/// How many times a browser was opened.
pub fn opened(count: &Path) -> usize {
    std::fs::read_to_string(count).map(|s| s.lines().count()).unwrap_or(0)
}

/// A private store directory and the browser counter beside it.
pub fn store(name: &str) -> (PathBuf, PathBuf) {
    let dir = tempdir(name);
    (dir.join("store"), dir.join("browser-count"))
}

/// `mcpgate ARGS` with the store and browser set; returns (success, stderr).
pub async fn mcpgate(args: &[&str], store: &Path, browser: &str) -> (bool, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        Command::new(mcpgate_bin())
            .args(args)
            .env("MCPGATE_STORE_DIR", store)
            .env("MCPGATE_BROWSER", browser)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("mcpgate finished in time")
    .expect("mcpgate runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `mcpgate stdio` driven line by line.
pub struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::UnboundedReceiver<Value>,
    pub stderr: Arc<Mutex<String>>,
    next_id: u64,
    /// Messages that were not the answer waited for (notifications, server requests).
    pub other: Vec<Value>,
}

impl Bridge {
    pub async fn start(url: &str, args: &[&str], store: &Path, browser: &str) -> Bridge {
        Bridge::start_with_env(url, args, store, browser, &[]).await
    }

    /// `start`, with `env` set for the bridge too (a client secret, say).
    pub async fn start_with_env(url: &str, args: &[&str], store: &Path, browser: &str, env: &[(&str, &str)]) -> Bridge {
        let mut child = Command::new(mcpgate_bin())
            .arg("stdio")
            .arg(url)
            .args(args)
            .env("MCPGATE_STORE_DIR", store)
            .env("MCPGATE_BROWSER", browser)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mcpgate stdio starts");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "not_json": line }));
                let _ = tx.send(v);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut errs = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errs.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Bridge { stdin: child.stdin.take(), child, rx, stderr, next_id: 1, other: Vec::new() }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    async fn send(&mut self, msg: &Value) {
        let line = format!("{msg}\n");
        self.stdin.as_mut().expect("stdin open").write_all(line.as_bytes()).await.expect("bridge stdin");
    }

    /// A request and its answer (within `limit`).
    pub async fn request_within(&mut self, method: &str, params: Value, limit: Duration) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})).await;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => m,
                Ok(None) => panic!("the bridge closed stdout before answering {method}; stderr:\n{}", self.stderr()),
                Err(_) => panic!("no answer to {method} within {limit:?}; stderr:\n{}", self.stderr()),
            };
            if msg["id"] == id && msg.get("method").is_none() {
                return msg;
            }
            self.other.push(msg);
        }
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.request_within(method, params, Duration::from_secs(60)).await
    }

    /// initialize + notifications/initialized; returns the initialize answer.
    pub async fn initialize(&mut self) -> Value {
        let r = self
            .request(
                "initialize",
                json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw-bridge-test","version":"1"}}),
            )
            .await;
        self.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
        r
    }

    /// A `tools/call` and its text (panics on an error answer).
    pub async fn call_text(&mut self, tool: &str, args: Value) -> String {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args})).await;
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{tool} failed: {r}\nstderr:\n{}", self.stderr()))
            .to_owned()
    }

    /// Closes stdin and waits for the bridge to exit.
    pub async fn close(mut self) -> String {
        drop(self.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        self.stderr()
    }
}

/// Every directory and file under `dir`, `dir` first.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_owned()];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
