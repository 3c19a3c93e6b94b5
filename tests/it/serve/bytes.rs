//! Bytes: real servers answer through the gateway what they answer direct. Five real stdio
//! servers — npm's server-everything, server-filesystem and server-memory, PyPI's
//! mcp-server-time and mcp-server-fetch (fetching from a local site) — are each driven directly
//! over stdio (JSON lines, as the gateway drives them), and server-everything over Streamable
//! HTTP too (`evhttp`, driven directly in a session of its own), and through one `mcpgate serve`
//! with all, on `/servers/<name>/mcp` and on `/mcp`,
//! by the same script: the handshake the gateway's client sends, then every method the server
//! offers (listings, tool calls with structured results, prompts, reads, completions,
//! subscriptions, ping, the log level) and errors (an unknown tool, prompt, resource; a tool's
//! own failure).
//!
//! Each stdio server is `"stateful"`, so each client session gets a child of its own, initialized
//! with that client's capabilities and `clientInfo` — the same `initialize` the direct session
//! sends (see [`INIT_PARAMS`]) — and a server that offers tools by the client's capabilities
//! (server-everything) offers the same ones on every side; the remote one sees each client
//! session in an upstream session of its own, opened with that client's `initialize`.
//!
//! Compared: the raw text of each answer's `result` (or `error`) member, taken from the line or
//! the event as written (serde_json's `RawValue`), ids aside. On `/servers/<name>/mcp` it must be
//! the direct one byte for byte, `initialize`'s included. On `/mcp` the same once the documented
//! prefixes are mapped back (names `<server>__x` → `x`, URIs `mcpgate://<server>/u` → `u`):
//! - the prefixes appear only in the merged listings, which the gateway builds from every
//!   server's and writes anew: those are compared re-serialized through `serde_json::Value` on
//!   both sides (`preserve_order`, so key order still counts), this server's items only,
//!   unprefixed;
//! - every other answer (a call's result, a prompt, a read, an error) is the server's, names and
//!   URIs inside it as the server wrote them: byte for byte, as alone;
//! - what `/mcp` answers as itself is not the server's: its `initialize` (the gateway's name,
//!   every server's capabilities) is not compared; a listing or the log level that a server
//!   does not offer is that server's -32601 alone, and on `/mcp` nothing of it in the merged
//!   listing, and a `{}` for the log level (see [`merged_as_direct`]).
//!
//! What a server itself answers differently from one run to the next is normalised in that one
//! field (each [`Norm`] says which). Differences found would be listed in [`KNOWN`], each with
//! an ignored test of its own.

use std::path::Path;
use std::process::Stdio;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::*;

/// The protocol version the gateway speaks to a stdio child (src/serve/child.rs), which a client
/// of the gateway speaks too, so that the child and the direct session negotiate the same.
const VERSION: &str = "2025-11-25";

/// The params of every `initialize` here, in the gateway's key order (src/serve/child.rs): the
/// gateway tells a stateful child the client's own capabilities and `clientInfo`. Elicitation and
/// sampling, so that server-everything offers its tools for such clients; no roots, so that no
/// server asks the client anything at start.
const INIT_PARAMS: &str = r#"{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{},"sampling":{}},"clientInfo":{"name":"bytes-test","version":"1"}}"#;

/// What a server answers differently from one run to the next, normalised on every side.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Norm {
    None,
    /// server-everything's dynamic resources (`demo://resource/dynamic/…`): the text ends with
    /// `created at <the time of the read>` (`toLocaleTimeString`), and a blob is the base64 of
    /// such a text.
    CreatedAt,
    /// mcp-server-time's `get_current_time`: `datetime` is the current time (in the text content
    /// and in `structuredContent`). (`convert_time` is on today's date: it would differ only if
    /// the sessions straddled midnight, UTC; not normalised.)
    Now,
}

/// One request of a server's script.
struct Step {
    method: &'static str,
    params: Value,
    norm: Norm,
}

fn step(method: &'static str, params: Value) -> Step {
    Step { method, params, norm: Norm::None }
}

