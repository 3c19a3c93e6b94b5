//! The gateway's own front: the Host/Origin guard, body and session checks on the MCP
//! endpoints, `/admin/reload` kept to this machine, and `/metrics` in the form scrapers expect.

use serde_json::json;

use super::*;

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
        json!({"mcpgate": {"allowHosts": [ip], "adminToken": "an-admin-token-of-32-characters!", "auth": {"allowUnauthenticated": true}}, "mcpServers": {"local": stdio_everything(&dir)}}).to_string(),
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

/// `/metrics` says it is Prometheus's text format, version 0.0.4, as scrapers expect; and the
/// operational endpoints are not for browser pages.
#[tokio::test]
async fn metrics_answer_in_the_prometheus_text_format() {
    let dir = tempdir("serve-metrics");
    let gw = serve_ready(&dir, json!({"local": echo_server(&dir)})).await;
    let metrics = format!("{}/metrics", base(&gw.url));
    let r = request("GET", &metrics, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"), "{:?}", r.headers);
    assert!(r.body.contains("# TYPE mcpgate_requests_total counter"), "{}", r.body);
    assert!(r.body.contains("mcpgate_upstream_up{server=\"local\"} 1"), "{}", r.body);
    let r = request("GET", &metrics, &[("origin", "http://127.0.0.1")], "").await;
    assert_eq!(r.status, 403, "{}", r.body);
}

/// Mistakes leave a trace: a path that is no endpoint gets a 404 naming the ones that are (and
/// an unknown server's name, that it is unknown); at debug level every client request is one
/// line — HTTP method, path, JSON-RPC method, the server it went to, status, latency — with no
/// header's value in it.
#[tokio::test]
async fn a_wrong_path_is_told_where_mcp_is_and_each_request_is_one_debug_line() {
    let dir = tempdir("serve-operable");
    let gw = serve_ready(&dir, json!({"local": echo_server(&dir), "local2": echo_server(&dir)})).await;
    for path in ["/mcp/", "/sse", "/", "/MCP"] {
        let r = request("POST", &format!("{}{path}", base(&gw.url)), MCP_HEADERS, INITIALIZE).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(r.body.contains("/mcp") && r.body.contains("/servers/<name>/mcp"), "{path}: {}", r.body);
    }
    let r = request("POST", &format!("{}/servers/nope/mcp", base(&gw.url)), MCP_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("\"nope\""), "{}", r.body);

    let secret = "Bearer never-logged-7f3a";
    let sid = open_session(&gw.url, &[("authorization", secret)]).await;
    let m = call(
        &gw.url,
        &sid,
        &[("authorization", secret)],
        &tool_call(json!(5), "local__echo", json!({"message": "hi"})),
    )
    .await
    .message();
    assert_eq!(text_of(&m), "Echo: hi", "{m}");
    let logged = crate::harness::eventually(Duration::from_secs(5), || {
        gw.output().lines().any(|l| {
            l.contains("request")
                && l.contains("rpc=\"tools/call\"")
                && l.contains("server=\"local\"")
                && l.contains("path=\"/mcp\"")
                && l.contains("status=200")
                && l.contains("elapsed_us=")
        })
    })
    .await;
    assert!(logged, "no request line for the call:\n{}", gw.output());
    assert!(!gw.output().contains("never-logged-7f3a"), "a header's value was logged:\n{}", gw.output());
}

/// Beyond loopback every caller is a stranger: `serve` refuses to listen there without
/// authentication — at once, saying where and how to override — unless the configuration says
/// `"auth": {"mode": "none", "allowUnauthenticated": true}`, and then it says so loudly.
#[tokio::test]
async fn serve_refuses_to_listen_beyond_loopback_without_authentication_unless_told() {
    let dir = tempdir("serve-unauthenticated");
    let config = dir.join("mcpgate.json");
    std::fs::write(&config, json!({"mcpServers": {"local": echo_server(&dir)}}).to_string()).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(mcpgate_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", "0.0.0.0:0"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("serve refuses at once")
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("refusing to serve 0.0.0.0:") && err.contains("without authentication"), "{err}");
    assert!(err.contains("allowUnauthenticated"), "the override is named: {err}");
    // Told so: it serves, and says so loudly.
    let told = json!({"mcpgate": {"auth": {"mode": "none", "allowUnauthenticated": true}}, "mcpServers": {"local": echo_server(&dir)}});
    std::fs::write(&config, told.to_string()).unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", "0.0.0.0:0"]);
    let gw = Proc::start("mcpgate serve", cmd).await;
    assert!(gw.output().contains("WITHOUT AUTHENTICATION"), "{}", gw.output());
    // With authentication it serves beyond loopback, and says nothing of the kind.
    let jwt = json!({"mcpgate": {"auth": {"mode": "jwt", "issuer": "https://idp.example/", "publicUrl": "https://mcp.example"}}, "mcpServers": {"local": echo_server(&dir)}});
    std::fs::write(&config, jwt.to_string()).unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", "0.0.0.0:0"]);
    let gw = Proc::start("mcpgate serve", cmd).await;
    assert!(!gw.output().contains("WITHOUT AUTHENTICATION"), "{}", gw.output());
    // A mode lacking what it needs is refused with the path of what is missing, not ignored.
    for (auth, path) in [
        (json!({"mode": "oauth"}), "mcpgate.auth.provider.issuer"),
        (json!({"mode": "oauth", "publicUrl": "https://gw.example"}), "mcpgate.auth.provider.clientId"),
        (json!({"mode": "magic"}), "mcpgate.auth.mode"),
        (json!({"mode": "jwt"}), "mcpgate.auth.issuer"),
        (json!({"mode": "jwt", "issuer": "https://idp.example/"}), "mcpgate.auth.publicUrl"),
    ] {
        std::fs::write(&config, json!({"mcpgate": {"auth": auth}, "mcpServers": {}}).to_string()).unwrap();
        let out = std::process::Command::new(mcpgate_bin())
            .args(["check", "--config"])
            .arg(&config)
            .env_remove("OIDC_ISSUER_URL")
            .env_remove("AUTH0_DOMAIN")
            .env_remove("MCP_BASE_URL")
            .env_remove("OIDC_CLIENT_ID")
            .env_remove("AUTH0_CLIENT_ID")
            .env_remove("MCP_AUTH_PROVIDER")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success() && said.contains(path), "{auth}: {said}");
    }
}

