//! `mcpgate.auth` `"mode": "oauth"`: the gateway as the authorization server MCP clients see, in
//! front of a real OpenID provider (tests/fixtures/oidc-provider.mjs), with a real user in headless
//! Chromium and the official SDK's OAuth client (tests/clients/sdk-oauth-client.mjs): discovery →
//! registration → the gateway's consent page → the provider's login → the callback → tokens →
//! each user's own tools → refresh with rotation, a grace window and reuse detection → the audit
//! trail → a restart that keeps what was issued.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::idp::{idp, protected, seen};

/// A gateway in `oauth` mode in front of `issuer`, with a stdio server and a remote one, a users
/// file and an audit trail in `dir`.
pub(super) async fn authorizing(dir: &FsPath, issuer: &str, remote: Option<&str>, port: u16) -> (Proc, String) {
    let public = format!("http://127.0.0.1:{port}");
    let users = dir.join("users.json");
    if !users.exists() {
        let rights = json!({
            "alice@example.com": {"name": "Alice", "allowed_tools": ["local__echo", "remote__whoami"]},
            "bob@example.com": {"name": "Bob", "allowed_tools": ["local__get-sum", "remote__echo"]}
        });
        std::fs::write(&users, rights.to_string()).unwrap();
    }
    let auth = json!({
        "mode": "oauth", "publicUrl": public, "stateDir": dir.join("state"), "usersFile": users, "refreshGrace": "1s",
        "provider": {"issuer": issuer, "clientId": "mcpgate-confidential", "clientSecret": "test-secret",
                     "scopes": ["openid", "email", "profile"]},
    });
    let m2m =
        json!({"oauth": {"clientId": "mcpgate-m2m", "clientSecret": "m2m-secret", "grant": "client-credentials"}});
    let mut servers = json!({"local": stdio_everything(dir)});
    if let Some(url) = remote {
        servers["remote"] = json!({"url": url, "auth": m2m});
    }
    let cfg = json!({
        "mcpgate": {"threads": 2, "auth": auth, "audit": {"file": dir.join("audit.jsonl")}},
        "mcpServers": servers,
    });
    let config = dir.join("mcpgate.json");
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", &format!("127.0.0.1:{port}"), "-v"]);
    (Proc::start("mcpgate serve", cmd).await, public)
}