fn tool(name: &str, arguments: Value) -> Step {
    step("tools/call", json!({"name": name, "arguments": arguments}))
}

/// The methods whose answers the merged endpoint builds from every server's (`LISTINGS`).
const LISTINGS: [(&str, &str); 4] = [
    ("tools/list", "tools"),
    ("prompts/list", "prompts"),
    ("resources/list", "resources"),
    ("resources/templates/list", "resourceTemplates"),
];

/// What every script starts with, whether the server offers it or not: the listings, `ping`,
/// the log level, a completion of a prompt it does not have.
fn common() -> Vec<Step> {
    let mut steps: Vec<Step> = LISTINGS.iter().map(|(m, _)| step(m, json!({}))).collect();
    steps.extend([
        step("ping", json!({})),
        step("logging/setLevel", json!({"level": "warning"})),
        step(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "nope"}, "argument": {"name": "a", "value": ""}}),
        ),
    ]);
    steps
}

/// A real stdio server: how to start it, and its script.
struct Real {
    name: &'static str,
    command: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    script: Vec<Step>,
    /// What the server works on, put back as it was before each session: a file it keeps its
    /// state in (server-memory: removed), the directory it serves (server-filesystem: written
    /// anew).
    state: Option<PathBuf>,
    /// Where the server listens instead, when it is a remote one (Streamable HTTP): the gateway
    /// reaches it there, and so does the direct session.
    url: Option<String>,
}

impl Real {
    /// The server in the gateway's configuration.
    fn config(&self) -> Value {
        if let Some(url) = &self.url {
            return json!({"url": url});
        }
        let env: serde_json::Map<String, Value> = self.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        json!({"command": self.command, "args": self.args, "env": env, "stateful": true})
    }

    fn reset(&self) {
        match &self.state {
            Some(d) if d.is_dir() => files(d),
            Some(f) => {
                let _ = std::fs::remove_file(f);
            }
            None => {}
        }
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// npm's server-everything: tools (text, structured, image, resource links and references,
/// annotations, a long-running one), prompts (with arguments, completable, with a resource),
/// static and dynamic resources, templates, completions, subscriptions, the log level. Left out:
/// `get-env` (the environment is the caller's, not the server's answer), the tools that ask the
/// client something or start tasks (elicitation.rs and the SDK tests cover them), and the toggles
/// that start timers sending notifications.
fn everything() -> Real {
    let doc = "demo://resource/static/document/architecture.md";
    let mut script = common();
    script.extend([
        tool("echo", json!({"message": "bytes: ✓ \"quoted\" \\ \u{1}"})),
        tool("get-sum", json!({"a": 2, "b": 3.5})),
        tool("get-structured-content", json!({"location": "Chicago"})),
        tool("get-annotated-message", json!({"messageType": "error", "includeImage": true})),
        tool("get-tiny-image", json!({})),
        tool("get-resource-links", json!({"count": 3})),
        Step { norm: Norm::CreatedAt, ..tool("get-resource-reference", json!({"resourceType": "Text", "resourceId": 2})) },
        tool("trigger-long-running-operation", json!({"duration": 0.2, "steps": 2})),
        tool("get-sum", json!({"a": "two"})),
        tool("nope", json!({})),
        step("prompts/get", json!({"name": "simple-prompt"})),
        step("prompts/get", json!({"name": "args-prompt", "arguments": {"city": "Kraków", "state": "Lesser Poland"}})),
        step("prompts/get", json!({"name": "completable-prompt", "arguments": {"department": "Sales", "name": "Bob"}})),
        Step {
            norm: Norm::CreatedAt,
            ..step("prompts/get", json!({"name": "resource-prompt", "arguments": {"resourceType": "Blob", "resourceId": "4"}}))
        },
        step("prompts/get", json!({"name": "nope"})),
        step("resources/read", json!({"uri": doc})),
        Step { norm: Norm::CreatedAt, ..step("resources/read", json!({"uri": "demo://resource/dynamic/text/1"})) },
        Step { norm: Norm::CreatedAt, ..step("resources/read", json!({"uri": "demo://resource/dynamic/blob/2"})) },
        step("resources/read", json!({"uri": "demo://resource/static/document/nope.md"})),
        step("resources/subscribe", json!({"uri": doc})),
        step("resources/unsubscribe", json!({"uri": doc})),
        step(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "completable-prompt"}, "argument": {"name": "department", "value": "S"}}),
        ),
        step(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "completable-prompt"}, "argument": {"name": "name", "value": ""},
                   "context": {"arguments": {"department": "Engineering"}}}),
        ),
        step(
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": "demo://resource/dynamic/text/{resourceId}"},
                   "argument": {"name": "resourceId", "value": "1"}}),
        ),
    ]);
    Real {
        name: "everything",
        command: node(),
        args: vec![
            path_str(&repo().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")),
            "stdio".into(),
        ],
        env: vec![],
        script,
        state: None,
        url: None,
    }
}

