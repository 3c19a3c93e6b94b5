//! The modern era (2026-07-28) through the gateway: a modern client (stateless requests, the
//! `_meta` envelope, input-required results) in front of 2025 servers, and a 2025 client in
//! front of a modern-only server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

/// The official v2 SDK client, probing with `server/discover`, on every route (`MCP_TOOL_PREFIX`
/// for the merged ones): its requests are stateless, its progress streams, a server's
/// elicitation comes to it as an input-required result answered in its retry, and its `ping`
/// is answered.
#[tokio::test]
async fn a_modern_client_reaches_legacy_servers_on_every_route() {
    let m = Matrix::start("serve-modern", json!({}), json!({}), false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(node())
                .arg(repo().join("tests/clients/modern-client.mjs"))
                .arg(m.url(route))
                .args(["progress", "elicit", "sampling", "ping"])
                .env("MCP_TOOL_PREFIX", route.prefix())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap()
        .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!("{route}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        });
        assert!(out.status.success(), "{route}: {report}\n{}", m.output());
        assert_eq!(report["protocol"], "2026-07-28", "{route}: {report}");
        assert_eq!(report["echo"], "Echo: modern through mcpgate", "{route}: {report}");
        // Answered by the gateway on every endpoint, though the revision dropped it.
        assert_eq!(report["ping"]["status"], 200, "{route}: ping: {report}");
        assert_eq!(report["ping"]["body"]["id"], "ping-1", "{route}: ping: {report}");
        assert!(report["ping"]["body"]["result"].is_object(), "{route}: ping: {report}");
        assert_eq!(report["elicit"]["asked"], 1, "{route}: {report}");
        assert!(report["elicit"]["text"].as_str().unwrap().contains("Grace Hopper"), "{route}: {report}");
        assert_eq!(report["progress"]["progress"], json!([1, 2, 3]), "{route}: progress streamed: {report}");
        // The server's sampling request, as an input-required round the client answers.
        assert_eq!(report["sampling"]["asked"], 1, "{route}: {report}");
        assert!(
            report["sampling"]["text"].as_str().unwrap().contains("sampled by the modern client"),
            "{route}: {report}"
        );
        // Last: the listing (see listings.rs for what it holds on each route).
        let elicitation = route.name("trigger-elicitation-request");
        let tools = &report["tools"];
        assert!(
            tools.as_array().unwrap().iter().any(|t| *t == elicitation.as_str()),
            "{route}: {elicitation} not listed: {tools}"
        );
    })
    .await;
}

