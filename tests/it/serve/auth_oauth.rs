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
/// file (the seed's shape) and an audit trail in `dir`.
pub(super) async fn authorizing(dir: &FsPath, issuer: &str, remote: Option<&str>, port: u16) -> (Proc, String) {
    authorizing_as(dir, issuer, remote.map(machine), port, false, &[]).await
}

/// The remote server at `url`, reached with the gateway's own machine credential.
fn machine(url: &str) -> Value {
    json!({"url": url, "auth": {"oauth": {"clientId": "mcpgate-m2m", "clientSecret": "m2m-secret", "grant": "client-credentials"}}})
}

/// `authorizing`; with `from_env`, the provider, the public URL and the users file are given the
/// way the Auth0 and OpenID proxies' users give them: `OIDC_ISSUER_URL`, `OIDC_CLIENT_ID`,
/// `OIDC_CLIENT_SECRET`, `MCP_BASE_URL`, `MCP_USERS_PATH`.
/// `remote` is the entry of the server named `remote`; `extra` is more environment
/// (`SSL_CERT_FILE`, say).
pub(super) async fn authorizing_as(
    dir: &FsPath,
    issuer: &str,
    remote: Option<Value>,
    port: u16,
    from_env: bool,
    extra: &[(&str, &str)],
) -> (Proc, String) {
    let public = format!("http://127.0.0.1:{port}");
    let users = dir.join("users.json");
    if !users.exists() {
        let rights = json!({
            "alice@example.com": {"name": "Alice", "roles": ["user"], "allowed_tools": ["local__echo", "remote__whoami"]},
            "bob@example.com": {"name": "Bob", "roles": ["user"], "allowed_tools": ["local__get-sum", "remote__echo"]}
        });
        std::fs::write(&users, rights.to_string()).unwrap();
    }
    // Roles from the provider's `groups` claim: `dev` may use the stdio server's get-sum.
    let mut auth = json!({"mode": "oauth", "stateDir": dir.join("state"), "refreshGrace": "1s",
                          "rolesClaim": "groups", "roles": {"dev": {"local": ["get-sum"]}},
                          "provider": {"scopes": ["openid", "email", "profile", "groups"]}});
    let env = [
        ("OIDC_ISSUER_URL", issuer),
        ("OIDC_CLIENT_ID", "mcpgate-confidential"),
        ("OIDC_CLIENT_SECRET", "test-secret"),
        ("MCP_BASE_URL", public.as_str()),
        ("MCP_USERS_PATH", users.to_str().unwrap()),
    ];
    if !from_env {
        auth["publicUrl"] = json!(public);
        auth["usersFile"] = json!(users);
        auth["provider"] = json!({"issuer": issuer, "clientId": "mcpgate-confidential", "clientSecret": "test-secret",
                                  "scopes": ["openid", "email", "profile", "groups"]});
    }
    let mut servers = json!({"local": stdio_everything(dir)});
    if let Some(entry) = remote {
        servers["remote"] = entry;
    }
    let cfg = json!({
        "mcpgate": {"threads": 2, "auth": auth, "audit": {"file": dir.join("audit.jsonl")}},
        "mcpServers": servers,
    });
    let config = dir.join("mcpgate.json");
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", &format!("127.0.0.1:{port}"), "-v"]);
    for (k, v) in env.iter().filter(|_| from_env).chain(extra) {
        cmd.env(k, v);
    }
    (Proc::start("mcpgate serve", cmd).await, public)
}

/// The SDK's OAuth client signing `user` in through the browser, then listing and calling.
pub(super) async fn sign_in(mcp: &str, user: &str, calls: &[&str], env: &[(&str, &str)]) -> Value {
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
    // Configured as the Auth0 proxy's users configure it: the environment, the seed's users file.
    let (mut gw, public) = authorizing_as(&dir, &provider.url, Some(machine(&server.url)), port, true, &[]).await;
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

    // Dev, whom the users file does not name, is let in by the role the provider's `groups` claim
    // gives: only what that role grants. A user with neither is refused.
    let dev = sign_in(&mcp, "dev-dana@example.com", &[r#"local__get-sum={"a":1,"b":2}"#], &[]).await;
    assert_eq!(dev["tools"], json!(["local__get-sum"]), "{dev:#}");
    assert_eq!(dev["calls"]["local__get-sum"]["ok"], json!(true), "{dev:#}");

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
    // And its access tokens with it, however fresh.
    let revoked = |token: &str| {
        let (mcp, bearer) = (mcp.clone(), format!("Bearer {token}"));
        async move {
            request("POST", &mcp, &[MCP_HEADERS, &[("authorization", bearer.as_str())]].concat(), INITIALIZE)
                .await
                .status
                == 401
        }
    };
    assert!(revoked(a["access_token"].as_str().unwrap()).await && revoked(&access).await);

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
            want("dev-dana@example.com", "local__get-sum", "ok"),
        ],
        "{trail}"
    );
    assert!(!trail.contains(&access) && !trail.contains(&first_refresh), "a token in the audit trail");

    // A restart keeps the signing keys and what was revoked: Bob's token still works, Alice's
    // revoked one still does not.
    gw.kill().await;
    let (gw2, _) = authorizing(&dir, &provider.url, Some(&server.url), port).await;
    ready(&gw2).await;
    assert_eq!(list_tools(&mcp, bob["tokens"]["access_token"].as_str().unwrap()).await.status, 200, "{}", gw2.output());
    assert!(revoked(&access).await, "a revocation forgotten by a restart");
    use std::os::unix::fs::PermissionsExt;
    for f in ["state", "state/state.redb", "state/key"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
    }
}

