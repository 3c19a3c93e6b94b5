//! Users and rights (`mcpgate.auth.usersFile`, `roles`): with a users file, each user sees and
//! calls only what is granted — the seed's `allowed_tools` (globs on the names `/mcp` shows) and
//! their roles' grants (per server, globs on its own names) — on every route (merged and one
//! server's, stdio and remote), in both eras, from the shared listing cache; what is not granted
//! is refused as unknown without reaching the server; a user the file does not name gets 403; a
//! changed file applies at once, a broken one keeps the rules in force.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::auth_jwt::{bearer, guarded_with, initialize};
use super::*;
use crate::issuer::{jwt_issuer, mint};

const USERS: &str = r#"{
  "alice@example.com": {"name": "Alice", "roles": ["reader"], "allowed_tools": ["local__echo", "remote__who*"]},
  "bob": {"name": "Bob", "roles": ["dev"]}
}"#;

fn roles() -> Value {
    json!({"reader": {"local": {"prompts": ["simple-*"], "resources": ["demo://resource/static/*"]}},
           "dev": {"remote": ["echo"], "loc*": ["get-sum"]}})
}

async fn names(url: &str, token: &str, method: &str, modern: bool) -> BTreeSet<String> {
    let kind = if method == "tools/list" { "tools" } else { "prompts" };
    let auth = bearer(token);
    let r = if modern {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
        let mut h = MCP_HEADERS.to_vec();
        h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", method), ("authorization", &auth)]);
        request("POST", url, &h, &body.to_string()).await.message()
    } else {
        let sid = open_session(url, &[("authorization", &auth)]).await;
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method});
        call(url, &sid, &[("authorization", &auth)], &body.to_string()).await.message()
    };
    let items = r["result"][kind].as_array().unwrap_or_else(|| panic!("{url} {method}: {r}"));
    items.iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

async fn call_tool(url: &str, token: &str, tool: &str, args: Value, modern: bool) -> Value {
    let auth = bearer(token);
    let params = json!({"name": tool, "arguments": args});
    if modern {
        let mut params = params;
        params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
        let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params});
        let mut h = MCP_HEADERS.to_vec();
        h.extend([
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", tool),
            ("authorization", &auth),
        ]);
        request("POST", url, &h, &body.to_string()).await.message()
    } else {
        let sid = open_session(url, &[("authorization", &auth)]).await;
        let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params});
        call(url, &sid, &[("authorization", &auth)], &body.to_string()).await.message()
    }
}