/// The directory server-filesystem serves, as every session starts with it.
fn files(root: &Path) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), "hello\nworld\nç'est «ça»\n").unwrap();
    std::fs::write(root.join("b.md"), "# notes\n\n- one\n- two\n").unwrap();
    std::fs::write(root.join("sub/c.json"), "{\"z\": 1, \"a\": [true, null]}\n").unwrap();
    std::fs::write(root.join("dot.png"), b"\x89PNG\r\n\x1a\n not really an image").unwrap();
}

/// npm's server-filesystem on a directory of its own (`root`, holding a few files, written anew
/// before each session): every tool, one refused path and an unknown tool. Left out:
/// `get_file_info` (its times change as the files are read and written anew).
fn filesystem(root: &Path) -> Real {
    files(root);
    let root = std::fs::canonicalize(root).unwrap();
    let at = |p: &str| path_str(&root.join(p));
    let mut script = common();
    script.extend([
        tool("list_allowed_directories", json!({})),
        tool("list_directory", json!({"path": at("")})),
        tool("list_directory_with_sizes", json!({"path": at(""), "sortBy": "size"})),
        tool("directory_tree", json!({"path": at("")})),
        tool("read_text_file", json!({"path": at("a.txt")})),
        tool("read_text_file", json!({"path": at("a.txt"), "head": 1})),
        tool("read_file", json!({"path": at("sub/c.json")})),
        tool("read_multiple_files", json!({"paths": [at("a.txt"), at("b.md"), at("missing")]})),
        tool("search_files", json!({"path": at(""), "pattern": "*.md"})),
        tool(
            "edit_file",
            json!({"path": at("a.txt"), "edits": [{"oldText": "world", "newText": "there"}], "dryRun": true}),
        ),
        tool("read_media_file", json!({"path": at("dot.png")})),
        tool("write_file", json!({"path": at("new.txt"), "content": "written\n"})),
        tool("create_directory", json!({"path": at("sub/deeper")})),
        tool("move_file", json!({"source": at("new.txt"), "destination": at("sub/deeper/moved.txt")})),
        tool("edit_file", json!({"path": at("b.md"), "edits": [{"oldText": "- two", "newText": "- 2"}]})),
        tool("directory_tree", json!({"path": at("")})),
        tool("move_file", json!({"source": at("a.txt"), "destination": at("b.md")})),
        tool("read_text_file", json!({"path": "/etc/hostname"})),
        tool("nope", json!({})),
        step("resources/read", json!({"uri": format!("file://{}", at("a.txt"))})),
    ]);
    Real {
        name: "filesystem",
        command: node(),
        args: vec![
            path_str(&repo().join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")),
            path_str(&root),
        ],
        env: vec![],
        script,
        state: Some(root),
        url: None,
    }
}

/// npm's server-memory on a knowledge graph of its own (`file`, removed before each session so
/// every session starts from nothing): every tool (structured results), a failing one, the graph
/// as a resource, a subscription.
fn memory(file: &Path) -> Real {
    let graph = "memory://knowledge-graph";
    let mut script = common();
    script.extend([
        tool(
            "create_entities",
            json!({"entities": [
                {"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]},
                {"name": "Engine", "entityType": "machine", "observations": ["analytical", "never built"]},
                {"name": "Zoë", "entityType": "person", "observations": []},
            ]}),
        ),
        tool("create_relations", json!({"relations": [{"from": "Ada", "to": "Engine", "relationType": "programmed"}]})),
        tool("add_observations", json!({"observations": [{"entityName": "Ada", "contents": ["born 1815"]}]})),
        tool("add_observations", json!({"observations": [{"entityName": "Nobody", "contents": ["x"]}]})),
        tool("read_graph", json!({})),
        tool("search_nodes", json!({"query": "program"})),
        tool("open_nodes", json!({"names": ["Engine", "Nobody"]})),
        step("resources/read", json!({"uri": graph})),
        step("resources/subscribe", json!({"uri": graph})),
        step("resources/unsubscribe", json!({"uri": graph})),
        tool("delete_observations", json!({"deletions": [{"entityName": "Engine", "observations": ["never built"]}]})),
        tool("delete_relations", json!({"relations": [{"from": "Ada", "to": "Engine", "relationType": "programmed"}]})),
        tool("delete_entities", json!({"entityNames": ["Zoë"]})),
        tool("read_graph", json!({})),
        step("resources/read", json!({"uri": "memory://nope"})),
        tool("nope", json!({})),
    ]);
    Real {
        name: "memory",
        command: node(),
        args: vec![path_str(&repo().join("node_modules/@modelcontextprotocol/server-memory/dist/index.js"))],
        env: vec![("MEMORY_FILE_PATH".into(), path_str(file))],
        script,
        state: Some(file.to_owned()),
        url: None,
    }
}

/// PyPI's mcp-server-time (`python -m mcp_server_time`, its local zone given: UTC): both tools
/// (structured results), a bad zone, an unknown tool, prompt and resource (it declares prompts
/// and resources, and has none).
fn time() -> Real {
    let mut script = common();
    script.extend([
        Step { norm: Norm::Now, ..tool("get_current_time", json!({"timezone": "Europe/Warsaw"})) },
        tool(
            "convert_time",
            json!({"source_timezone": "America/New_York", "time": "16:30", "target_timezone": "Asia/Kathmandu"}),
        ),
        tool("get_current_time", json!({"timezone": "Mars/Olympus_Mons"})),
        tool("nope", json!({})),
        step("prompts/get", json!({"name": "nope"})),
        step("resources/read", json!({"uri": "time://nope"})),
    ]);
    Real {
        name: "time",
        command: python(),
        args: ["-m", "mcp_server_time", "--local-timezone", "UTC"].map(String::from).to_vec(),
        env: vec![],
        script,
        state: None,
        url: None,
    }
}

/// PyPI's mcp-server-fetch, fetching pages of a local site (`site`, on loopback: the server is
/// told to allow private addresses and not to ask for robots.txt): as markdown, raw, a slice of
/// it, a missing page; its prompt; an unknown tool.
fn fetch(site: &str) -> Real {
    let page = format!("{site}/index.html");
    let mut script = common();
    script.extend([
        tool("fetch", json!({"url": page})),
        tool("fetch", json!({"url": page, "raw": true})),
        tool("fetch", json!({"url": page, "max_length": 40, "start_index": 10})),
        tool("fetch", json!({"url": format!("{site}/missing.html")})),
        step("prompts/get", json!({"name": "fetch", "arguments": {"url": page}})),
        tool("nope", json!({})),
    ]);
    Real {
        name: "fetch",
        command: python(),
        args: ["-m", "mcp_server_fetch", "--allow-private-ips", "--ignore-robots-txt"].map(String::from).to_vec(),
        env: vec![],
        script,
        state: None,
        url: None,
    }
}

/// A local site for mcp-server-fetch: one page, served by Python's own HTTP server on loopback.
async fn site(dir: &Path) -> (tokio::process::Child, String) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<html><head><title>Test page</title></head><body><h1>Hello</h1>\
         <p>A page for the byte test, with <a href=\"/x\">a link</a> and <b>bold</b> words.</p></body></html>",
    )
    .unwrap();
    let port = free_port();
    let child = tokio::process::Command::new(python())
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let up = crate::harness::eventually(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(up, "the local site did not come up at {url}");
    (child, url)
}

/// The parts of a JSON-RPC message compared, as written (raw).
#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: Option<String>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// The `result` or `error` member of a response, its raw text, named (`result: …`, `error: …`).
fn member(line: &str) -> String {
    let m: Raw<'_> = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a message ({e}): {line}"));
    match (m.result, m.error) {
        (Some(r), None) => format!("result: {}", r.get()),
        (None, Some(e)) => format!("error: {}", e.get()),
        _ => panic!("neither a result nor an error: {line}"),
    }
}

/// A server spoken to directly over stdio, as the gateway speaks to its children.
struct Direct {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Direct {
    async fn start(s: &Real) -> Direct {
        let mut cmd = tokio::process::Command::new(&s.command);
        cmd.args(&s.args)
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", s.name));
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Direct { child, stdin, lines }
    }

    async fn write(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Sends request `id` and reads to its answer (the line, as written); notifications on the
    /// way are skipped, and a request of the server's is refused (none is expected: the client
    /// declares no roots, and no tool here asks the client anything).
    async fn request(&mut self, id: u64, method: &str, params: &Value) -> String {
        self.write(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()).await;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within 30 s"))
                .unwrap()
                .unwrap_or_else(|| panic!("the server exited before answering {method}"));
            let Ok(m) = serde_json::from_str::<Raw<'_>>(&line) else { continue };
            match (m.id, m.method) {
                (Some(i), None) if i.get() == id.to_string() => return line,
                (Some(i), Some(asked)) => {
                    let refusal = format!(
                        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32601,"message":"not in this test: {asked}"}}}}"#,
                        i.get()
                    );
                    self.write(&refusal).await;
                }
                _ => {}
            }
        }
    }
}

