//! `mcpgate serve` in front of three real upstreams at once — npm's server-everything as a stdio
//! child, our conformance fixture over Streamable HTTP, server-everything over legacy HTTP+SSE —
//! driven by the official SDK client and raw HTTP: merged listings, routed calls, server→client
//! requests to the client that caused them, progress kept apart, faults and live reload.

mod limits;
mod reload;
mod resume;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::idp::until;

/// Three event loops, more than CI's cores: a session's connections (its POSTs, its GET stream)
/// land on different loops, so every test here also checks that nothing depends on sharing one.
/// `/readyz` answers 200 once every server is ready.
pub(crate) fn write_config(path: &Path, servers: Value) {
    let cfg = json!({"mcpgate": {"threads": 3, "ready": "all"}, "mcpServers": servers});
    std::fs::write(path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

pub(crate) async fn serve(config: &Path) -> Proc {
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(config).args(["--listen", "127.0.0.1:0", "-v"]);
    Proc::start("mcpgate serve", cmd).await
}

/// `mcpgate serve` with `servers` (its config file in `dir`), once every server is ready.
pub(crate) async fn serve_ready(dir: &Path, servers: Value) -> Proc {
    let config = dir.join("mcpgate.json");
    write_config(&config, servers);
    let gw = serve(&config).await;
    let ready = until(Duration::from_secs(30), || async {
        request("GET", &format!("{}/readyz", base(&gw.url)), &[], "").await.status == 200
    })
    .await;
    assert!(
        ready,
        "not ready: {}\n{}",
        request("GET", &format!("{}/readyz", base(&gw.url)), &[], "").await.body,
        gw.output()
    );
    gw
}

pub(crate) fn base(url: &str) -> String {
    url.trim_end_matches("/mcp").to_owned()
}

/// The tool names a session sees.
async fn tool_names(url: &str, sid: &str) -> Vec<String> {
    let r = call(url, sid, &[], r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#).await;
    r.message()["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn call_text(url: &str, sid: &str, name: &str, args: Value) -> Value {
    let body =
        json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":name,"arguments":args}}).to_string();
    call(url, sid, &[], &body).await.message()
}

struct Three {
    _fixture: Proc,
    _legacy: Proc,
    gw: Proc,
    dir: PathBuf,
}

async fn three(name: &str, extra: Value) -> Three {
    let dir = tempdir(name);
    let fixture = fixture(&[]).await;
    let legacy = everything("sse", 0).await;
    let mut servers = json!({
        "local": stdio_everything(&dir),
        "fixture": {"url": fixture.url},
        "legacy": {"url": legacy.url, "type": "sse"},
    });
    for (k, v) in extra.as_object().unwrap() {
        servers[k] = v.clone();
    }
    let gw = serve_ready(&dir, servers).await;
    Three { _fixture: fixture, _legacy: legacy, gw, dir }
}

#[tokio::test]
async fn three_upstreams_merged_listings_and_routed_calls() {
    let t = three("serve-three", json!({})).await;
    let url = &t.gw.url;
    let sid = open_session(url, &[]).await;
    let names = tool_names(url, &sid).await;
    for expected in
        ["local__echo", "local__trigger-long-running-operation", "fixture__test_simple_text", "legacy__echo"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    assert!(names.iter().all(|n| n.starts_with("local__") || n.starts_with("fixture__") || n.starts_with("legacy__")));
    assert_eq!(
        call_text(url, &sid, "local__echo", json!({"message":"a"})).await["result"]["content"][0]["text"],
        "Echo: a"
    );
    assert_eq!(
        call_text(url, &sid, "legacy__echo", json!({"message":"b"})).await["result"]["content"][0]["text"],
        "Echo: b"
    );
    let r = call_text(url, &sid, "fixture__test_simple_text", json!({})).await;
    assert!(r["result"]["content"][0]["text"].as_str().unwrap().contains("simple text"), "{r}");
    let r = call_text(url, &sid, "nobody__echo", json!({})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // To the stdio child as it came, name and id swapped in the bytes (a pretty-printed body, an
    // id with quotes), and its answer back under the client's id.
    let body = serde_json::to_string_pretty(&json!({"jsonrpc":"2.0","id":"q\"1","method":"tools/call",
        "params":{"arguments":{"message":"pretty"},"name":"local__echo"}}))
    .unwrap();
    let m = call(url, &sid, &[], &body).await.message();
    assert_eq!(
        (m["id"].clone(), m["result"]["content"][0]["text"].clone()),
        (json!("q\"1"), json!("Echo: pretty")),
        "{m}"
    );
    let r = call(
        url,
        &sid,
        &[],
        r#"{"jsonrpc":"2.0","id":8,"method":"prompts/get","params":{"name":"local__simple-prompt"}}"#,
    )
    .await
    .message();
    assert!(r["result"]["messages"].is_array(), "{r}");
    // Resources are routed by URI; prompts by name.
    let r = call(
        url,
        &sid,
        &[],
        r#"{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":"test://static-text"}}"#,
    )
    .await
    .message();
    assert!(r["result"]["contents"][0]["text"].is_string(), "{r}");
    // One server alone, unprefixed, with its own identity.
    let one = format!("{}/servers/legacy/mcp", base(url));
    let sid1 = open_session(&one, &[]).await;
    let names = tool_names(&one, &sid1).await;
    assert!(names.iter().any(|n| n == "echo") && !names.iter().any(|n| n.contains("__")), "{names:?}");
    // The SDK client through the merged endpoint: progress, elicitation, sampling on the stdio child.
    let r =
        sdk_client_env(url, &["echo", "progress", "elicit", "sampling", "close"], &[("MCP_TOOL_PREFIX", "local__")])
            .await;
    assert_eq!(r["echo"], "Echo: hello through mcpgate");
    let p: Vec<u64> = r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(p, [1, 2, 3], "{r}");
    assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"), "{r}");
    assert!(r["sampling"].as_str().unwrap().contains("sampled by the test client"), "{r}");
    // The same over the legacy SSE server (a session per client upstream).
    let r = sdk_client_env(url, &["progress", "elicit", "close"], &[("MCP_TOOL_PREFIX", "legacy__")]).await;
    assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"), "{r}");
    let metrics = request("GET", &format!("{}/metrics", base(url)), &[], "").await.body;
    assert!(
        metrics.contains("mcpgate_requests_total{server=\"local\",method=\"tools/call\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("mcpgate_listing_cache_hits_total"), "{metrics}");
}

/// Two clients at once, their elicitations in flight together (each answers after 500 ms): each
/// reaches the client whose call caused it — on a per-client SSE upstream session, and on a
/// stateful stdio server (a child per client) — and each client sees only its own progress, also
/// through a stdio child shared by both (progress tokens are the gateway's there).
#[tokio::test]
async fn two_clients_get_their_own_elicitations_and_progress() {
    let dir = tempdir("serve-two-clients-mine");
    let mut mine = stdio_everything(&dir);
    mine["stateful"] = json!(true);
    let t = three("serve-two-clients", json!({"mine": mine})).await;
    for (prefix, steps) in [
        ("mine__", &["progress", "elicit", "close"][..]),
        ("legacy__", &["progress", "elicit", "close"][..]),
        ("local__", &["progress", "close"][..]),
    ] {
        let env = |name| [("MCP_TOOL_PREFIX", prefix), ("MCP_ELICIT_NAME", name), ("MCP_ELICIT_DELAY_MS", "500")];
        let (env_a, env_b) = (env("Alice"), env("Bob"));
        let (a, b) = tokio::join!(sdk_client_env(&t.gw.url, steps, &env_a), sdk_client_env(&t.gw.url, steps, &env_b));
        for (r, name) in [(&a, "Alice"), (&b, "Bob")] {
            if steps.contains(&"elicit") {
                assert_eq!(r["elicit"]["asked"], 1, "{prefix}{name}: {r}");
                let text = r["elicit"]["text"].as_str().unwrap();
                assert!(text.contains(name), "{prefix}: {name}'s call got {text}");
            }
            let p: Vec<u64> =
                r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            assert_eq!(p, [1, 2, 3], "{prefix}{name}: progress of its own call only: {r}");
        }
    }
}

/// A stdio child killed mid-call: that call fails at once; the child is back within the backoff
/// and serves again; the other servers never noticed.
#[tokio::test]
async fn a_killed_stdio_child_fails_its_call_at_once_and_comes_back() {
    let t = three("serve-kill", json!({})).await;
    let url = t.gw.url.clone();
    let sid = open_session(&url, &[]).await;
    let slow = {
        let (url, sid) = (url.clone(), sid.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r =
                call_text(&url, &sid, "local__trigger-long-running-operation", json!({"duration": 20, "steps": 20}))
                    .await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let marker = t.dir.join("everything-stdio.js");
    let killed =
        std::process::Command::new("pkill").arg("-KILL").arg("-f").arg(marker.to_str().unwrap()).status().unwrap();
    assert!(killed.success(), "the child was running");
    let (r, took) = slow.await.unwrap();
    assert_eq!(r["error"]["code"], -32001, "the pending call fails: {r}");
    assert!(took < Duration::from_secs(5), "at once, not at the tool's end ({took:?})");
    // Meanwhile the other servers serve.
    assert_eq!(
        call_text(&url, &sid, "legacy__echo", json!({"message":"still"})).await["result"]["content"][0]["text"],
        "Echo: still"
    );
    // Back within the backoff (1 s ± 25 %, plus its start).
    let back = until(Duration::from_secs(15), || async {
        call_text(&url, &sid, "local__echo", json!({"message":"back"})).await["result"]["content"][0]["text"]
            == "Echo: back"
    })
    .await;
    assert!(back, "the child did not come back:\n{}", t.gw.output());
    let metrics = request("GET", &format!("{}/metrics", base(&url)), &[], "").await.body;
    assert!(metrics.contains("mcpgate_upstream_restarts_total{server=\"local\"} 1"), "{metrics}");
}

/// A server that takes too long answers with a timeout error at its configured limit; the others
/// are fine meanwhile.
#[tokio::test]
async fn a_hanging_upstream_ends_in_a_timeout_error() {
    let dir = tempdir("serve-hang");
    let mut slow = stdio_everything(&dir);
    slow["timeout"] = json!("1s");
    let t = three("serve-hang", json!({"slow": slow})).await;
    let sid = open_session(&t.gw.url, &[]).await;
    let started = Instant::now();
    let r =
        call_text(&t.gw.url, &sid, "slow__trigger-long-running-operation", json!({"duration": 10, "steps": 2})).await;
    assert_eq!(r["error"]["code"], -32002, "{r}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(
        call_text(&t.gw.url, &sid, "local__echo", json!({"message":"ok"})).await["result"]["content"][0]["text"],
        "Echo: ok"
    );
}

/// Reload: a broken file is refused with its problems and the old configuration keeps serving;
/// adding and removing servers leaves existing sessions working, and tells them lists changed.
#[tokio::test]
async fn reload_refuses_a_broken_file_and_applies_changes_without_dropping_sessions() {
    let t = three("serve-reload", json!({})).await;
    let url = t.gw.url.clone();
    let config = t.dir.join("mcpgate.json");
    let sid = open_session(&url, &[]).await;
    let before = std::fs::read_to_string(&config).unwrap();
    let admin = format!("{}/admin/reload", base(&url));

    std::fs::write(&config, "{ \"mcpServers\": { \"x\": { \"comand\": \"nope\" } }").unwrap();
    let r = request("POST", &admin, &[], "").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("unexpected end") || r.body.contains("problems"), "{}", r.body);
    assert!(
        tool_names(&url, &sid).await.iter().any(|n| n == "fixture__test_simple_text"),
        "the old configuration serves"
    );

    // Remove `fixture`, add a second stdio server `extra`.
    let mut cfg: Value = serde_json::from_str(&before).unwrap();
    let servers = cfg["mcpServers"].as_object_mut().unwrap();
    servers.remove("fixture");
    servers.insert("extra".into(), stdio_everything(&tempdir("serve-reload-extra")));
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let r = request("POST", &admin, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let applied: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (applied["added"].clone(), applied["removed"].clone()),
        (json!(["extra"]), json!(["fixture"])),
        "{applied}"
    );
    // The same session goes on, and sees the new listing once the new server is up.
    let seen = until(Duration::from_secs(20), || {
        let (url, sid) = (url.clone(), sid.clone());
        async move {
            let names = tool_names(&url, &sid).await;
            names.iter().any(|n| n == "extra__echo") && !names.iter().any(|n| n.starts_with("fixture__"))
        }
    })
    .await;
    assert!(seen, "{:?}\n{}", tool_names(&url, &sid).await, t.gw.output());
    assert_eq!(
        call_text(&url, &sid, "local__echo", json!({"message":"kept"})).await["result"]["content"][0]["text"],
        "Echo: kept"
    );
    // The session's event stream was told.
    let mut h = MCP_HEADERS.to_vec();
    h.push(("mcp-session-id", &sid));
    h.push(("mcp-protocol-version", "2025-06-18"));
    let events = stream_prefix(&url, &h, Duration::from_millis(800)).await;
    assert!(events.contains("notifications/tools/list_changed"), "{events}");
}

/// Reads a GET event stream for `limit`, returning what arrived.
async fn stream_prefix(url: &str, headers: &[(&str, &str)], limit: Duration) -> String {
    use http_body_util::BodyExt;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut req = http::Request::builder().method("GET").uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(http_body_util::Full::new(bytes::Bytes::new())).unwrap()).await.unwrap();
    let mut body = resp.into_body();
    let mut out = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        if let Some(d) = frame.data_ref() {
            out.push_str(&String::from_utf8_lossy(d));
        }
    }
    out
}

/// An upstream that refuses (401) reaches the client as an error keeping its challenge — on one
/// server's own endpoint as the HTTP status and `WWW-Authenticate` it sent — never as an empty
/// success. The caller's own token goes to the server that opted in, and to no other.
#[tokio::test]
async fn refusals_keep_their_challenge_and_the_callers_token_goes_only_where_allowed() {
    use crate::idp::{idp, protected, seen};
    let provider = idp(&[], 3600).await;
    let a = protected(&provider.url, &[]).await;
    let b = protected(&provider.url, &[]).await;
    let dir = tempdir("serve-refusals");
    let config = dir.join("mcpgate.json");
    let m2m =
        json!({"oauth": {"clientId": "mcpgate-m2m", "clientSecret": "m2m-secret", "grant": "client-credentials"}});
    write_config(
        &config,
        json!({"a": {"url": a.url, "forwardClientToken": true}, "b": {"url": b.url}, "c": {"url": a.url, "auth": m2m}}),
    );
    let gw = serve(&config).await;
    // The caller's token, for a (client credentials at the provider).
    let form = format!(
        "grant_type=client_credentials&resource={}",
        form_urlencoded::byte_serialize(a.url.as_bytes()).collect::<String>()
    );
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "mcpgate-m2m:m2m-secret")
    );
    let t = request(
        "POST",
        &format!("{}/token", provider.url),
        &[("content-type", "application/x-www-form-urlencoded"), ("authorization", &auth)],
        &form,
    )
    .await;
    let token = t.json()["access_token"].as_str().unwrap_or_else(|| panic!("{}", t.body)).to_owned();
    let bearer = format!("Bearer {token}");
    let sid = open_session(&gw.url, &[("authorization", &bearer)]).await;
    let r = call(
        &gw.url,
        &sid,
        &[("authorization", &bearer)],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a__whoami","arguments":{}}}"#,
    )
    .await
    .message();
    let who: Value = serde_json::from_str(
        r["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{r}\n{}", gw.output())),
    )
    .unwrap();
    assert_eq!((who["aud"].as_str(), who["client_id"].as_str()), (Some(a.url.as_str()), Some("mcpgate-m2m")));
    let r = call(
        &gw.url,
        &sid,
        &[("authorization", &bearer)],
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"b__whoami","arguments":{}}}"#,
    )
    .await
    .message();
    assert_eq!(r["error"]["code"], -32004, "{r}");
    assert_eq!(r["error"]["data"]["status"], 401, "{r}");
    assert!(r["error"]["data"]["wwwAuthenticate"].as_str().unwrap().contains("resource_metadata"), "{r}");
    assert!(seen(&b).await.is_empty(), "b never saw the caller's token: {:?}", seen(&b).await);
    // c: the same server, with the gateway's own client credentials instead.
    let r = call(
        &gw.url,
        &sid,
        &[],
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"c__whoami","arguments":{}}}"#,
    )
    .await
    .message();
    let who: Value = serde_json::from_str(
        r["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{r}\n{}", gw.output())),
    )
    .unwrap();
    assert_eq!(who["client_id"], "mcpgate-m2m");
    // b's own endpoint: its 401 and challenge as they were.
    let one = gw.url.replace("/mcp", "/servers/b/mcp");
    let sid = open_session(&one, &[]).await;
    let r = call(&one, &sid, &[], r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let challenge = r.header("www-authenticate").expect("the challenge");
    assert!(challenge.contains("resource_metadata") && challenge.contains(&b.url.replace("/mcp", "")), "{challenge}");
}