/// What the stdio child has read, once it has stopped reading (two looks 150 ms apart agree).
async fn settled(marker: &FsPath) -> u64 {
    let mut last = bytes_read(marker);
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = bytes_read(marker);
        if now == last {
            return now;
        }
        last = now;
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn each_user_sees_and_calls_only_what_is_granted_on_every_route() {
    use crate::idp::{idp, protected, seen};
    let issuer = jwt_issuer().await;
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let dir = tempdir("serve-rights");
    let users = dir.join("users.json");
    std::fs::write(&users, USERS).unwrap();
    let marker = dir.join("everything-stdio.js");
    let trail = dir.join("audit.jsonl");
    let audit = json!({"audit": {"file": trail}});
    let (gw, public) =
        guarded_with(&dir, &issuer.url, Some(&server.url), json!({"usersFile": users, "roles": roles()}), audit).await;
    ready(&gw).await;
    let token = |claims: Value| mint(&issuer, json!({"claims": claims}));
    let alice = token(json!({"aud": public, "sub": "auth0|alice", "email": "Alice@Example.com"})).await;
    let bob = token(json!({"aud": public, "sub": "bob"})).await;
    let eve = token(json!({"aud": public, "sub": "eve", "email": "eve@example.com"})).await;
    let merged = format!("{public}/mcp");
    let local = format!("{public}/servers/local/mcp");
    let remote = format!("{public}/servers/remote/mcp");

    let mut expected = Vec::new();
    for modern in [false, true] {
        let era = if modern { "2026-07-28" } else { "2025-06-18" };
        // Listings, per user, on each endpoint; each twice (the second from the cache, after
        // the other user's).
        for _ in 0..2 {
            assert_eq!(
                names(&merged, &alice, "tools/list", modern).await,
                set(&["local__echo", "remote__whoami"]),
                "{era}"
            );
            assert_eq!(
                names(&merged, &bob, "tools/list", modern).await,
                set(&["local__get-sum", "remote__echo"]),
                "{era}"
            );
            assert_eq!(names(&local, &alice, "tools/list", modern).await, set(&["echo"]), "{era}");
            assert_eq!(names(&local, &bob, "tools/list", modern).await, set(&["get-sum"]), "{era}");
            assert_eq!(names(&remote, &alice, "tools/list", modern).await, set(&["whoami"]), "{era}");
            assert_eq!(names(&remote, &bob, "tools/list", modern).await, set(&["echo"]), "{era}");
            assert_eq!(names(&merged, &alice, "prompts/list", modern).await, set(&["local__simple-prompt"]), "{era}");
            assert_eq!(names(&local, &bob, "prompts/list", modern).await, set(&[]), "{era}");
        }
        // Calls: what is listed works; what is not is unknown and never reaches the server.
        let ok = |r: &Value| r["result"]["content"].is_array();
        let unknown = |r: &Value, tool: &str| {
            r["error"]["message"].as_str().is_some_and(|m| m.contains(&format!("unknown tool: {tool}")))
        };
        let echo = json!({"message": "hi"});
        let sum = json!({"a": 1, "b": 2});
        for (url, user, tool, args, allowed) in [
            (&merged, &alice, "local__echo", &echo, true),
            (&merged, &alice, "local__get-sum", &sum, false),
            (&merged, &alice, "remote__whoami", &json!({}), true),
            (&merged, &alice, "remote__echo", &echo, false),
            (&local, &alice, "echo", &echo, true),
            (&local, &alice, "get-sum", &sum, false),
            (&remote, &alice, "whoami", &json!({}), true),
            (&remote, &alice, "echo", &echo, false),
            (&merged, &bob, "local__get-sum", &sum, true),
            (&merged, &bob, "local__echo", &echo, false),
            (&local, &bob, "echo", &echo, false),
            (&remote, &bob, "echo", &echo, true),
            (&remote, &bob, "whoami", &json!({}), false),
        ] {
            let stdio = url.as_str() == local || tool.starts_with("local__");
            let before = if stdio { settled(&marker).await } else { seen(&server).await.len() as u64 };
            let r = call_tool(url, user, tool, args.clone(), modern).await;
            let what = format!("{era} {url} {tool}: {r}");
            let user = if std::ptr::eq(user, &alice) { "Alice@Example.com" } else { "bob" };
            expected.push((user, tool.to_owned(), if allowed { "ok" } else { "refused" }));
            if allowed {
                assert!(ok(&r), "{what}");
            } else {
                assert!(unknown(&r, tool), "{what}");
                // Nothing reached the server: a stdio child reads nothing but its stdin (less
                // than a call's bytes, were anything else read meanwhile); the remote one counts
                // every request.
                let after = if stdio { settled(&marker).await } else { seen(&server).await.len() as u64 };
                let call_bytes = 40 + tool.len() as u64;
                assert!(
                    if stdio { after - before < call_bytes } else { after == before },
                    "{what}: {before} → {after}"
                );
            }
        }
    }

    // Prompts: what a role grants is got, what it does not is unknown.
    for (url, user, prompt, allowed) in [
        (&merged, &alice, "local__simple-prompt", true),
        (&merged, &alice, "local__args-prompt", false),
        (&local, &alice, "simple-prompt", true),
        (&local, &bob, "simple-prompt", false),
    ] {
        let auth = bearer(user);
        let sid = open_session(url, &[("authorization", &auth)]).await;
        let body = json!({"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": prompt}});
        let r = call(url, &sid, &[("authorization", &auth)], &body.to_string()).await.message();
        if allowed {
            assert!(r["result"]["messages"].is_array(), "{url} {prompt}: {r}");
        } else {
            assert_eq!(r["error"]["message"], format!("unknown prompt: {prompt}"), "{url} {prompt}: {r}");
        }
    }

    // Completions name a prompt or a resource: refused alike where they may not be used (alice
    // has the local simple-* prompts and static resources, not completable-prompt or templates).
    for (url, prompt_or_uri, allowed) in [
        (&merged, json!({"type": "ref/prompt", "name": "local__completable-prompt"}), false),
        (&local, json!({"type": "ref/prompt", "name": "completable-prompt"}), false),
        (&local, json!({"type": "ref/resource", "uri": "demo://resource/dynamic/text/{resourceId}"}), false),
        // Granted: it reaches the server (whatever the server makes of it).
        (&local, json!({"type": "ref/resource", "uri": "demo://resource/static/document/architecture.md"}), true),
    ] {
        let auth = bearer(&alice);
        let sid = open_session(url, &[("authorization", &auth)]).await;
        let body = json!({"jsonrpc": "2.0", "id": 9, "method": "completion/complete",
                          "params": {"ref": prompt_or_uri, "argument": {"name": "department", "value": "S"}}});
        let r = call(url, &sid, &[("authorization", &auth)], &body.to_string()).await.message();
        let refused = r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("unknown prompt") || m.starts_with("no server offers"));
        assert_eq!(!refused, allowed, "{url} {prompt_or_uri}: {r}");
    }
    // Resources: listed and read only where granted, by URI (alice: the static documents).
    let resources = |url: String, user: String| async move {
        let auth = bearer(&user);
        let sid = open_session(&url, &[("authorization", &auth)]).await;
        let r = call(&url, &sid, &[("authorization", &auth)], r#"{"jsonrpc":"2.0","id":5,"method":"resources/list"}"#)
            .await;
        let uris: Vec<String> = r.message()["result"]["resources"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|x| x["uri"].as_str().unwrap().to_owned())
            .collect();
        (sid, uris)
    };
    let read = |url: String, sid: String, user: String, uri: String| async move {
        let body = json!({"jsonrpc": "2.0", "id": 6, "method": "resources/read", "params": {"uri": uri}});
        call(&url, &sid, &[("authorization", &bearer(&user))], &body.to_string()).await.message()
    };
    let (sid, uris) = resources(merged.clone(), alice.clone()).await;
    assert!(!uris.is_empty() && uris.iter().all(|u| u.contains("demo://resource/static/")), "{uris:?}");
    let r = read(merged.clone(), sid.clone(), alice.clone(), uris[0].clone()).await;
    assert!(r["result"]["contents"].is_array(), "{r}");
    let dynamic = uris[0].split("demo://").next().unwrap().to_owned() + "demo://resource/dynamic/text/1";
    let r = read(merged.clone(), sid, alice.clone(), dynamic.clone()).await;
    assert_eq!(r["error"]["message"], format!("no server offers the resource {dynamic}"), "{r}");
    let (sid, uris) = resources(local.clone(), alice.clone()).await;
    assert!(!uris.is_empty() && uris.iter().all(|u| u.starts_with("demo://resource/static/")), "{uris:?}");
    let r = read(local.clone(), sid.clone(), alice.clone(), "demo://resource/dynamic/text/1".into()).await;
    assert!(r["error"]["message"].as_str().is_some_and(|m| m.contains("no server offers")), "{r}");
    let r = read(local.clone(), sid, alice.clone(), uris[0].clone()).await;
    assert!(r["result"]["contents"].is_array(), "{r}");
    assert!(resources(merged.clone(), bob.clone()).await.1.is_empty(), "bob has no resources");

    // Someone the file does not name: 403, saying so.
    let mut h = MCP_HEADERS.to_vec();
    let auth = bearer(&eve);
    h.push(("authorization", &auth));
    let r = request("POST", &merged, &h, INITIALIZE).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("eve@example.com is not a user of this gateway"), "{}", r.body);

    // The audit trail: a line per call, allowed or refused, naming who, what, where and how it
    // went; the refusals of Eve (not a user) and of a request without a token; never a token.
    let text = std::fs::read_to_string(&trail).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let calls: Vec<(String, String, String)> = lines
        .iter()
        .filter(|l| l["method"] == "tools/call")
        .map(|l| {
            (
                l["user"].as_str().unwrap().to_owned(),
                l["name"].as_str().unwrap().to_owned(),
                l["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(u, t, o)| (u.to_string(), t.clone(), o.to_string())).collect();
    assert_eq!(calls, expected, "{text}");
    for l in lines.iter().filter(|l| l["method"] == "tools/call") {
        let reached = l["outcome"] == "ok";
        assert_eq!(l["server"].is_string(), reached, "a server only where the call reached one: {l}");
        assert!(l["time"].as_str().unwrap().ends_with('Z') && l["latency_ms"].is_number(), "{l}");
        assert!(l.get("arguments").is_none(), "argument values only when configured: {l}");
    }
    let legacy_ok = lines.iter().find(|l| l["outcome"] == "ok" && l["session"].is_string());
    assert!(legacy_ok.is_some(), "a legacy call names its session: {text}");
    assert!(
        lines.iter().any(|l| l["outcome"] == "forbidden" && l["user"] == "eve@example.com"),
        "Eve's refusal: {text}"
    );
    let r = request("POST", &merged, MCP_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 401);
    let text = std::fs::read_to_string(&trail).unwrap();
    assert!(text.lines().last().unwrap().contains(r#""outcome":"unauthenticated""#), "{text}");
    for token in [&alice, &bob, &eve] {
        assert!(!text.contains(token.as_str()), "a token in the audit trail");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&trail).unwrap().permissions().mode() & 0o777, 0o600);

    // The file changes: Alice loses remote__whoami and gains local__get-sum, at once (an open
    // session included); a broken file keeps those rules.
    let sid = open_session(&merged, &[("authorization", &bearer(&alice))]).await;
    let changed = USERS.replace(r#"["local__echo", "remote__who*"]"#, r#"["local__echo", "local__get-s?m"]"#);
    std::fs::write(&users, changed).unwrap();
    let list = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
    let now = || async {
        let r = call(&merged, &sid, &[("authorization", &bearer(&alice))], list).await.message();
        r["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>()
    };
    let applied =
        crate::idp::until(Duration::from_secs(10), || async { now().await == set(&["local__echo", "local__get-sum"]) })
            .await;
    assert!(applied, "{:?}\n{}", now().await, gw.output());
    std::fs::write(&users, "{ not json").unwrap();
    let logged =
        crate::idp::until(Duration::from_secs(10), || async { gw.output().contains("the rules in force stay") }).await;
    assert!(logged, "{}", gw.output());
    assert_eq!(now().await, set(&["local__echo", "local__get-sum"]));
}

/// The seed gateway's set-up, unchanged: its users file (`allowed_tools: ["*"]` for an admin,
/// a list for another) named by `MCP_USERS_PATH`, the issuer by `OIDC_ISSUER_URL`, the public
/// URL by `MCP_BASE_URL`, the audience by `AUTH0_AUDIENCE`; the file says only `"mode": "jwt"`.
#[tokio::test]
async fn the_seed_users_file_and_the_proxies_environment_work_unchanged() {
    let issuer = jwt_issuer().await;
    let dir = tempdir("serve-seed-env");
    let users = dir.join("users.json");
    let seed = json!({
        "admin@example.com": {"name": "Admin", "roles": ["admin"], "allowed_tools": ["*"]},
        "dev@example.com": {"name": "Dev", "roles": ["developer"], "allowed_tools": ["echo", "get-sum"]}
    });
    std::fs::write(&users, seed.to_string()).unwrap();
    let config = dir.join("mcpgate.json");
    let cfg = json!({"mcpgate": {"auth": {"mode": "jwt"}}, "mcpServers": {"local": stdio_everything(&dir)}});
    std::fs::write(&config, cfg.to_string()).unwrap();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("OIDC_ISSUER_URL", &issuer.url)
        .env("MCP_BASE_URL", &public)
        .env("AUTH0_AUDIENCE", "https://api.example")
        .env("MCP_USERS_PATH", &users);
    let gw = Proc::start("mcpgate serve", cmd).await;
    ready(&gw).await;
    let url = format!("{public}/mcp");
    let token = |email: &str| mint(&issuer, json!({"claims": {"aud": "https://api.example", "email": email}}));
    let admin = token("admin@example.com").await;
    let dev = token("dev@example.com").await;
    let all = names(&url, &admin, "tools/list", false).await;
    assert!(all.len() > 5 && all.contains("echo") && all.contains("get-env"), "{all:?}");
    assert_eq!(names(&url, &dev, "tools/list", false).await, set(&["echo", "get-sum"]));
    assert!(
        call_tool(&url, &dev, "get-env", json!({}), false).await["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown tool: get-env"))
    );
    let doc = request("GET", &format!("{public}/.well-known/oauth-protected-resource"), &[], "").await.json();
    assert_eq!(
        (doc["resource"].as_str(), doc["authorization_servers"][0].as_str()),
        (Some(public.as_str()), Some(issuer.url.as_str()))
    );
    let wrong = mint(&issuer, json!({"claims": {"aud": public, "email": "admin@example.com"}})).await;
    assert_eq!(initialize(&url, Some(&wrong)).await.status, 401, "the audience is AUTH0_AUDIENCE's");
}

/// A users file a reload adds applies at once, and is watched from then on.
#[tokio::test]
async fn a_users_file_added_by_a_reload_applies_and_is_watched() {
    let issuer = jwt_issuer().await;
    let dir = tempdir("serve-users-added");
    let (gw, public) = guarded_with(&dir, &issuer.url, None, json!({}), json!({})).await;
    ready(&gw).await;
    let url = format!("{public}/mcp");
    let eve = mint(&issuer, json!({"claims": {"aud": public, "email": "eve@example.com"}})).await;
    assert_eq!(initialize(&url, Some(&eve)).await.status, 200, "no users file: everyone");
    let users = dir.join("users.json");
    std::fs::write(&users, r#"{"alice@example.com": {"allowed_tools": ["*"]}}"#).unwrap();
    let config = dir.join("mcpgate.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    cfg["mcpgate"]["auth"]["usersFile"] = json!(users);
    std::fs::write(&config, cfg.to_string()).unwrap();
    let refused =
        crate::idp::until(Duration::from_secs(10), || async { initialize(&url, Some(&eve)).await.status == 403 }).await;
    assert!(refused, "the reload's users file applies:\n{}", gw.output());
    std::fs::write(
        &users,
        r#"{"alice@example.com": {"allowed_tools": ["*"]}, "eve@example.com": {"allowed_tools": ["echo"]}}"#,
    )
    .unwrap();
    let admitted =
        crate::idp::until(Duration::from_secs(10), || async { initialize(&url, Some(&eve)).await.status == 200 }).await;
    assert!(admitted, "the added file is watched:\n{}", gw.output());
}

/// Where the gateway has users, a 2026-07-28 server reached as it is (its requests relayed as
/// they came): a user's listen stream may name only resources they may read; and a server that
/// gets one credential for every user has its tasks neither advertised nor carried (a task is
/// found by its id alone: one user's would be another's).
#[tokio::test]
async fn users_reach_a_modern_server_as_it_is_only_within_their_rights() {
    let issuer = jwt_issuer().await;
    let mut fixture = tokio::process::Command::new(node());
    fixture.arg(repo().join("tests/fixtures/conformance-server-2026.mjs"));
    let upstream = Proc::start("2026-07-28 fixture", fixture).await;
    let dir = tempdir("serve-modern-rights");
    let users = dir.join("users.json");
    std::fs::write(&users, r#"{"alice": {"name": "Alice", "roles": ["reader"]}}"#).unwrap();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let roles = json!({"reader": {"modern": {"tools": ["*"], "resources": ["test://static-text"]}}});
    let cfg = json!({
        "mcpgate": {"auth": {"mode": "jwt", "issuer": issuer.url, "publicUrl": public, "usersFile": users, "roles": roles}},
        "mcpServers": {"modern": {"url": upstream.url}},
    });
    let config = dir.join("mcpgate.json");
    std::fs::write(&config, cfg.to_string()).unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", &format!("127.0.0.1:{port}")]);
    let gw = Proc::start("mcpgate serve", cmd).await;
    ready(&gw).await;
    let alice = mint(&issuer, json!({"claims": {"aud": public, "sub": "alice"}})).await;
    let auth = bearer(&alice);
    let url = format!("{public}/servers/modern/mcp");
    let send = |method: &'static str, name: Option<&'static str>, mut params: Value| {
        let (url, auth) = (url.clone(), auth.clone());
        async move {
            params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                     "io.modelcontextprotocol/clientCapabilities": {}});
            let mut h = MCP_HEADERS.to_vec();
            h.extend([
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", method),
                ("authorization", auth.as_str()),
            ]);
            if let Some(n) = name {
                h.push(("mcp-name", n));
            }
            let body = json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params});
            Sse::open("POST", &url, &h, &body.to_string()).await
        }
    };
    // A resource Alice may not read: refused as unknown, before the server hears of it.
    let mut r = send(
        "subscriptions/listen",
        None,
        json!({"notifications": {"resourceSubscriptions": ["test://static-binary"]}}),
    )
    .await;
    let Next::Message(m) = r.next(Duration::from_secs(10)).await else { panic!("no answer") };
    assert_eq!(m["error"]["code"], -32602, "{m}");
    // One she may: the server's own stream, acknowledged.
    let mut r = send(
        "subscriptions/listen",
        None,
        json!({"notifications": {"resourceSubscriptions": ["test://static-text"], "toolsListChanged": true}}),
    )
    .await;
    let Next::Message(ack) = r.next(Duration::from_secs(10)).await else { panic!("no acknowledgement") };
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "{ack}");
    drop(r);
    // Tasks: the server sees the gateway's credential alone.
    let mut r = send("server/discover", None, json!({})).await;
    let Next::Message(d) = r.next(Duration::from_secs(10)).await else { panic!("no discover") };
    assert!(d["result"]["capabilities"].is_object(), "{d}");
    assert!(d["result"]["capabilities"].get("extensions").is_none(), "tasks advertised: {d}");
    let r = send("tasks/get", Some("t-1"), json!({"taskId": "t-1"})).await;
    assert_eq!(r.status, 404, "tasks/get carried");
}