/// A modern-only (2026-07-28) server behind the gateway, used by a 2025 client (the official
/// SDK), alone and merged: the server refuses `initialize`, the gateway learns it with
/// `server/discover` and speaks its revision, turning its input-required results into
/// elicitation and sampling requests to the client that made the call. (A stdio child is spoken
/// to in 2025 only: there is no modern-only stdio server to put behind the gateway.)
#[tokio::test]
async fn a_legacy_client_reaches_a_modern_only_server_on_every_remote_route() {
    let dir = tempdir("serve-modern-upstream");
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/modern-server.mjs"));
    let upstream = Proc::start("modern fixture", cmd).await;
    let gw = serve_ready(&dir, json!({"remote": {"url": upstream.url}, "local": stdio_everything(&dir)})).await;
    let ctx = Arc::new((gw, upstream));
    on_routes(&ctx, &REMOTE, |ctx, route| async move {
        let gw = &ctx.0;
        let prefix = route.prefix();
        let r = sdk_client_env(
            &route.url(&gw.url),
            &["tools", "echo", "progress", "elicit", "sampling", "roots_tool", "close"],
            &[("MCP_TOOL_PREFIX", &prefix), ("MCP_ROOTS", r#"["file:///home/legacy/work"]"#)],
        )
        .await;
        let elicitation = route.name("trigger-elicitation-request");
        assert!(r["tools"].as_array().unwrap().iter().any(|t| *t == elicitation.as_str()), "{route}: {r}");
        assert_eq!(r["echo"], "Echo: hello through mcpgate", "{route}: {r}");
        let p: Vec<u64> = r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(p, [1, 2, 3], "{route}: {r}");
        assert_eq!(r["elicit"]["text"], "Hello, Ada Lovelace (state asked)", "{route}: {r}");
        assert_eq!(r["sampling"], "LLM said: sampled by the test client", "{route}: {r}\n{}", gw.output());
        // The server's roots/list input request, put to the client as a roots/list request.
        assert_eq!(r["roots_tool"]["text"], "Roots: file:///home/legacy/work", "{route}: {r}");
        assert_eq!(r["roots_tool"]["asked"], 1, "{route}: {r}");
    })
    .await;
}

/// A 2026-07-28 request the revision does not allow is refused with HTTP 400 (-32602) before
/// anything is done with it — without `_meta`, without the client's capabilities, with a retry's
/// `inputResponses` that are not answers — and a resource read says how long it may be kept, on
/// every route.
#[tokio::test]
async fn malformed_modern_requests_are_400_and_reads_carry_cache_hints_on_every_route() {
    let m = Matrix::start("serve-modern-shape", json!({}), json!({}), false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let url = m.url(route);
        let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}});
        let post = |method: &'static str, name: Option<String>, params: Value| {
            let url = url.clone();
            async move {
                let mut h = MCP_HEADERS.to_vec();
                h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", method)]);
                if let Some(n) = &name {
                    h.push(("mcp-name", n.as_str()));
                }
                let body = json!({"jsonrpc": "2.0", "id": 3, "method": method, "params": params});
                request("POST", &url, &h, &body.to_string()).await
            }
        };
        let echo = route.name("echo");
        let args = json!({"message": "x"});
        for (params, why) in [
            (json!({"name": echo, "arguments": args}), "no _meta"),
            (
                json!({"name": echo, "arguments": args, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
                "no clientCapabilities",
            ),
            (json!({"name": echo, "arguments": args, "_meta": meta, "inputResponses": null, "requestState": "s"}), "inputResponses null"),
            (json!({"name": echo, "arguments": args, "_meta": meta, "inputResponses": {"input": 5}, "requestState": "s"}), "an answer not an object"),
            (json!({"name": echo, "arguments": args, "_meta": meta, "requestState": 7}), "requestState a number"),
        ] {
            let r = post("tools/call", Some(echo.clone()), params).await;
            assert_eq!(r.status, 400, "{route}: {why}: {}", r.body);
            assert_eq!(r.json()["error"]["code"], json!(-32602), "{route}: {why}: {}", r.body);
        }
        let ok = post("tools/call", Some(echo.clone()), json!({"name": echo, "arguments": args, "_meta": meta})).await;
        assert_eq!(ok.status, 200, "{route}: {}", ok.body);
        let uri = route.uri("demo://resource/static/document/architecture.md");
        let read = post("resources/read", Some(uri.clone()), json!({"uri": uri, "_meta": meta})).await;
        let read = read.message();
        let result = &read["result"];
        assert!(result["contents"].is_array(), "{route}: {read}");
        assert!(result["ttlMs"].is_u64() && result["cacheScope"].is_string(), "{route}: cache hints: {read}");
    })
    .await;
}

/// A 2026-07-28 request to `url`: the standard headers mirroring the body, `_meta` naming the
/// revision and `caps` (the client's capabilities).
pub(crate) async fn modern(url: &str, method: &str, name: Option<&str>, params: Value, caps: Value) -> Reply {
    modern_as(url, &[], method, name, params, caps).await
}

/// `modern` with more headers (`Authorization`: without authentication at the gateway, callers
/// with different tokens are different callers).
async fn modern_as(
    url: &str,
    more: &[(&str, &str)],
    method: &str,
    name: Option<&str>,
    mut params: Value,
    caps: Value,
) -> Reply {
    let mut h = MCP_HEADERS.to_vec();
    h.extend_from_slice(more);
    h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", method)]);
    if let Some(n) = name {
        h.push(("mcp-name", n));
    }
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities": caps});
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": params});
    request("POST", url, &h, &body.to_string()).await
}