/// A client's `notifications/cancelled` reaches the server running the call, under the id the
/// server knows it by, and the call ends at once; the server goes on serving.
#[tokio::test]
async fn a_cancelled_call_ends_at_once() {
    let t = three("serve-cancel", json!({})).await;
    let url = t.gw.url.clone();
    let sid = open_session(&url, &[]).await;
    let slow = {
        let (url, sid) = (url.clone(), sid.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let body = r#"{"jsonrpc":"2.0","id":"slow-1","method":"tools/call","params":{"name":"local__trigger-long-running-operation","arguments":{"duration":20,"steps":20}}}"#;
            let r = call(&url, &sid, &[], body).await;
            (r.body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = call(&url, &sid, &[], r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow-1","reason":"the user gave up"}}"#).await;
    assert_eq!(r.status, 202);
    let (_, took) = slow.await.unwrap();
    assert!(took < Duration::from_secs(5), "the call ended at the cancellation, not at the tool's end ({took:?})");
    assert_eq!(
        call_text(&url, &sid, "local__echo", json!({"message":"after"})).await["result"]["content"][0]["text"],
        "Echo: after"
    );
}

/// Names the spec does not allow (here: longer than 128 characters once prefixed) are left out
/// of the listing and reported in the log when the server comes up, not at every listing.
#[tokio::test]
async fn names_that_cannot_be_offered_are_reported_at_load() {
    let dir = tempdir("serve-names");
    let mut local = stdio_everything(&dir);
    let prefix = "p".repeat(110);
    local["prefix"] = json!(prefix);
    let config = dir.join("mcpgate.json");
    write_config(&config, json!({"local": local}));
    let gw = serve(&config).await;
    let reported = crate::harness::eventually(Duration::from_secs(20), || {
        gw.output().lines().any(|l| l.contains("is not a valid name") && l.contains("__trigger-long-running-operation"))
    })
    .await;
    assert!(reported, "the name is given: {}", gw.output());
    let sid = open_session(&gw.url, &[]).await;
    let names = tool_names(&gw.url, &sid).await;
    assert!(names.contains(&format!("{prefix}__echo")), "{names:?}");
    assert!(names.iter().all(|n| n.len() <= 128), "{names:?}");
}

/// The gateway's endpoint applies the front-end rules: a foreign Host or Origin is refused (DNS
/// rebinding, web pages), an oversized body gets 413, an unknown session 404, no session 400.
#[tokio::test]
async fn the_front_refuses_foreign_hosts_origins_oversized_bodies_and_unknown_sessions() {
    let dir = tempdir("serve-front");
    let config = dir.join("mcpgate.json");
    std::fs::write(
        &config,
        json!({"mcpgate": {"maxBody": 1024}, "mcpServers": {"local": stdio_everything(&dir)}}).to_string(),
    )
    .unwrap();
    let gw = serve(&config).await;
    let mut h = MCP_HEADERS.to_vec();
    h.push(("host", "evil.example"));
    assert_eq!(request("POST", &gw.url, &h, INITIALIZE).await.status, 403);
    let mut h = MCP_HEADERS.to_vec();
    h.push(("origin", "https://evil.example"));
    assert_eq!(request("POST", &gw.url, &h, INITIALIZE).await.status, 403);
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(4096));
    assert_eq!(request("POST", &gw.url, MCP_HEADERS, &big).await.status, 413);
    assert_eq!(
        request("POST", &gw.url, MCP_HEADERS, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await.status,
        400
    );
    let r = call(&gw.url, "0123456789abcdef0123456789abcdef", &[], r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(request("GET", &gw.url.replace("/mcp", "/servers/nobody/mcp"), &[], "").await.status, 404);
}

/// `POST /admin/reload` is for processes on this machine only: from another address it does not
/// exist (the gateway listens on every interface here, and is reached over the machine's own
/// non-loopback address, as a neighbour would).
#[tokio::test]
async fn reload_is_refused_from_beyond_loopback_without_the_admin_token() {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1")
        .output()
        .unwrap();
    let ip = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!ip.is_empty(), "this test needs a non-loopback IPv4 address on the machine");
    let dir = tempdir("serve-admin");
    let config = dir.join("mcpgate.json");
    std::fs::write(
        &config,
        json!({"mcpgate": {"allowHosts": [ip], "adminToken": "an-admin-token-of-32-characters!"}, "mcpServers": {"local": stdio_everything(&dir)}}).to_string(),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", "0.0.0.0:0"]);
    let gw = Proc::start("mcpgate serve", cmd).await;
    let port = gw.url.rsplit(':').next().unwrap().trim_end_matches("/mcp").to_owned();
    let far = request("POST", &format!("http://{ip}:{port}/admin/reload"), &[], "").await;
    assert_eq!(far.status, 404, "{}", far.body);
    // From beyond loopback, only with the configured token.
    let wrong = [("authorization", "Bearer an-admin-token-of-32-characters?")];
    let far = request("POST", &format!("http://{ip}:{port}/admin/reload"), &wrong, "").await;
    assert_eq!(far.status, 404, "{}", far.body);
    let right = [("authorization", "Bearer an-admin-token-of-32-characters!")];
    let far = request("POST", &format!("http://{ip}:{port}/admin/reload"), &right, "").await;
    assert_eq!(far.status, 200, "{}", far.body);
    // Never from a browser page, token or not.
    let page = [right[0], ("origin", "http://127.0.0.1")];
    let near = request("POST", &format!("http://127.0.0.1:{port}/admin/reload"), &page, "").await;
    assert_eq!(near.status, 403, "{}", near.body);
    assert!(!gw.output().contains("an-admin-token"), "{}", gw.output());
    let near = request("POST", &format!("http://127.0.0.1:{port}/admin/reload"), &[], "").await;
    assert_eq!(near.status, 200, "{}", near.body);
}

/// A 2026-07-28 client (the official v2 SDK, probing with server/discover) through the gateway to a
/// 2025 stdio server: stateless requests, and the server's elicitation as an input-required result
/// answered in the client's retry.
#[tokio::test]
async fn a_modern_client_through_the_gateway_to_a_legacy_server() {
    let dir = tempdir("serve-modern");
    let gw = serve_ready(&dir, json!({"local": stdio_everything(&dir)})).await;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(node())
            .arg(repo().join("tests/clients/modern-client.mjs"))
            .arg(&gw.url)
            .args(["progress", "elicit"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    assert!(out.status.success(), "{report}\n{}", gw.output());
    assert_eq!(report["protocol"], "2026-07-28", "{report}");
    assert!(report["tools"].as_array().unwrap().iter().any(|t| t == "trigger-elicitation-request"), "{report}");
    assert_eq!(report["echo"], "Echo: modern through mcpgate");
    assert_eq!(report["elicit"]["asked"], 1, "{report}");
    assert!(report["elicit"]["text"].as_str().unwrap().contains("Grace Hopper"), "{report}");
    assert_eq!(report["progress"]["progress"], json!([1, 2, 3]), "progress streamed to the modern client: {report}");
}

/// A modern-only (2026-07-28) server behind the gateway, used by a 2025 client (the official
/// SDK): the server refuses `initialize`, the gateway learns it with `server/discover` and
/// speaks its revision, turning its input-required results into elicitation and sampling
/// requests to the client that made the call.
#[tokio::test]
async fn a_legacy_client_through_the_gateway_to_a_modern_only_server() {
    let dir = tempdir("serve-modern-upstream");
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/modern-server.mjs"));
    let upstream = Proc::start("modern fixture", cmd).await;
    let config = dir.join("mcpgate.json");
    write_config(&config, json!({"modern": {"url": upstream.url}, "local": stdio_everything(&dir)}));
    let gw = serve(&config).await;
    let ready = until(Duration::from_secs(30), || async {
        request("GET", &format!("{}/readyz", base(&gw.url)), &[], "").await.status == 200
    })
    .await;
    assert!(ready, "{}", gw.output());
    let r = sdk_client_env(
        &gw.url,
        &["tools", "echo", "progress", "elicit", "sampling", "close"],
        &[("MCP_TOOL_PREFIX", "modern__")],
    )
    .await;
    assert!(r["tools"].as_array().unwrap().iter().any(|t| t == "modern__trigger-elicitation-request"), "{r}");
    assert_eq!(r["echo"], "Echo: hello through mcpgate");
    let p: Vec<u64> = r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(p, [1, 2, 3], "{r}");
    assert_eq!(r["elicit"]["text"], "Hello, Ada Lovelace (state asked)", "{r}");
    assert_eq!(r["sampling"], "LLM said: sampled by the test client", "{r}");
}

/// Subscriptions on a stdio server that all clients share: each subscriber gets the updates of
/// what it subscribed to, and one client's unsubscribe does not stop them for another.
#[tokio::test]
async fn subscriptions_on_a_shared_server_are_kept_per_client() {
    let dir = tempdir("serve-subscribe");
    let config = dir.join("mcpgate.json");
    write_config(&config, json!({"local": stdio_everything(&dir)}));
    let gw = serve(&config).await;
    let (a, b) = (open_session(&gw.url, &[]).await, open_session(&gw.url, &[]).await);
    let list = call(&gw.url, &a, &[], r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#).await.message();
    let uri = list["result"]["resources"][0]["uri"].as_str().unwrap_or_else(|| panic!("{list}")).to_owned();
    let sub = |id: u32, m: &str| json!({"jsonrpc":"2.0","id":id,"method":m,"params":{"uri":uri}}).to_string();
    for s in [&a, &b] {
        assert!(call(&gw.url, s, &[], &sub(2, "resources/subscribe")).await.message()["result"].is_object());
    }
    let stream = |sid: String, url: String, secs: u64| {
        tokio::spawn(async move {
            let mut h = MCP_HEADERS.to_vec();
            h.push(("mcp-session-id", &sid));
            h.push(("mcp-protocol-version", "2025-06-18"));
            stream_prefix(&url, &h, Duration::from_secs(secs)).await
        })
    };
    // Both subscribed: both hear the first update (sent at once by the toggle).
    let (sa, sb) = (stream(a.clone(), gw.url.clone(), 2), stream(b.clone(), gw.url.clone(), 2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = call_text(&gw.url, &a, "trigger-long-running-operation", json!({"duration": 0.1, "steps": 1})).await;
    assert!(r["result"].is_object(), "{r}");
    let r = call_text(&gw.url, &a, "toggle-subscriber-updates", json!({})).await;
    assert!(r["result"].is_object(), "{r}");
    let (ea, eb) = (sa.await.unwrap(), sb.await.unwrap());
    assert!(
        ea.contains("notifications/resources/updated") && eb.contains("notifications/resources/updated"),
        "a:\n{ea}\nb:\n{eb}"
    );
    // a leaves; b keeps hearing the updates (every 5 s), a does not.
    assert!(call(&gw.url, &a, &[], &sub(3, "resources/unsubscribe")).await.message()["result"].is_object());
    let (sa, sb) = (stream(a.clone(), gw.url.clone(), 7), stream(b.clone(), gw.url.clone(), 7));
    let (ea, eb) = (sa.await.unwrap(), sb.await.unwrap());
    assert!(eb.contains("notifications/resources/updated"), "b still subscribed:\n{eb}\n{}", gw.output());
    assert!(!ea.contains("notifications/resources/updated"), "a unsubscribed:\n{ea}");
}

/// A server's `tools` include/exclude lists hold on every path: the merged endpoint and the
/// server's own, for a lone server whose messages are otherwise forwarded untouched (remote)
/// and for a stdio child — a hidden tool is neither listed nor callable.
#[tokio::test]
async fn tool_filters_hide_tools_from_listings_and_calls() {
    let dir = tempdir("serve-tool-filter");
    let fixture = fixture(&[]).await;
    for (servers, name, hidden, shown, args) in [
        (
            json!({"fixture": {"url": fixture.url, "tools": {"exclude": ["test_simple_text"]}}}),
            "fixture",
            "test_simple_text",
            "test_image_content",
            json!({}),
        ),
        (
            json!({"local": {"command": node(), "args": [repo().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"), "stdio"], "tools": {"include": ["echo"]}}}),
            "local",
            "get-sum",
            "echo",
            json!({"message": "m"}),
        ),
    ] {
        let gw = serve_ready(&dir, servers).await;
        for url in [gw.url.clone(), format!("{}/servers/{name}/mcp", base(&gw.url))] {
            let sid = open_session(&url, &[]).await;
            let names = tool_names(&url, &sid).await;
            assert!(names.iter().any(|n| n == shown), "{shown} missing from {names:?} at {url}");
            assert!(!names.iter().any(|n| n == hidden), "{hidden} listed at {url}: {names:?}");
            let r = call_text(&url, &sid, hidden, json!({"a": 1, "b": 2})).await;
            assert_eq!(r["error"]["code"], -32602, "{hidden} callable at {url}: {r}");
            let r = call_text(&url, &sid, shown, args.clone()).await;
            assert!(r["result"]["content"].is_array(), "{shown} at {url}: {r}");
        }
    }
}

/// A lone stdio server's requests go to it as they came (only the id swapped) and its answers
/// come back as it wrote them with the client's id: any id, JSON-only clients, pretty-printed
/// bodies, many calls at once kept apart; a server→client request mid-call still reaches the
/// caller (the call turns into a stream), progress still flows, and a killed child still fails
/// the call at once.
/// A lone HTTP server's messages take the direct path (sent on a head rendered once, answered
/// as the server answers), and what follows a refusal there is the engine's as on every other
/// path: an upstream that restarted and lost the session gets it rebuilt, a revoked token gets
/// one refresh and one retry. The client sees neither.
#[tokio::test]
async fn a_lone_http_servers_restart_and_revoked_token_stay_invisible() {
    let dir = tempdir("serve-lone-http");
    let port = free_port();
    let mut upstream = everything("streamableHttp", port).await;
    let gw = serve_ready(&dir, json!({"e": {"url": upstream.url}})).await;
    let sid = open_session(&gw.url, &[]).await;
    let r = call_text(&gw.url, &sid, "echo", json!({"message": "before"})).await;
    assert_eq!(r["result"]["content"][0]["text"], "Echo: before", "{r}");
    upstream.kill().await;
    let _upstream = everything("streamableHttp", port).await;
    let r = call_text(&gw.url, &sid, "echo", json!({"message": "after"})).await;
    assert_eq!(r["result"]["content"][0]["text"], "Echo: after", "{r}\n{}", gw.output());
    let said = gw.output();
    assert!(said.contains("a direct request was refused") && said.contains("re-initializing"), "{said}");
    drop(gw);

    // The fixture accepts only the token in `valid`; the command prints tok-1, tok-2, …
    std::fs::write(dir.join("valid"), "tok-1").unwrap();
    let (valid, log) = (dir.join("valid"), dir.join("auth.log"));
    let fixture =
        fixture(&["--require-token-file", valid.to_str().unwrap(), "--auth-log", log.to_str().unwrap()]).await;
    let script = dir.join("token.sh");
    let d = dir.display();
    std::fs::write(&script, format!("echo x >> {d}/runs\necho \"tok-$(wc -l < {d}/runs)\"\n")).unwrap();
    let auth = json!({"tokenCommand": format!("sh {}", script.display())});
    let gw = serve_ready(&dir, json!({"f": {"url": fixture.url, "auth": auth}})).await;
    let sid = open_session(&gw.url, &[]).await;
    let simple = |id: u32| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"test_simple_text","arguments":{{}}}}}}"#
        )
    };
    let r = call(&gw.url, &sid, &[], &simple(1)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    std::fs::write(&valid, "tok-2").unwrap();
    let before = std::fs::read_to_string(&log).unwrap().lines().count();
    let r = call(&gw.url, &sid, &[], &simple(2)).await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, gw.output());
    assert!(r.message()["result"]["content"][0]["text"].is_string(), "{}", r.body);
    // (The gateway's GET streams reconnect with the renewed token meanwhile.)
    let seen: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .skip(before)
        .filter(|l| l.starts_with("POST"))
        .map(str::to_owned)
        .collect();
    assert_eq!(seen, ["POST Bearer tok-1", "POST Bearer tok-2"], "one try, one retry with the renewed token");
    assert!(gw.output().contains("a direct request was refused"), "{}", gw.output());
}

#[tokio::test]
async fn a_lone_stdio_server_is_spoken_to_as_it_is() {
    let dir = tempdir("serve-lone-stdio");
    let gw = serve_ready(&dir, json!({"local": stdio_everything(&dir)})).await;
    let url = gw.url.clone();
    // The official SDK client: a plain call, an elicitation and a sampling request during a
    // call, progress.
    let r = sdk_client(&url, &["echo", "elicit", "sampling", "progress", "close"]).await;
    assert_eq!(r["echo"], "Echo: hello through mcpgate", "{r}");
    assert_eq!(r["elicit"]["asked"], 1, "{r}");
    assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"), "{r}");
    assert!(r["sampling"].as_str().is_some_and(|t| !t.is_empty()), "{r}");
    assert_eq!(r["progress"]["progress"], json!([1, 2, 3]), "{r}");
    // Raw: ids of every kind come back as sent, as SSE or JSON.
    let sid = open_session(&url, &[]).await;
    for (id, accept) in [
        (json!("a \"quoted\" id"), "application/json, text/event-stream"),
        (json!(-7), "application/json"),
        (json!(12.5), "application/json, text/event-stream"),
    ] {
        let body = serde_json::to_string_pretty(
            &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":"line\nbreak"}}}),
        )
        .unwrap();
        let h = [
            ("content-type", "application/json"),
            ("accept", accept),
            ("mcp-session-id", sid.as_str()),
            ("mcp-protocol-version", "2025-06-18"),
        ];
        let r = request("POST", &url, &h, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let m = r.message();
        assert_eq!(m["id"], id, "{}", r.body);
        assert_eq!(m["result"]["content"][0]["text"], "Echo: line\nbreak", "{}", r.body);
        let json_only = accept == "application/json";
        assert_eq!(r.header("content-type").unwrap().starts_with("application/json"), json_only, "{accept}");
    }
    // An error the server answers comes back as it said it, under the client's id.
    let r = call(&url, &sid, &[], r#"{"jsonrpc":"2.0","id":"e","method":"nonexistent/method"}"#).await.message();
    assert_eq!((r["id"].clone(), r["error"]["code"].clone()), (json!("e"), json!(-32601)), "{r}");
    // Many at once, each with its own answer.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (url, sid) = (url.clone(), sid.clone());
        calls.spawn(async move {
            let body = json!({"jsonrpc":"2.0","id":format!("c{i}"),"method":"tools/call","params":{"name":"echo","arguments":{"message":format!("m{i}")}}});
            (i, call(&url, &sid, &[], &body.to_string()).await.message())
        });
    }
    while let Some(done) = calls.join_next().await {
        let (i, m) = done.unwrap();
        assert_eq!(m["id"], format!("c{i}"), "{m}");
        assert_eq!(m["result"]["content"][0]["text"], format!("Echo: m{i}"), "{m}");
    }
    // A child killed mid-call: the call fails at once.
    let slow = {
        let (url, sid) = (url.clone(), sid.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let body = r#"{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":20,"steps":20}}}"#;
            (call(&url, &sid, &[], body).await.message(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let marker = dir.join("everything-stdio.js");
    assert!(std::process::Command::new("pkill").arg("-KILL").arg("-f").arg(&marker).status().unwrap().success());
    let (m, took) = slow.await.unwrap();
    assert_eq!((m["id"].clone(), m["error"]["code"].clone()), (json!("slow"), json!(-32001)), "{m}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// The processes whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if after.split_whitespace().nth(1).and_then(|v| v.parse::<u32>().ok()) == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// Gone, or a zombie nobody reaps (a container's init may not).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn sigterm_drains_calls_on_every_loop_then_stops_the_children_and_exits_zero() {
    let dir = tempdir("serve-sigterm");
    let mut mine = stdio_everything(&dir);
    mine["stateful"] = json!(true);
    let mut gw = serve_ready(&dir, json!({"local": stdio_everything(&dir), "mine": mine})).await;
    // Three sessions, each with a slow call in flight: with three loops and connections handed
    // to the least busy, they run on different loops, each with a stateful child started there.
    let long = |i: u32| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"mine__trigger-long-running-operation","arguments":{{"duration":1.5,"steps":3}},"_meta":{{"progressToken":"p{i}"}}}}}}"#
        )
    };
    let mut calls = Vec::new();
    for i in 0..3 {
        let url = gw.url.clone();
        let sid = open_session(&url, &[]).await;
        calls.push(tokio::spawn(async move { call(&url, &sid, &[], &long(i)).await }));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let pid = gw.child.id().unwrap();
    let children = children_of(pid);
    assert!(children.len() >= 4, "the shared child and three stateful ones: {children:?}\n{}", gw.output());
    let mut loops: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("mcpgate-loop-"))
        .collect();
    loops.sort();
    assert_eq!(loops, ["mcpgate-loop-1", "mcpgate-loop-2"], "threads: 3 is the caller's loop and two more");
    gw.signal(libc::SIGTERM);
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.status, 200, "{}\n{}", r.body, gw.output());
        assert!(r.message()["result"]["content"][0]["text"].as_str().unwrap().contains("completed"), "{}", r.body);
    }
    let status = gw.wait(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status}; output:\n{}", gw.output());
    let gone = until(Duration::from_secs(5), || {
        let alive: Vec<u32> = children.iter().copied().filter(|p| !is_dead(*p)).collect();
        async move { alive.is_empty() }
    })
    .await;
    assert!(gone, "children left running: {:?}", children.iter().filter(|p| !is_dead(**p)).collect::<Vec<_>>());
}
