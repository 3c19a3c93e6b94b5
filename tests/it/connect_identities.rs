//! Identities in one `mcpgate connect`: each agent at `/agents/NAME/mcp` with a token of its own,
//! set and rotated by a supervising wrapper through the admin API (a Unix socket only its user can
//! reach), all real parts: the official SDK client per agent, tests/fixtures/protected-server.mjs
//! checking each token against tests/fixtures/jwt-issuer.mjs's keys and saying whose it saw.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;
use crate::idp::{post, protected, seen};
use crate::issuer::{jwt_issuer, mint};

/// A token of `issuer`'s for agent `sub`, addressed to the server at `aud`.
async fn agent_token(issuer: &crate::harness::Proc, aud: &str, sub: &str) -> String {
    mint(issuer, json!({"claims": {"sub": sub, "aud": aud}})).await
}

/// One admin API request over the socket: the status and the JSON answer.
async fn admin(sock: &Path, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await.unwrap().unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let json = out.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn two_identities_reach_the_server_as_themselves_and_a_rotation_mid_session_goes_unnoticed() {
    let issuer = jwt_issuer().await;
    let server = protected(&issuer.url, &[]).await;
    let dir = tempdir("connect-identities");
    let sock = dir.join("run/admin.sock");
    // Agent C from a file, with a port of its own and its token in a file.
    let c_token = dir.join("c.token");
    std::fs::write(&c_token, agent_token(&issuer, &server.url, "agent-c").await).unwrap();
    let c_port = free_port();
    let file = dir.join("identities.json");
    let spec = json!({"c": {"bearerFile": c_token, "listen": format!("127.0.0.1:{c_port}")}});
    std::fs::write(&file, spec.to_string()).unwrap();
    let (file, sock_arg) = (file.to_str().unwrap(), sock.to_str().unwrap());
    let args = ["--identity", "a", "--identity", "b", "--identities", file, "--admin-socket", sock_arg];
    let gw = connect(&server.url, &args).await;
    let base = gw.url.trim_end_matches("/mcp").to_owned();
    // Only its user reaches the socket.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&sock), mode(sock.parent().unwrap())), (0o600, 0o700));
    if unsafe { libc::geteuid() } == 0 {
        // Root reaches any file: another user tries (a connection, as a client would).
        let probe = "require('net').connect(process.argv[1]).on('connect', () => process.exit(0)).on('error', (e) => { console.error(e.code); process.exit(1); })";
        let other = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(node())
            .args(["-e", probe])
            .arg(&sock)
            .output()
            .expect("runuser runs");
        let said = String::from_utf8_lossy(&other.stderr);
        assert!(!other.status.success() && said.contains("EACCES"), "another user reached the socket: {said}");
    }
    // The wrapper gives each identity its token; the status names no token.
    let token = |sub: &'static str| agent_token(&issuer, &server.url, sub);
    let (a1, b1) = (token("agent-a").await, token("agent-b").await);
    assert_eq!(admin(&sock, "PUT", "/identities/a", Some(json!({"token": a1}))).await.0, 200);
    assert_eq!(admin(&sock, "PUT", "/identities/b", Some(json!({"token": b1}))).await.0, 200);
    let (status, listed) = admin(&sock, "GET", "/identities", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["identities"][0]["path"], json!("/agents/a/mcp"), "{listed}");
    assert_eq!(listed["identities"][1]["token"], json!(true), "{listed}");
    assert!(listed["identities"][0]["expiresAt"].as_u64().is_some(), "{listed}");
    assert_eq!(listed["identities"][0]["lastRefusal"], Value::Null, "{listed}");
    assert!(!listed.to_string().contains(&a1) && !listed.to_string().contains(&b1), "a token in the status");

    // Agent A: a session, a call, a pause (its token is rotated meanwhile), a call, the session.
    let steps = ["session", "whoami", "wait", "whoami", "wait", "whoami", "session"];
    let mut a = PausedClient::start(&format!("{base}/agents/a/mcp"), &steps);
    a.paused().await;
    // Agent B meanwhile, as itself.
    let b = sdk_client(&format!("{base}/agents/b/mcp"), &["whoami"]).await;
    assert_eq!(b["whoami"]["sub"], json!("agent-b"), "{b}");

    // A's token is revoked at the server and a new one set: A's next call carries it, in the same
    // session, without a reconnect.
    let server_base = server.url.trim_end_matches("/mcp").to_owned();
    post(&format!("{server_base}/__test/revoke?sub=agent-a")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a2 = token("agent-a").await;
    assert_eq!(admin(&sock, "PUT", "/identities/a", Some(json!({"token": a2}))).await.0, 200);
    a.go().await;
    a.paused().await;
    // Re-registered under a new name (a new token): the same engine, its session, its old path.
    let a3 = token("agent-a3").await;
    let (status, _) = admin(&sock, "PUT", "/identities/reviewer", Some(json!({"token": a3, "replaces": "a"}))).await;
    assert_eq!(status, 200);
    a.go().await;
    let report = a.report().await;
    assert_eq!(report["whoami"]["sub"], json!("agent-a"), "{report}");
    assert_eq!(report["whoami#2"]["sub"], json!("agent-a"), "{report}");
    assert_eq!(report["whoami#3"]["sub"], json!("agent-a3"), "re-registered: {report}");
    assert!(report["session"].is_string() && report["session"] == report["session#2"], "the same session: {report}");
    // The other identity is untouched.
    let b = sdk_client(&format!("{base}/agents/b/mcp"), &["whoami"]).await;
    assert_eq!(b["whoami"]["sub"], json!("agent-b"), "{b}");
    // The server saw each agent only with its own token, and every one it took; it refuses the
    // old one now.
    let shown = seen(&server).await;
    let old = request(
        "POST",
        &server.url,
        &[MCP_HEADERS, &[("authorization", &format!("Bearer {a1}"))]].concat(),
        INITIALIZE,
    )
    .await;
    assert_eq!(old.status, 401, "the old token is dead: {}", old.body);
    let subs: Vec<&str> = shown.iter().filter_map(|t| t["sub"].as_str()).collect();
    assert!(subs.iter().all(|s| ["agent-a", "agent-a3", "agent-b", "agent-c"].contains(s)), "{shown:#?}");
    assert!(shown.iter().filter(|t| t["sub"] == "agent-a").all(|t| t["accepted"] == json!(true)), "{shown:#?}");

    // Identities come and go while running.
    assert_eq!(admin(&sock, "DELETE", "/identities/b", None).await.0, 200);
    let gone = request("POST", &format!("{base}/agents/b/mcp"), MCP_HEADERS, INITIALIZE).await;
    assert_eq!(gone.status, 404, "{}", gone.body);
    let (status, _) = admin(&sock, "PUT", "/identities/d", Some(json!({"token": token("agent-d").await}))).await;
    assert_eq!(status, 201);
    let d = sdk_client(&format!("{base}/agents/d/mcp"), &["whoami"]).await;
    assert_eq!(d["whoami"]["sub"], json!("agent-d"), "{d}");
    // The server refuses D's token: the status says so (when, and how), still without a token.
    post(&format!("{server_base}/__test/revoke?sub=agent-d&all=1")).await;
    let refused = request("POST", &format!("{base}/agents/d/mcp"), MCP_HEADERS, INITIALIZE).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let (_, listed) = admin(&sock, "GET", "/identities", None).await;
    let d = listed["identities"].as_array().unwrap().iter().find(|i| i["name"] == "d").cloned().unwrap();
    assert_eq!(d["lastRefusal"]["status"], json!(401), "{listed}");
    // C at its own port (its token from its file), and at its path.
    for url in [format!("http://127.0.0.1:{c_port}/mcp"), format!("{base}/agents/c/mcp")] {
        let c = sdk_client(&url, &["whoami"]).await;
        assert_eq!(c["whoami"]["sub"], json!("agent-c"), "{url}: {c}");
    }
    for (status, why) in [
        (admin(&sock, "PUT", "/identities/bad%20name", Some(json!({"token": "x.y.z"}))).await.0, "a bad name"),
        (admin(&sock, "PUT", "/identities/e", Some(json!({"nope": 1}))).await.0, "no token"),
        (
            admin(&sock, "PUT", "/identities/f", Some(json!({"token": "x.y.z", "replaces": "nobody"}))).await.0,
            "replacing nobody",
        ),
        (admin(&sock, "DELETE", "/identities/zz", None).await.0, "no such identity"),
    ] {
        assert!((400..500).contains(&status), "{why}: {status}");
    }
    assert!(!gw.output().contains(&a2), "a token was logged");
}

#[tokio::test]
async fn the_http_admin_api_takes_only_its_secret_on_loopback() {
    let issuer = jwt_issuer().await;
    let server = protected(&issuer.url, &[]).await;
    let dir = tempdir("connect-admin-http");
    let secret_file = dir.join("run/admin.secret");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let args = ["--identity", "a", "--admin-listen", &listen, "--admin-secret-file", secret_file.to_str().unwrap()];
    let gw = connect(&server.url, &args).await;
    assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert_eq!(secret.len(), 64, "256 random bits, hex");
    let url = format!("http://{listen}/identities");
    let bearer = format!("Bearer {secret}");
    let ok = request("GET", &url, &[("authorization", bearer.as_str())], "").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["identities"][0]["name"], json!("a"));
    for (headers, why) in [
        (vec![], "no secret"),
        (vec![("authorization", "Bearer 0000")], "a wrong secret"),
        (vec![("authorization", bearer.as_str()), ("origin", "https://evil.example")], "a browser's request"),
        (vec![("authorization", bearer.as_str()), ("host", "evil.example")], "a foreign Host"),
    ] {
        let r = request("GET", &url, &headers, "").await;
        assert!(r.status == 401 || r.status == 403, "{why}: {} {}", r.status, r.body);
        assert!(!r.body.contains(&secret), "{why}: the answer holds the secret");
    }
    let token = agent_token(&issuer, &server.url, "agent-a").await;
    let put = request(
        "PUT",
        &format!("{url}/a"),
        &[("authorization", bearer.as_str())],
        &json!({"token": token}).to_string(),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let a = sdk_client(&format!("{}/agents/a/mcp", gw.url.trim_end_matches("/mcp")), &["whoami"]).await;
    assert_eq!(a["whoami"]["sub"], json!("agent-a"), "{a}");
    assert!(!gw.output().contains(&secret), "the secret was logged");

    // A secret (or socket) in a directory others may enter: refused at start (they could put
    // their own file there).
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    for flag in [["--admin-listen", "127.0.0.1:0", "--admin-secret-file"], ["--identity", "x", "--admin-socket"]] {
        let out = std::process::Command::new(mcpgate_bin())
            .args(["connect", &server.url, "--listen", "127.0.0.1:0"])
            .args(flag)
            .arg(shared.join("f"))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains("nobody else may enter"), "{flag:?}: {said}");
    }
    // Beyond loopback: refused at start.
    let out = std::process::Command::new(mcpgate_bin())
        .args(["connect", &server.url, "--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0", "--admin-secret-file"])
        .arg(dir.join("other.secret"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback only"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn identities_signed_in_with_oauth_each_get_their_own_token() {
    let provider = crate::idp::idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let dir = tempdir("connect-identities-oauth");
    let store = dir.join("store");
    let args = [
        "--grant",
        "client-credentials",
        "--client-id",
        "mcpgate-m2m",
        "--client-secret",
        "m2m-secret",
        "--store-dir",
        store.to_str().unwrap(),
        "--identity",
        "m=oauth",
        "--identity",
        "n=oauth",
        "--admin-socket",
    ];
    let sock = dir.join("run/admin.sock");
    let gw = connect(&server.url, &[&args[..], &[sock.to_str().unwrap()]].concat()).await;
    let base = gw.url.trim_end_matches("/mcp").to_owned();
    for name in ["m", "n"] {
        let r = sdk_client(&format!("{base}/agents/{name}/mcp"), &["whoami"]).await;
        assert_eq!(r["whoami"]["client_id"], json!("mcpgate-m2m"), "{name}: {r}");
    }
    // One token each, the main endpoint's included: none shared.
    let s = crate::idp::stats(&provider).await;
    assert_eq!(s["token_requests_by_grant"]["client_credentials"], json!(3), "{s}");
    let jtis: std::collections::HashSet<String> =
        seen(&server).await.iter().filter_map(|t| t["jti"].as_str().map(str::to_owned)).collect();
    assert_eq!(jtis.len(), 2, "each identity its own token");
}

#[tokio::test]
async fn names_given_up_are_free_again_and_an_identity_removed_stops_everywhere() {
    let issuer = jwt_issuer().await;
    let server = protected(&issuer.url, &[]).await;
    let dir = tempdir("connect-identities-names");
    let sock = dir.join("run/admin.sock");
    let (port, token_file) = (free_port(), dir.join("p.token"));
    std::fs::write(&token_file, agent_token(&issuer, &server.url, "agent-p").await).unwrap();
    let file = dir.join("identities.json");
    std::fs::write(&file, json!({"p": {"bearerFile": token_file, "listen": format!("127.0.0.1:{port}")}}).to_string())
        .unwrap();
    let args = ["--identities", file.to_str().unwrap(), "--admin-socket", sock.to_str().unwrap()];
    let gw = connect(&server.url, &args).await;
    let base = gw.url.trim_end_matches("/mcp").to_owned();
    let token = |sub: &'static str| agent_token(&issuer, &server.url, sub);
    let put = |name: &'static str, body: Value| {
        let sock = sock.clone();
        async move { admin(&sock, "PUT", &format!("/identities/{name}"), Some(body)).await.0 }
    };
    assert_eq!(put("a", json!({"token": token("agent-a").await})).await, 201);
    assert_eq!(put("b", json!({"token": token("agent-b").await})).await, 201);
    // Status codes say what went wrong.
    assert_eq!(put("b", json!({"token": token("agent-x").await, "replaces": "a"})).await, 409, "b is taken");
    assert_eq!(put("z", json!({"token": token("agent-x").await, "replaces": "nobody"})).await, 404);
    assert_eq!(put("p", json!({"token": token("agent-x").await})).await, 409, "p's token comes from its file");
    let expired = mint(&issuer, json!({"claims": {"sub": "agent-e", "aud": server.url, "exp": 1}})).await;
    assert_eq!(put("e", json!({"token": expired})).await, 400, "an expired token");

    // a re-registered as reviewer: a's path reaches reviewer, until a new identity takes the name.
    assert_eq!(put("reviewer", json!({"token": token("agent-r").await, "replaces": "a"})).await, 200);
    let r = sdk_client(&format!("{base}/agents/a/mcp"), &["whoami"]).await;
    assert_eq!(r["whoami"]["sub"], json!("agent-r"), "{r}");
    assert_eq!(put("a", json!({"token": token("agent-new").await})).await, 201, "a new identity, not reviewer");
    let r = sdk_client(&format!("{base}/agents/a/mcp"), &["whoami"]).await;
    assert_eq!(r["whoami"]["sub"], json!("agent-new"), "{r}");
    let r = sdk_client(&format!("{base}/agents/reviewer/mcp"), &["whoami"]).await;
    assert_eq!(r["whoami"]["sub"], json!("agent-r"), "reviewer kept its own token: {r}");

    // p removed: its path and its own port stop.
    let own = format!("http://127.0.0.1:{port}/mcp");
    assert_eq!(sdk_client(&own, &["whoami"]).await["whoami"]["sub"], json!("agent-p"));
    assert_eq!(admin(&sock, "DELETE", "/identities/p", None).await.0, 200);
    assert_eq!(request("POST", &format!("{base}/agents/p/mcp"), MCP_HEADERS, INITIALIZE).await.status, 404);
    let stopped = crate::idp::until(Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err()
    })
    .await;
    assert!(stopped, "p's own port still serves");
}