/// The SDK's OAuth client signing `user` in through the browser, then listing and calling.
async fn sign_in(mcp: &str, user: &str, calls: &[&str], env: &[(&str, &str)]) -> Value {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/clients/sdk-oauth-client.mjs"))
        .arg(mcp)
        .args(calls)
        .env("LOGIN_USER", user)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out =
        tokio::time::timeout(Duration::from_secs(90), cmd.output()).await.expect("the OAuth client timed out").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("no report; stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report:#}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    report
}

async fn refresh(public: &str, client_id: &str, token: &str) -> Reply {
    let form = format!("grant_type=refresh_token&client_id={client_id}&refresh_token={token}");
    request("POST", &format!("{public}/token"), &[("content-type", "application/x-www-form-urlencoded")], &form).await
}

async fn list_tools(mcp: &str, token: &str) -> Reply {
    let auth = format!("Bearer {token}");
    let sid = open_session(mcp, &[("authorization", auth.as_str())]).await;
    call(mcp, &sid, &[("authorization", auth.as_str())], r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).await
}

#[tokio::test]
async fn a_user_signs_in_through_the_gateway_and_uses_only_their_tools() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let dir = tempdir("serve-oauth");
    let port = free_port();
    let (mut gw, public) = authorizing(&dir, &provider.url, Some(&server.url), port).await;
    ready(&gw).await;
    let mcp = format!("{public}/mcp");

    // The metadata the client discovers: the resource names the gateway as its authorization
    // server, whose own metadata says the same issuer.
    let prm = crate::idp::get_json(&format!("{public}/.well-known/oauth-protected-resource/mcp")).await;
    assert_eq!(prm["authorization_servers"], json!([public]), "{prm}");
    let asm = crate::idp::get_json(&format!("{public}/.well-known/oauth-authorization-server")).await;
    assert_eq!(asm["issuer"], json!(public));
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));

    // Alice: registered (RFC 7591), consents on the gateway's page, signs in at the provider.
    let before = seen(&server).await.len();
    let alice = sign_in(
        &mcp,
        "alice@example.com",
        &[r#"local__echo={"message":"hi"}"#, r#"remote__echo={"message":"x"}"#, "remote__whoami={}"],
        &[],
    )
    .await;
    assert_eq!(alice["iss"], json!(public), "RFC 9207: the answer names the gateway");
    assert_eq!(alice["tools"], json!(["local__echo", "remote__whoami"]), "{alice:#}");
    assert_eq!(alice["calls"]["local__echo"]["ok"], json!(true), "{alice:#}");
    assert_eq!(alice["calls"]["remote__whoami"]["ok"], json!(true), "{alice:#}");
    let refused = &alice["calls"]["remote__echo"];
    assert_eq!(refused["ok"], json!(false), "{alice:#}");
    // The remote server saw one call (whoami), not the refused one, and only the gateway's own
    // credential, never a token of the gateway's users.
    let shown = seen(&server).await;
    let calls = shown[before..].iter().filter(|r| r["method"] == "tools/call").count();
    assert_eq!(calls, 1, "the refused call reached the server: {shown:#?}");
    assert!(shown[before..].iter().all(|r| r["client_id"] == "mcpgate-m2m"), "{shown:#?}");
    let access = alice["tokens"]["access_token"].as_str().unwrap().to_owned();
    let first_refresh = alice["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    assert!(!format!("{shown:?}").contains(&access), "a user's token reached an upstream");
    let client_id = alice["client_id"].as_str().unwrap().to_owned();

    // Bob, another user, consent page loaded twice: his own tools.
    let bob = sign_in(&mcp, "bob@example.com", &[r#"remote__echo={"message":"b"}"#], &[("CONSENT_TWICE", "1")]).await;
    assert_eq!(bob["tools"], json!(["local__get-sum", "remote__echo"]), "{bob:#}");
    assert_eq!(bob["calls"]["remote__echo"]["ok"], json!(true), "{bob:#}");

    // Refresh: rotation; two concurrent refreshes with one token both succeed (the grace
    // window), each with a new token; past the window, the same token again revokes the family.
    let (a, b) =
        tokio::join!(refresh(&public, &client_id, &first_refresh), refresh(&public, &client_id, &first_refresh));
    assert_eq!((a.status, b.status), (200, 200), "{} {}", a.body, b.body);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let (a, b) = (a.json(), b.json());
    let child = a["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(child, first_refresh);
    assert_ne!(a["refresh_token"], b["refresh_token"]);
    assert_eq!(list_tools(&mcp, a["access_token"].as_str().unwrap()).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let replay = refresh(&public, &client_id, &first_refresh).await;
    assert_eq!((replay.status, replay.json()["error"].clone()), (400, json!("invalid_grant")), "{}", replay.body);
    let after = refresh(&public, &client_id, &child).await;
    assert_eq!(after.json()["error"], json!("invalid_grant"), "the family is revoked: {}", after.body);

    // The audit trail: who called what, and how it went; no token in it.
    let trail = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let calls: Vec<(String, String, String)> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["method"] == "tools/call")
        .map(|l| {
            (
                l["user"].as_str().unwrap_or("-").to_owned(),
                l["name"].as_str().unwrap_or("-").to_owned(),
                l["outcome"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    let want = |u: &str, t: &str, o: &str| (u.to_owned(), t.to_owned(), o.to_owned());
    assert_eq!(
        calls,
        vec![
            want("alice@example.com", "local__echo", "ok"),
            want("alice@example.com", "remote__echo", "refused"),
            want("alice@example.com", "remote__whoami", "ok"),
            want("bob@example.com", "remote__echo", "ok"),
        ],
        "{trail}"
    );
    assert!(!trail.contains(&access) && !trail.contains(&first_refresh), "a token in the audit trail");

    // A restart keeps the signing keys and the clients: Alice's access token still works.
    gw.kill().await;
    let (gw2, _) = authorizing(&dir, &provider.url, Some(&server.url), port).await;
    ready(&gw2).await;
    assert_eq!(list_tools(&mcp, &access).await.status, 200, "{}", gw2.output());
    use std::os::unix::fs::PermissionsExt;
    for f in ["state", "state/state.redb", "state/key"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
    }
}