/// Params that are no object (or a `uri` that is no string, a `ref` that is no object) where
/// the gateway reads and rewrites them (the merged endpoint; subscriptions everywhere): a -32602
/// naming what is wrong, and the gateway goes on (a write into such a value would abort the
/// process); alone, the rest goes to the server as it came.
#[tokio::test]
async fn hostile_params_where_the_gateway_rewrites_them_are_refused_and_nothing_breaks() {
    let dir = tempdir("serve-hostile-params");
    let gw = serve_ready(&dir, json!({"local": echo_server(&dir), "local2": echo_server(&dir)})).await;
    let lone = format!("{}/servers/local/mcp", base(&gw.url));
    let cases = [
        ("resources/subscribe", "[]"),
        ("resources/subscribe", "\"x\""),
        ("resources/unsubscribe", "5"),
        ("resources/read", "[]"),
        ("resources/read", r#"{"uri": 5}"#),
        ("completion/complete", r#"{"ref": 1, "argument": {"name": "a", "value": ""}}"#),
        ("completion/complete", "[1]"),
    ];
    for url in [&gw.url, &lone] {
        let sid = open_session(url, &[]).await;
        for (method, params) in cases {
            let body = format!(r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":{params}}}"#);
            let m = call(url, &sid, &[], &body).await.message();
            // Alone, what the gateway need not read goes to the server as it came (its own error).
            let ours = url == &gw.url || method.starts_with("resources/") && method.ends_with("subscribe");
            if ours {
                assert_eq!(m["error"]["code"], -32602, "{url} {method} {params}: {m}");
            } else {
                assert!(m["error"].is_object(), "{url} {method} {params}: {m}");
            }
        }
        let pong = call(url, &sid, &[], r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#).await.message();
        assert!(pong["result"].is_object(), "{url}: the gateway went on: {pong}");
    }
}