/// What the revision's servers answer with an HTTP status, the gateway answers so on every
/// route: a method it has not (an unknown one, `initialize`, `resources/subscribe`) is 404; a
/// revision it does not speak is 400 naming those it does; a header that disagrees with `_meta`
/// is 400; a call whose server asks what the client did not declare is 400 naming the
/// capability (-32021), and a `subscriptions/listen` without its filter is 400.
#[tokio::test]
async fn modern_errors_carry_the_statuses_of_the_revision_on_every_route() {
    let m = Matrix::start("serve-modern-status", json!({}), json!({}), false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let url = m.url(route);
        for method in ["unknown/method", "initialize", "logging/setLevel"] {
            let r = modern(&url, method, None, json!({}), json!({})).await;
            assert_eq!((r.status, r.json()["error"]["code"].clone()), (404, json!(-32601)), "{route}: {method}: {}", r.body);
        }
        let uri = route.uri("demo://resource/static/document/architecture.md");
        let r = modern(&url, "resources/subscribe", Some(&uri), json!({"uri": uri}), json!({})).await;
        assert_eq!(r.status, 404, "{route}: resources/subscribe: {}", r.body);
        // A revision nobody speaks: refused naming those the gateway does, the one asked echoed.
        let mut h = MCP_HEADERS.to_vec();
        h.extend([("mcp-protocol-version", "v999.0.0"), ("mcp-method", "server/discover")]);
        let body = json!({"jsonrpc": "2.0", "id": 6, "method": "server/discover", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "v999.0.0", "io.modelcontextprotocol/clientCapabilities": {}}}});
        let r = request("POST", &url, &h, &body.to_string()).await;
        let e = &r.json()["error"];
        assert_eq!((r.status, e["code"].clone(), e["data"]["requested"].clone()), (400, json!(-32022), json!("v999.0.0")), "{route}: {}", r.body);
        let discover = modern(&url, "server/discover", None, json!({}), json!({})).await.message();
        let spoken = &discover["result"]["supportedVersions"];
        assert!(spoken.as_array().unwrap().contains(&json!("2026-07-28")), "{route}: {discover}");
        assert_eq!(&e["data"]["supported"], spoken, "{route}: as discover says: {}", r.body);
        // The header says one revision, `_meta` another.
        let mut h = MCP_HEADERS.to_vec();
        h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", "server/discover")]);
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "server/discover", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2025-11-25", "io.modelcontextprotocol/clientCapabilities": {}}}});
        let r = request("POST", &url, &h, &body.to_string()).await;
        assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32020)), "{route}: {}", r.body);
        // The server asks for sampling, which this client did not declare.
        let tool = route.name("trigger-sampling-request");
        let r = modern(&url, "tools/call", Some(&tool), json!({"name": tool, "arguments": {"prompt": "hi", "maxTokens": 5}}), json!({})).await;
        let e = &r.json()["error"];
        assert_eq!((r.status, e["code"].clone()), (400, json!(-32021)), "{route}: {}", r.body);
        assert_eq!(e["data"]["requiredCapabilities"], json!({"sampling": {}}), "{route}: {}", r.body);
        let r = modern(&url, "subscriptions/listen", None, json!({}), json!({})).await;
        assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32602)), "{route}: {}", r.body);
    })
    .await;
}