/// A client session of the gateway over raw HTTP, declaring what the direct session declares.
struct Http {
    url: String,
    sid: String,
}

impl Http {
    /// The session, and the answer to its `initialize` as written.
    async fn open(url: &str) -> (Http, String) {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{INIT_PARAMS}}}"#);
        let r = request("POST", url, MCP_HEADERS, &body).await;
        assert_eq!(r.status, 200, "initialize at {url}: {}", r.body);
        let sid = r.header("mcp-session-id").expect("a session id").to_owned();
        let http = Http { url: url.to_owned(), sid };
        let init = Http::answer(1, r).unwrap_or_else(|body| panic!("no answer to initialize at {url}: {body}"));
        let r = http.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
        assert_eq!(r.status, 202, "initialized at {url}: {}", r.body);
        (http, init)
    }

    async fn post(&self, body: &str) -> Reply {
        let mut h = MCP_HEADERS.to_vec();
        h.push(("mcp-session-id", &self.sid));
        h.push(("mcp-protocol-version", VERSION));
        request("POST", &self.url, &h, body).await
    }

    /// Sends request `id`; its answer as written (the JSON body, or the `data` of the event
    /// that answers it).
    async fn request(&self, id: u64, method: &str, params: &Value) -> String {
        let r = self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()).await;
        assert_eq!(r.status, 200, "{method} at {}: {}", self.url, r.body);
        Http::answer(id, r).unwrap_or_else(|body| panic!("no answer to {method} at {}: {body}", self.url))
    }

    /// The answer to request `id` in `r` as written (`Err`: the body, which has none).
    fn answer(id: u64, r: Reply) -> Result<String, String> {
        if r.header("content-type").is_some_and(|v| v.starts_with("application/json")) {
            return Ok(r.body);
        }
        let body = r.body.replace("\r\n", "\n");
        for event in body.split("\n\n") {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            let data = data.join("\n");
            if let Ok(m) = serde_json::from_str::<Raw<'_>>(&data)
                && m.method.is_none()
                && m.id.is_some_and(|i| i.get() == id.to_string())
            {
                return Ok(data);
            }
        }
        Err(body)
    }

    async fn close(&self) {
        let h = [("mcp-session-id", self.sid.as_str()), ("mcp-protocol-version", VERSION)];
        request("DELETE", &self.url, &h, "").await;
    }
}