/// The official suite's authorization-server scenarios (`@modelcontextprotocol/conformance`
/// 0.2.0-alpha.12, `authorization`: the metadata endpoint, the authorization-code grant) against
/// the gateway, its interactive sign-in done by the browser: every check passes.
#[tokio::test]
async fn the_official_authorization_server_scenarios_pass_against_the_gateway() {
    use tokio::io::AsyncBufReadExt;
    let provider = idp(&[], 3600).await;
    let dir = tempdir("serve-oauth-conformance");
    let (gw, public) = authorizing(&dir, &provider.url, None, free_port()).await;
    ready(&gw).await;
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/callback");
    let form = json!({"redirect_uris": [callback], "token_endpoint_auth_method": "none"}).to_string();
    let r = request("POST", &format!("{public}/register"), &[("content-type", "application/json")], &form).await;
    let client_id = r.json()["client_id"].as_str().unwrap().to_owned();
    let out = dir.join("conformance");
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("node_modules/conformance-next/dist/index.js"))
        .args(["authorization", "--url", &public, "--client-id", &client_id, "--port", &port.to_string(), "-o"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut suite = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(suite.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let mut browser = None;
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            let url = line.trim();
            if url.starts_with(&format!("{public}/authorize?")) && browser.is_none() {
                let mut b = tokio::process::Command::new(node());
                b.arg(repo().join("tests/fixtures/browser-login.mjs")).arg(url).env("LOGIN_USER", "alice@example.com");
                browser = Some(b.kill_on_drop(true).spawn().unwrap());
            }
        }
        suite.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(90), run).await.expect("the suite did not finish");
    assert!(browser.is_some(), "the suite never asked for a sign-in:\n{printed}");
    assert!(status.success(), "{printed}");
    let mut checks = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let file = entry.unwrap().path().join("checks.json");
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        checks.extend(
            doc.as_array()
                .unwrap()
                .iter()
                .map(|c| (c["id"].as_str().unwrap().to_owned(), c["status"].as_str().unwrap().to_owned())),
        );
    }
    checks.sort();
    let want = |id: &str, s: &str| (id.to_owned(), s.to_owned());
    assert_eq!(
        checks,
        vec![
            want("authorization-code-grant", "SUCCESS"),
            want("authorization-server-metadata", "SUCCESS"),
            want("authorization-server-metadata-cimd", "SUCCESS"),
        ],
        "{printed}"
    );
}

/// A client named by its metadata document (an https URL as `client_id`), as the SDK does when
/// the gateway offers it: the gateway fetches the document (trusting the test's certificate
/// through `SSL_CERT_FILE`, as an operator's private CA would be), checks it, keeps it, and the
/// client signs in, registering nothing.
#[tokio::test]
async fn a_client_named_by_its_metadata_document_signs_in_without_registering() {
    let provider = idp(&[], 3600).await;
    let dir = tempdir("serve-oauth-cimd");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    // One server: its names unprefixed.
    let users = json!({"alice@example.com": {"name": "Alice", "allowed_tools": ["echo"]}});
    std::fs::write(dir.join("users.json"), users.to_string()).unwrap();
    let trust = [("SSL_CERT_FILE", cert.to_str().unwrap())];
    let (gw, public) = authorizing_as(&dir, &provider.url, None, free_port(), false, &trust).await;
    ready(&gw).await;
    let env = [("CIMD_CERT", cert.to_str().unwrap()), ("CIMD_KEY", key.to_str().unwrap())];
    let report = sign_in(&format!("{public}/mcp"), "alice@example.com", &[r#"echo={"message":"hi"}"#], &env).await;
    let client = report["client_id"].as_str().unwrap();
    assert!(client.starts_with("https://127.0.0.1:") && client.ends_with("/oauth/client.json"), "{report:#}");
    assert_eq!(report["tools"], json!(["echo"]), "{report:#}");
    assert_eq!(report["calls"]["echo"]["ok"], json!(true), "{report:#}");
    // Fetched once for the authorization request and the token request alike.
    assert_eq!(report["document_fetches"], json!(1), "{report:#}");
    assert!(gw.output().contains("fetched a client metadata document"), "{}", gw.output());
}