/// `subscriptions/listen` on every route: the acknowledgement comes first, saying what will be
/// delivered and tagged with the subscription's id (the request's); then the updates of the
/// resource named, as the caller named it — started by the same caller's call, as a server that
/// keeps them per session needs — and nothing it did not ask for (no logs, no list changes).
#[tokio::test]
async fn a_modern_client_hears_the_updates_it_listens_for_on_every_route() {
    // Apart: each server-everything on an endpoint of its own (its simulated updates are one
    // switch for every client of a stdio child).
    let m = Matrix::start("serve-listen", json!({}), json!({}), true).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let url = m.url(route);
        let uri = route.uri("demo://resource/static/document/architecture.md");
        let mut h = MCP_HEADERS.to_vec();
        h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", "subscriptions/listen")]);
        let body = json!({"jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen", "params": {
            "notifications": {"resourceSubscriptions": [uri], "promptsListChanged": false},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
        let mut stream = Sse::open("POST", &url, &h, &body.to_string()).await;
        assert_eq!(stream.status, 200, "{route}");
        let Next::Message(ack) = stream.next(Duration::from_secs(10)).await else { panic!("{route}: no acknowledgement") };
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "{route}: {ack}");
        assert_eq!(ack["params"]["notifications"], json!({"resourceSubscriptions": [uri]}), "{route}: {ack}");
        assert_eq!(ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1", "{route}: {ack}");
        // The same caller starts the server's updates (off first if they were on).
        let toggle = route.name("toggle-subscriber-updates");
        let flip = || modern(&url, "tools/call", Some(&toggle), json!({"name": toggle, "arguments": {}}), json!({}));
        let said = flip().await.message();
        if said.to_string().contains("Stopped") {
            flip().await;
        }
        let heard = stream
            .until(Duration::from_secs(10), |n| {
                assert_ne!(n["method"], "notifications/message", "{route}: a log on a listen stream: {n}");
                n["method"] == "notifications/resources/updated"
            })
            .await
            .unwrap_or_else(|got| panic!("{route}: no update: {got:?}\n{}", m.output()));
        assert_eq!(heard["params"]["uri"], uri.as_str(), "{route}: {heard}");
        assert_eq!(heard["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1", "{route}: {heard}");
        flip().await;
    })
    .await;
}

/// A 2026-07-28 server's list changes reach 2025 clients through the gateway, alone and merged:
/// the gateway keeps a `subscriptions/listen` stream open at the server, and a change on it is
/// told on the clients' GET streams and refreshes the listing; a client's resource subscription
/// is a listen stream of its session's, whose updates reach it.
#[tokio::test]
async fn a_modern_servers_list_changes_and_updates_reach_legacy_clients_on_every_remote_route() {
    let dir = tempdir("serve-modern-list-changes");
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/conformance-server-2026.mjs"));
    let upstream = Proc::start("2026-07-28 fixture", cmd).await;
    let gw = serve_ready(&dir, json!({"remote": {"url": upstream.url}, "local": stdio_everything(&dir)})).await;
    let ctx = Arc::new((gw, upstream));
    // One after the other: the fixture's dynamic tool is one switch for everyone.
    for route in REMOTE {
        let gw = &ctx.0;
        let url = route.url(&gw.url);
        let sid = session(&url).await;
        let dynamic = route.name("test_dynamic_tool");
        let listed = |r: &Value| r["result"]["tools"].as_array().unwrap().iter().any(|t| t["name"] == dynamic.as_str());
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let had = listed(&call(&url, &sid, &[], list).await.message());
        let mut events = Sse::get(&url, &sid).await;
        let r = call_text(&url, &sid, &route.name("test_trigger_tool_change"), json!({})).await;
        assert!(text_of(&r).starts_with("test_dynamic_tool"), "{route}: {r}");
        let heard = events.until(Duration::from_secs(10), |m| m["method"] == "notifications/tools/list_changed").await;
        assert!(heard.is_ok(), "{route}: no list change: {heard:?}\n{}", gw.output());
        let now = listed(&call(&url, &sid, &[], list).await.message());
        assert_ne!(had, now, "{route}: the listing was not fetched anew");
        // A resource subscription (the revision has none): a listen stream of the session's
        // naming it at the server, whose update reaches the subscriber.
        let uri = route.uri("test://watched-resource");
        let sub = json!({"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri": uri}});
        let r = call(&url, &sid, &[], &sub.to_string()).await.message();
        assert_eq!(r["result"], json!({}), "{route}: {r}\n{}", gw.output());
        call_text(&url, &sid, &route.name("test_trigger_resource_update"), json!({})).await;
        let heard = events.until(Duration::from_secs(10), |m| m["method"] == "notifications/resources/updated").await;
        let heard = heard.unwrap_or_else(|got| panic!("{route}: no update: {got:?}\n{}", gw.output()));
        assert_eq!(heard["params"]["uri"], uri.as_str(), "{route}: {heard}");
        let unsub = json!({"jsonrpc":"2.0","id":3,"method":"resources/unsubscribe","params":{"uri": uri}});
        assert_eq!(call(&url, &sid, &[], &unsub.to_string()).await.message()["result"], json!({}), "{route}");
    }
}

/// server-everything asks each session's client for its roots on its own (once the session
/// opens, not in a call) and get-roots-list reports them. A 2026-07-28 caller has no stream to be
/// asked on: on every remote route the gateway asks it before the call (input-required), and the
/// call goes through a session of those roots — each set of roots its own, another caller's
/// (another token) never seen, a caller that declared none not asked and its unasked roots not
/// taken, a malformed answer refused, and a caller naming more sets of roots than the gateway
/// keeps sessions for (16) still served.
#[tokio::test]
async fn a_modern_callers_roots_reach_a_server_that_asks_on_its_own_on_every_remote_route() {
    let m = Matrix::start("serve-modern-roots", json!({}), json!({}), false).await;
    on_routes(&m, &REMOTE, |m, route| async move {
        let url = m.url(route);
        let tool = route.name("get-roots-list");
        let params = json!({"name": tool, "arguments": {}});
        let roots_caps = json!({"roots": {}});
        // The server's own first question (to the gateway's session, once it opened) comes
        // within a second: until then nobody knows it asks.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let asked = loop {
            let r = modern(&url, "tools/call", Some(&tool), params.clone(), roots_caps.clone()).await.message();
            if r["result"]["resultType"] == "input_required" || tokio::time::Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let result = &asked["result"];
        assert_eq!(result["resultType"], "input_required", "{route}: {asked}\n{}", m.output());
        assert_eq!(result["inputRequests"]["roots"]["method"], "roots/list", "{route}: {asked}");
        let state = result["requestState"].clone();
        let with_roots = |uri: &str| {
            let mut p = params.clone();
            p["requestState"] = state.clone();
            p["inputResponses"] = json!({"roots": {"roots": [{"uri": uri, "name": "work"}]}});
            p
        };
        let reported = |r: &Value| r["result"]["content"][0]["text"].as_str().unwrap_or_default().to_owned();
        let b = [("authorization", "Bearer another-caller")];
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let calls: [(Headers<'_>, &str, &str); 3] = [
            (&[], "file:///home/a/work", "file:///home/b/work"),
            (&[], "file:///home/b/work", "file:///home/a/work"),
            (&b, "file:///home/c/work", "file:///home/a/work"),
        ];
        for (who, mine, theirs) in calls {
            let r =
                modern_as(&url, who, "tools/call", Some(&tool), with_roots(mine), roots_caps.clone()).await.message();
            let text = reported(&r);
            assert!(text.contains(mine) && !text.contains(theirs), "{route}: {mine}: {r}\n{}", m.output());
        }
        // A caller that declared no roots is not asked (the server, asked by nobody, has none),
        // and roots it gives unasked are not taken.
        for p in [params.clone(), with_roots("file:///unasked")] {
            let r = modern(&url, "tools/call", Some(&tool), p, json!({})).await.message();
            assert_eq!(r["result"]["resultType"], "complete", "{route}: {r}");
            assert!(!reported(&r).contains("file:///"), "{route}: {r}");
        }
        // An answer that is no roots/list result.
        let mut bad = with_roots("file:///x");
        bad["inputResponses"]["roots"] = json!("file:///x");
        let r = modern(&url, "tools/call", Some(&tool), bad, roots_caps.clone()).await.message();
        assert_eq!(r["error"]["code"], -32602, "{route}: {r}");
        // More sets of roots than sessions kept for one caller: the oldest sessions end, each
        // set is still its own.
        for i in 0..18 {
            let mine = format!("file:///home/set{i}");
            let r = modern(&url, "tools/call", Some(&tool), with_roots(&mine), roots_caps.clone()).await.message();
            assert!(reported(&r).contains(&mine), "{route}: set {i}: {r}");
        }
        let r = modern(&url, "tools/call", Some(&tool), with_roots("file:///home/a/work"), roots_caps.clone())
            .await
            .message();
        assert!(reported(&r).contains("file:///home/a/work"), "{route}: again: {r}");
    })
    .await;
    // Per route (view), for each caller one session without roots; with roots at most 16 for
    // the first, one for the other.
    let metrics = request("GET", &format!("{}/metrics", base(&m.url(REMOTE[1]))), &[], "").await.body;
    let open = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mcpgate_modern_sessions_open "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(open.parse::<usize>().unwrap() <= 2 * (1 + 16 + 1 + 1), "modern sessions open: {open}");
}

/// A 2025 server's list changes reach a 2026-07-28 client's `subscriptions/listen` stream on
/// every remote route (the 2025 conformance fixture's dynamic tool, switched by the client's
/// call), once, tagged with the stream's id. (server-everything, the stdio routes' server, has
/// no way to change its lists on demand.)
#[tokio::test]
async fn a_legacy_servers_list_changes_reach_a_modern_listener_on_every_remote_route() {
    let dir = tempdir("serve-legacy-list-changes");
    let upstream = fixture(&[]).await;
    let gw = serve_ready(&dir, json!({"remote": {"url": upstream.url}, "local": stdio_everything(&dir)})).await;
    for route in REMOTE {
        let url = route.url(&gw.url);
        let mut h = MCP_HEADERS.to_vec();
        h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", "subscriptions/listen")]);
        let body = json!({"jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen", "params": {
            "notifications": {"toolsListChanged": true},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
        let mut stream = Sse::open("POST", &url, &h, &body.to_string()).await;
        let Next::Message(ack) = stream.next(Duration::from_secs(10)).await else {
            panic!("{route}: no acknowledgement")
        };
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "{route}: {ack}");
        let tool = route.name("test_trigger_tool_change");
        let said = modern(&url, "tools/call", Some(&tool), json!({"name": tool, "arguments": {}}), json!({})).await;
        assert!(said.message().to_string().contains("Tools changed"), "{route}: {}", said.body);
        let changed = |n: &Value| n["method"] == "notifications/tools/list_changed";
        let heard = stream.until(Duration::from_secs(10), changed).await;
        let heard = heard.unwrap_or_else(|got| panic!("{route}: no list change: {got:?}\n{}", gw.output()));
        assert_eq!(heard["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1", "{route}: {heard}");
        assert!(stream.until(Duration::from_millis(500), changed).await.is_err(), "{route}: told twice");
    }
}