/// Where a script runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Direct,
    /// `/servers/<name>/mcp`.
    Lone,
    /// `/mcp`.
    Merged,
}

/// The params a client of `side` sends for a step: on `/mcp`, a tool's or prompt's name with
/// its server's prefix, a resource's URI (or template) naming its server.
fn params_for(server: &str, side: Side, method: &str, params: &Value) -> Value {
    let mut p = params.clone();
    if side != Side::Merged {
        return p;
    }
    let prefix = |v: &mut Value| *v = json!(format!("{server}__{}", v.as_str().unwrap()));
    let namespace = |v: &mut Value| *v = json!(format!("mcpgate://{server}/{}", v.as_str().unwrap()));
    match method {
        "tools/call" | "prompts/get" => prefix(&mut p["name"]),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => namespace(&mut p["uri"]),
        "completion/complete" if p["ref"]["type"] == "ref/prompt" => prefix(&mut p["ref"]["name"]),
        "completion/complete" => namespace(&mut p["ref"]["uri"]),
        _ => {}
    }
    p
}

/// What a session on one side was answered: `initialize`'s raw member, and each step's,
/// normalised, in order.
struct Answers {
    init: String,
    steps: Vec<String>,
}

/// Runs `s`'s script on one side (a fresh session; its state removed first).
async fn run(s: &Real, side: Side, gw: &str) -> Answers {
    s.reset();
    let mut answers = Vec::new();
    let init = match side {
        Side::Direct if let Some(url) = &s.url => {
            let (http, init) = Http::open(url).await;
            for (i, st) in s.script.iter().enumerate() {
                let text = http.request(i as u64 + 2, st.method, &st.params).await;
                answers.push(normalise(st.norm, &member(&text)));
            }
            http.close().await;
            member(&init)
        }
        Side::Direct => {
            let mut d = Direct::start(s).await;
            let init = member(&d.request(1, "initialize", &serde_json::from_str(INIT_PARAMS).unwrap()).await);
            assert!(init.starts_with("result: "), "{}: initialize: {init}", s.name);
            d.write(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
            for (i, st) in s.script.iter().enumerate() {
                let line = d.request(i as u64 + 2, st.method, &st.params).await;
                answers.push(normalise(st.norm, &member(&line)));
            }
            let _ = d.child.kill().await;
            init
        }
        Side::Lone | Side::Merged => {
            let url = if side == Side::Lone { format!("{}/servers/{}/mcp", base(gw), s.name) } else { gw.to_owned() };
            let (http, init) = Http::open(&url).await;
            for (i, st) in s.script.iter().enumerate() {
                let params = params_for(s.name, side, st.method, &st.params);
                let text = http.request(i as u64 + 2, st.method, &params).await;
                answers.push(normalise(st.norm, &member(&text)));
            }
            http.close().await;
            member(&init)
        }
    };
    Answers { init, steps: answers }
}

/// A step's answer on `/mcp` and the direct one, as compared (see the module's comment): a merged
/// listing (built anew by the gateway from every server's) is this server's items only, names
/// `<server>__x` → `x` and URIs `mcpgate://<server>/u` → `u`, re-serialized through `Value`
/// (key order kept: `preserve_order`), as is the direct answer it is compared with.
fn merged_as_direct(server: &str, method: &str, merged: &str, direct: &str) -> (String, String) {
    // The log level on `/mcp` is the merged endpoint's own (it declares `logging`, as
    // server-everything does, and passes the level to each server that logs): to a server
    // without logging, which refuses it alone (-32601), the merged endpoint still says yes.
    if method == "logging/setLevel" && direct.starts_with(r#"error: {"code":-32601,"#) {
        return (merged.to_owned(), "result: {}".to_owned());
    }
    let Some((_, kind)) = LISTINGS.iter().find(|(m, _)| *m == method) else {
        // Anything else comes back as the server wrote it, names and URIs inside a result
        // included (a URI as the server wrote it is taken on `/mcp` too: src/serve/uris.rs), so
        // there is nothing to map back: byte for byte, as alone.
        return (merged.to_owned(), direct.to_owned());
    };
    let reparse = |member: &str| -> (String, Value) {
        let (tag, raw) = member.split_once(": ").unwrap();
        (tag.to_owned(), serde_json::from_str(raw).unwrap())
    };
    let (tag, mut got) = reparse(merged);
    let (direct_tag, want) = reparse(direct);
    if tag == "result"
        && let Some(items) = got.get_mut(*kind).and_then(Value::as_array_mut)
    {
        let key = match *kind {
            "tools" | "prompts" => "name",
            "resources" => "uri",
            _ => "uriTemplate",
        };
        let prefix = if key == "name" { format!("{server}__") } else { format!("mcpgate://{server}/") };
        items.retain_mut(|item| {
            let Some(own) = item[key].as_str().and_then(|v| v.strip_prefix(&prefix)).map(str::to_owned) else {
                return false;
            };
            item[key] = json!(own);
            true
        });
        // A listing the server does not offer is its own -32601 alone; among others, it adds
        // nothing to the merged one (the gateway asks only the servers that declare it).
        if direct_tag == "error" && items.is_empty() {
            return (direct.to_owned(), direct.to_owned());
        }
    }
    (
        format!("{tag}: {}", serde_json::to_string(&got).unwrap()),
        format!("{direct_tag}: {}", serde_json::to_string(&want).unwrap()),
    )
}

/// `member` with what changes from run to run replaced by a placeholder (see [`Norm`]).
fn normalise(norm: Norm, member: &str) -> String {
    match norm {
        Norm::None => member.to_owned(),
        Norm::CreatedAt => {
            // A text: `… created at 2:12:18 PM"`; a blob: the base64 of such a text.
            let mut out = created_at(member);
            let mut from = 0;
            while let Some(i) = out[from..].find(r#""blob":""#) {
                let start = from + i + r#""blob":""#.len();
                let end = start + out[start..].find('"').unwrap();
                let decoded = String::from_utf8(B64.decode(&out[start..end]).unwrap()).unwrap_or_default();
                let normalised = format!("<base64 of: {}>", created_at(&decoded));
                out.replace_range(start..end, &normalised);
                from = start + normalised.len();
            }
            out
        }
        Norm::Now => {
            // `"datetime": "2026-12-07T14:12:18+01:00"` (escaped in the text, plain in
            // `structuredContent`): the date and time of the call.
            let mut out = member.to_owned();
            let bytes = member.as_bytes();
            let stamp = |i: usize| {
                let digit = |k: usize| bytes.get(i + k).is_some_and(u8::is_ascii_digit);
                [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18].iter().all(|&k| digit(k))
                    && bytes[i + 4] == b'-'
                    && bytes[i + 10] == b'T'
                    && bytes[i + 13] == b':'
            };
            let found: Vec<usize> = (0..bytes.len().saturating_sub(19)).filter(|&i| stamp(i)).collect();
            for i in found.into_iter().rev() {
                out.replace_range(i..i + 19, "<now>");
            }
            out
        }
    }
}

/// `text` with each `created at <time>` (to the closing quote) as `created at <time>`.
fn created_at(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("created at ") {
        out.push_str(&rest[..i + "created at ".len()]);
        rest = &rest[i + "created at ".len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push_str("<time>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The real servers and a gateway with all of them, each stdio one `"stateful"` (and the local
/// site mcp-server-fetch fetches from, and server-everything listening on Streamable HTTP).
struct Four {
    servers: Vec<Real>,
    gw: Proc,
    _dir: PathBuf,
    _site: tokio::process::Child,
    _remote: Proc,
}

async fn four() -> Four {
    let dir = tempdir("serve-bytes");
    let (site_proc, site_url) = site(&dir.join("site")).await;
    let remote = super::everything("streamableHttp", 0).await;
    let evhttp = Real { name: "evhttp", url: Some(remote.url.clone()), ..everything() };
    let servers = vec![
        everything(),
        evhttp,
        filesystem(&dir.join("files")),
        memory(&dir.join("memory.jsonl")),
        time(),
        fetch(&site_url),
    ];
    let config: serde_json::Map<String, Value> = servers.iter().map(|s| (s.name.to_owned(), s.config())).collect();
    let gw = serve_ready(&dir, Value::Object(config)).await;
    Four { servers, gw, _dir: dir, _site: site_proc, _remote: remote }
}

/// Differences found (issue 15): each is left out of the test of every answer and asserted by a
/// test of its own, ignored until fixed: (server, side, request). None now: the one found (a lone
/// server's `initialize` rebuilt in the gateway's member order) is fixed, and its test runs.
const KNOWN: [(&str, Side, &str); 0] = [];

/// Every answer of `s` on `side` that differs from direct (`direct`), as (its request, both
/// answers): each step's, and on `/servers/<name>/mcp` `initialize`'s too (on `/mcp`, the
/// gateway answers `initialize` as itself: its own name, every server's capabilities).
async fn differences(s: &Real, side: Side, gw: &str, direct: &Answers) -> Vec<(String, String)> {
    let got = run(s, side, gw).await;
    let mut out = Vec::new();
    let mut differ = |what: String, want: &str, got: &str| {
        if got != want {
            out.push((what, format!("  direct: {want}\n  {side:?}: {got}")));
        }
    };
    if side == Side::Lone {
        differ("initialize".into(), &direct.init, &got.init);
    }
    for ((st, want), got) in s.script.iter().zip(&direct.steps).zip(&got.steps) {
        let (got, want) = if side == Side::Merged {
            merged_as_direct(s.name, st.method, got, want)
        } else {
            (got.clone(), want.clone())
        };
        differ(format!("{} {}", st.method, st.params), &want, &got);
    }
    out
}

/// For every real server and every method it offers: `/servers/<name>/mcp` answers what the
/// server answers direct, byte for byte (ids aside), and `/mcp` the same but for the documented
/// prefixes; each server's script run direct, alone and merged, on one gateway with all four.
/// What [`KNOWN`] lists is left to the tests below.
#[tokio::test]
async fn real_servers_answer_through_the_gateway_what_they_answer_direct() {
    let f = four().await;
    let mut all = Vec::new();
    let mut compared = 0;
    for s in &f.servers {
        let direct = run(s, Side::Direct, "").await;
        if s.name == "fetch" {
            // The page was fetched, not refused: what is compared is a real answer.
            assert!(direct.steps.iter().any(|a| a.contains("## Hello")), "fetch fetched nothing: {:?}", direct.steps);
        }
        for side in [Side::Lone, Side::Merged] {
            for (what, both) in differences(s, side, &f.gw.url, &direct).await {
                if !KNOWN.contains(&(s.name, side, what.as_str())) {
                    all.push(format!("{} on {side:?}: {what}\n{both}", s.name));
                }
            }
            compared += s.script.len() + usize::from(side == Side::Lone);
        }
    }
    assert!(all.is_empty(), "{} of {compared} answers differ from direct:\n{}", all.len(), all.join("\n"));
}

/// A lone server's answer to `initialize` is the server's, as it wrote it (src/serve/router.rs,
/// `Router::initialize`: the result the child gave, every member in its order — mcp-server-time
/// writes `capabilities` first, the npm servers `protocolVersion` — the version the client's).
#[tokio::test]
async fn initialize_on_a_lone_endpoint_is_the_servers_own_answer() {
    let f = four().await;
    let s = f.servers.iter().find(|s| s.name == "time").unwrap();
    let direct = run(s, Side::Direct, "").await;
    let lone = run(s, Side::Lone, &f.gw.url).await;
    assert_eq!(lone.init, direct.init, "initialize on /servers/time/mcp, and direct");
}
