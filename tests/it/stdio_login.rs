//! Signing in to an OAuth-protected MCP server: a certified OpenID provider (npm `oidc-provider`)
//! as the authorization server, real MCP servers behind it, and a real headless Chromium doing the
//! user's part. The bridge discovers the server, registers, runs authorization code + PKCE with
//! the resource indicator, stores the tokens (0600, encrypted), refreshes them ahead of expiry and
//! signs in again when the refresh token dies.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use crate::idp::*;

fn s(v: &str) -> String {
    v.to_owned()
}

/// First run: the browser signs in. Second run: the stored token, no browser. The official SDK's
/// stdio client launches the bridge: initialize, tools/list, a tool with progress, an elicitation.
#[tokio::test]
async fn first_run_signs_in_through_the_browser_the_second_uses_the_stored_token() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &["--scopes", "mcp:tools"]).await;
    let (store, count) = store("login-first-second");
    let run = |browser: String| {
        let cmd = vec![
            s(mcpgate_bin()),
            s("stdio"),
            server.url.clone(),
            s("--store-dir"),
            store.display().to_string(),
            s("--browser"),
            browser,
        ];
        let cmd = serde_json::to_string(&cmd).unwrap();
        async move {
            sdk_client_env(
                "stdio",
                &["info", "tools", "echo", "slow", "ask", "whoami", "close"],
                &[("MCP_STDIO_COMMAND", &cmd)],
            )
            .await
        }
    };
    let r = run(browser(&count, true)).await;
    assert_eq!(opened(&count), 1, "the first run opens the browser once");
    assert!(r["tools"].as_array().unwrap().iter().any(|t| t == "slow-progress"), "{r}");
    assert_eq!(r["echo"], "Echo: hello through mcpgate");
    // In order, before the result. (The SDK's stdio client may drop the last one when it reads it in
    // one chunk with the result: its own race, see src/stdio/mod.rs and tests/it/stdio_bridge.rs.)
    let progress: Vec<u64> = r["slow"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(!progress.is_empty() && progress[0] == 1 && progress.windows(2).all(|w| w[0] < w[1]), "{r}");
    assert!(r["slow"]["lastProgressAt"].as_u64() <= r["slow"]["resultAt"].as_u64());
    assert_eq!(r["slow"]["text"], "Done: 3 steps");
    assert_eq!(r["ask"]["asked"], 1);
    assert_eq!(r["ask"]["text"], "Hello, Ada Lovelace");
    assert_eq!(r["whoami"]["aud"], server.url, "the token is for this server (RFC 8707)");
    assert!(r["whoami"]["scope"].as_str().unwrap().contains("mcp:tools"), "{r}");

    // The second run starts with the stored token: a browser would fail this run.
    let r = run(browser(&count, false)).await;
    assert_eq!(opened(&count), 1, "no browser on the second run");
    assert_eq!(r["whoami"]["aud"], server.url);
    assert_eq!(stats(&provider).await["authorizations"], 1, "one sign-in in all");

    // What is stored: the server, its issuer, the expiry; files 0600, the token not in clear.
    let (ok, out, err) = mcpgate(&["status", "--json"], &store, "false").await;
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cred = &status["credentials"][0];
    assert_eq!(
        (cred["server"].as_str(), cred["issuer"].as_str()),
        (Some(server.url.as_str()), Some(provider.url.as_str())),
        "{status}"
    );
    assert_eq!((cred["refresh_token"].as_bool(), cred["usable"].as_bool()), (Some(true), Some(true)));
    for entry in walk(&store) {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&entry).unwrap().permissions()) & 0o777;
        let expect = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expect, "{}", entry.display());
    }
}

/// With 6-second tokens, the bridge refreshes at about two thirds of the lifetime, before expiry:
/// the server never sees an expired token and no request waits for a refresh.
#[tokio::test]
async fn a_token_is_refreshed_before_it_expires() {
    let provider = idp(&[], 6).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-refresh");
    let (ok, _, err) = mcpgate(&["login", &server.url], &store, &browser(&count, true)).await;
    assert!(ok, "login: {err}");
    let mut bridge = Bridge::start(&server.url, &["-v"], &store, &browser(&count, false)).await;
    bridge.initialize().await;
    let signed_in = std::time::Instant::now();
    assert_eq!(bridge.call_text("echo", json!({"message":"a"})).await, "Echo: a");
    let refreshed = until(Duration::from_secs(10), || async {
        stats(&provider).await["token_requests_by_grant"]["refresh_token"].as_u64() >= Some(1)
    })
    .await;
    assert!(refreshed, "no refresh; stderr:\n{}", bridge.stderr());
    assert!(
        signed_in.elapsed() < Duration::from_secs(6),
        "refreshed before the 6 s token expired ({:?})",
        signed_in.elapsed()
    );
    // Past the first token's expiry: calls go on with the refreshed one, no 401 ever seen.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bridge.call_text("echo", json!({"message":"b"})).await, "Echo: b");
    let refused: Vec<_> = seen(&server).await.into_iter().filter(|t| t["accepted"] != true).collect();
    assert!(refused.is_empty(), "the server refused tokens: {refused:?}");
    assert_eq!(opened(&count), 1);
    bridge.close().await;
}

/// A refresh token revoked at the provider: the refresh fails with invalid_grant, the credential
/// is dropped, and the next request signs in again in the browser — and succeeds.
#[tokio::test]
async fn a_revoked_refresh_token_leads_to_a_clean_re_login() {
    let provider = idp(&[], 4).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-revoked");
    let (ok, _, err) = mcpgate(&["login", &server.url], &store, &browser(&count, true)).await;
    assert!(ok, "login: {err}");
    let mut bridge = Bridge::start(&server.url, &["-v"], &store, &browser(&count, true)).await;
    bridge.initialize().await;
    assert_eq!(bridge.call_text("echo", json!({"message":"before"})).await, "Echo: before");
    post(&format!("{}/__test/revoke-refresh-tokens", provider.url)).await;
    let failed =
        until(Duration::from_secs(10), || async { stats(&provider).await["refresh_failures"].as_u64() >= Some(1) })
            .await;
    assert!(failed, "the refresh was not tried; stderr:\n{}", bridge.stderr());
    // The old access token expires; the next call signs in again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(bridge.call_text("echo", json!({"message":"after"})).await, "Echo: after");
    assert_eq!(opened(&count), 2, "one login, then one re-login");
    assert!(bridge.close().await.contains("signing in again"));
}

/// A sign-in response with a forged `state` (another page hitting the loopback listener) is
/// refused with 400, and the user's own sign-in still completes.
#[tokio::test]
async fn a_forged_state_is_refused_and_the_real_sign_in_completes() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-state");
    let forge = repo().join("tests/fixtures/forge-callback.mjs");
    let cmd = format!("{} {} \"$1\" && {}", node().display(), forge.display(), browser(&count, true));
    let (ok, _, err) = mcpgate(&["login", &server.url, "-v"], &store, &cmd).await;
    assert!(ok, "login: {err}");
    assert!(err.contains("forged callback refused with 400"), "{err}");
    assert!(err.contains("state does not match"), "{err}");
}

/// RFC 9207: an authorization response whose `iss` names another issuer is refused: no token.
#[tokio::test]
async fn an_iss_mismatch_is_refused() {
    let provider = idp(&["--fault", "bad-iss"], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-iss");
    let (ok, _, err) = mcpgate(&["login", &server.url], &store, &browser(&count, true)).await;
    assert!(!ok && err.contains("names the issuer"), "{err}");
    assert_eq!(opened(&count), 1);
    assert!(!store.join("tokens").exists() || walk(&store.join("tokens")).len() == 1, "no token stored");
}

/// An authorization server that does not offer PKCE S256, or whose metadata names another issuer:
/// refused before any browser opens.
#[tokio::test]
async fn an_authorization_server_without_s256_or_with_a_mismatched_issuer_is_refused() {
    for (fault, says) in [("no-s256", "S256"), ("issuer-mismatch", "claims the issuer")] {
        let provider = idp(&["--fault", fault], 3600).await;
        let server = protected(&provider.url, &[]).await;
        let (store, count) = store(&format!("login-{fault}"));
        let (ok, _, err) = mcpgate(&["login", &server.url], &store, &browser(&count, true)).await;
        assert!(!ok && err.contains(says), "{fault}: {err}");
        assert_eq!(opened(&count), 0, "{fault}: no browser");
    }
}

/// Two servers on one provider: each sees only tokens whose audience is itself, even though one
/// store holds both credentials and the first server's token exists when the second is reached.
#[tokio::test]
async fn the_upstream_never_sees_a_token_meant_for_another_resource() {
    let provider = idp(&[], 3600).await;
    let a = protected(&provider.url, &[]).await;
    let b = protected(&provider.url, &[]).await;
    let (store, count) = store("login-resource");
    let (ok, _, err) = mcpgate(&["login", &a.url], &store, &browser(&count, true)).await;
    assert!(ok, "{err}");
    for server in [&a, &b, &a] {
        let mut bridge = Bridge::start(&server.url, &[], &store, &browser(&count, true)).await;
        bridge.initialize().await;
        assert_eq!(bridge.call_text("echo", json!({"message":"x"})).await, "Echo: x");
        bridge.close().await;
    }
    assert_eq!(opened(&count), 2, "b needs its own sign-in; a's is reused");
    for (server, name) in [(&a, "a"), (&b, "b")] {
        let tokens = seen(server).await;
        assert!(!tokens.is_empty(), "{name} saw no token");
        for t in tokens {
            assert_eq!(t["aud"], server.url, "{name} was shown a token for {}", t["aud"]);
        }
    }
}

/// Two bridges started at the same moment, as two client windows do: one login between them
/// (the second waits for the first's and uses it), then one refresh between them.
#[tokio::test]
async fn two_bridges_at_once_share_one_login_and_one_refresh() {
    let provider = idp(&[], 8).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-two");
    let mut one = Bridge::start(&server.url, &["-v"], &store, &browser(&count, true)).await;
    let mut two = Bridge::start(&server.url, &["-v"], &store, &browser(&count, true)).await;
    let (r1, r2) = tokio::join!(one.initialize(), two.initialize());
    assert!(r1["result"].is_object() && r2["result"].is_object(), "{r1} {r2}");
    assert_eq!(opened(&count), 1, "one browser sign-in");
    assert_eq!(stats(&provider).await["authorizations"], 1);
    let refreshed = until(Duration::from_secs(12), || async {
        stats(&provider).await["token_requests_by_grant"]["refresh_token"].as_u64() >= Some(1)
    })
    .await;
    assert!(refreshed, "no refresh:\n{}\n{}", one.stderr(), two.stderr());
    // Both bridges' timers have fired by now; the second found the first's token.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let st = stats(&provider).await;
    assert_eq!(st["token_requests_by_grant"]["refresh_token"], 1, "one refresh between them: {st}");
    assert_eq!(st["refresh_failures"], 0, "{st}");
    assert_eq!(one.call_text("echo", json!({"message":"1"})).await, "Echo: 1");
    assert_eq!(two.call_text("echo", json!({"message":"2"})).await, "Echo: 2");
    one.close().await;
    two.close().await;
}

/// The provider unreachable when a refresh is due: the request fails with an error (it does not
/// hang), and the stored credential is kept, not dropped (a transient failure).
#[tokio::test]
async fn a_transient_refresh_failure_keeps_the_stored_credential() {
    let mut provider = idp(&[], 3).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-transient");
    let (ok, _, err) = mcpgate(&["login", &server.url], &store, &browser(&count, true)).await;
    assert!(ok, "{err}");
    provider.kill().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut bridge = Bridge::start(&server.url, &[], &store, &browser(&count, false)).await;
    let r = bridge
        .request_within(
            "initialize",
            json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(r["error"]["code"], -32004, "a credential error: {r}");
    bridge.close().await;
    let (ok, out, _) = mcpgate(&["status", "--json"], &store, "false").await;
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["credentials"][0]["refresh_token"], true, "kept: {status}");
    assert_eq!(opened(&count), 1);
}

/// Fifty concurrent calls meet an expired token — the bridge was suspended past its expiry, as a
/// laptop sleeps — and share one refresh with the timer that fires on waking.
#[tokio::test]
async fn fifty_concurrent_calls_with_an_expired_token_share_one_refresh() {
    let provider = idp(&[], 4).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-fifty");
    let (ok, _, err) = mcpgate(&["login", &server.url], &store, &browser(&count, true)).await;
    assert!(ok, "{err}");
    let mut child = tokio::process::Command::new(mcpgate_bin())
        .args(["stdio", &server.url])
        .env("MCPGATE_STORE_DIR", &store)
        .env("MCPGATE_BROWSER", browser(&count, false))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap() as i32;
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    use tokio::io::AsyncWriteExt;
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    stdin.write_all(format!("{init}\n").as_bytes()).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(first.contains("\"result\""), "{first}");
    stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n").await.unwrap();
    // Suspended past the token's expiry; fifty calls wait in the pipe meanwhile.
    // SAFETY: signals to our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let burst: String =
        (1..=50).map(|i| format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"tools/list\"}}\n")).collect();
    stdin.write_all(burst.as_bytes()).await.unwrap();
    let before = stats(&provider).await["token_requests_by_grant"]["refresh_token"].as_u64().unwrap_or(0);
    unsafe { libc::kill(pid, libc::SIGCONT) };
    for _ in 0..50 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v["result"]["tools"].is_array(), "{line}");
    }
    let after = stats(&provider).await["token_requests_by_grant"]["refresh_token"].as_u64().unwrap_or(0);
    assert_eq!(after - before, 1, "fifty calls and the timer shared one refresh");
    // The calls waited for the refresh. (The event stream the bridge opened just before it was
    // suspended may have gone out with the old token after waking: its 401 is answered by the
    // same refresh, never a second one.)
    let refused: Vec<_> =
        seen(&server).await.into_iter().filter(|t| t["accepted"] != true && t["method"] == "POST").collect();
    assert!(refused.is_empty(), "no call carried the expired token: {refused:?}");
    assert_eq!(opened(&count), 1);
}

/// Nothing secret in what mcpgate prints: `login`, the bridge at the most verbose level (through a
/// sign-in and a refresh), `status` and `status --json` hold no access or refresh token, no
/// authorization code, no PKCE verifier and no client secret; nor do the store's files in clear.
#[tokio::test]
async fn status_and_debug_logs_hold_no_token_code_verifier_or_secret() {
    let provider = idp(&[], 4).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-secrets");
    let client = ["--client-id", "mcpgate-confidential", "--client-secret-file"];
    let secret_file = store.parent().unwrap().join("client-secret");
    std::fs::write(&secret_file, "test-secret\n").unwrap();
    let secret_path = secret_file.display().to_string();
    let mut args = vec!["login", server.url.as_str(), "-vv"];
    args.extend(client);
    args.push(&secret_path);
    let (ok, out_login, err_login) = mcpgate(&args, &store, &browser(&count, true)).await;
    assert!(ok, "{err_login}");
    let mut bridge_args = vec!["-vv"];
    bridge_args.extend(client);
    bridge_args.push(&secret_path);
    let mut bridge = Bridge::start(&server.url, &bridge_args, &store, &browser(&count, false)).await;
    bridge.initialize().await;
    assert_eq!(bridge.call_text("echo", json!({"message":"1"})).await, "Echo: 1");
    let refreshed = until(Duration::from_secs(10), || async {
        stats(&provider).await["token_requests_by_grant"]["refresh_token"].as_u64() >= Some(1)
    })
    .await;
    assert!(refreshed);
    assert_eq!(bridge.call_text("echo", json!({"message":"2"})).await, "Echo: 2");
    let err_bridge = bridge.close().await;
    let (_, status_text, status_err) = mcpgate(&["status", "-vv"], &store, "false").await;
    let (_, status_json, _) = mcpgate(&["status", "--json"], &store, "false").await;

    let issued = get_json(&format!("{}/__test/secrets", provider.url)).await;
    let mut secrets: Vec<String> = vec!["test-secret".into()];
    for kind in ["codes", "verifiers", "access_tokens", "refresh_tokens"] {
        let values: Vec<String> =
            issued[kind].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        assert!(!values.is_empty(), "the provider issued no {kind}: {issued}");
        secrets.extend(values);
    }
    // The store's own view of what it holds, decrypted: the same tokens.
    for record in mcpgate::store::Store::new(store.clone()).list(mcpgate::store::Kind::Token).unwrap() {
        let sealed = record.secret.expect("the record opens");
        secrets.push(sealed["access_token"].as_str().unwrap().to_owned());
        secrets.push(sealed["refresh_token"].as_str().unwrap().to_owned());
    }
    assert!(err_bridge.contains("DEBUG") || err_bridge.contains("TRACE"), "verbose logs: {err_bridge}");
    let mut files = String::new();
    for f in walk(&store).into_iter().filter(|p| p.is_file()) {
        files.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
    }
    for (name, text) in [
        ("login stdout", &out_login),
        ("login stderr", &err_login),
        ("bridge stderr", &err_bridge),
        ("status", &status_text),
        ("status stderr", &status_err),
        ("status --json", &status_json),
        ("store files", &files),
    ] {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{name} contains a secret ({}…)", &secret[..secret.len().min(6)]);
        }
    }
}

/// `connect --oauth` signs in the same way, for an HTTP client that sends no credential: the
/// client's requests reach the protected server with mcpgate's token.
#[tokio::test]
async fn connect_with_oauth_signs_in_for_its_http_client() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-connect");
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["connect", &server.url, "--listen", "127.0.0.1:0", "--oauth"])
        .env("MCPGATE_STORE_DIR", &store)
        .env("MCPGATE_BROWSER", browser(&count, true));
    let gw = Proc::start("mcpgate connect --oauth", cmd).await;
    let sid = open_session(&gw.url, &[]).await;
    let r = call(
        &gw.url,
        &sid,
        &[],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
    )
    .await;
    let who: serde_json::Value =
        serde_json::from_str(r.message()["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(who["aud"], server.url, "{}", gw.output());
    assert_eq!(opened(&count), 1);
}

/// A user who never completes the sign-in gets a clear message at the time limit; logout forgets the
/// tokens, and the next sign-in reuses the client registration instead of registering again.
#[tokio::test]
async fn login_times_out_clearly_logout_forgets_and_the_registration_is_reused() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-timeout");
    let (ok, _, err) = mcpgate(&["login", &server.url, "--login-timeout", "1s"], &store, &browser(&count, false)).await;
    assert!(!ok && err.contains("no sign-in arrived within 1s") && err.contains("mcpgate login"), "{err}");
    assert!(err.contains("open this URL in a browser"), "the URL is printed for headless machines: {err}");

    let (ok, _, err) = mcpgate(&["login", &server.url], &store, &browser(&count, true)).await;
    assert!(ok, "{err}");
    let (ok, _, err) = mcpgate(&["logout", &server.url], &store, "false").await;
    assert!(ok && err.contains("removed the credential"), "{err}");
    let (_, out, _) = mcpgate(&["status", "--json"], &store, "false").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["credentials"], json!([]));
    let (ok, _, err) = mcpgate(&["login", &server.url], &store, &browser(&count, true)).await;
    assert!(ok, "{err}");
    let st = stats(&provider).await;
    assert_eq!((st["registrations"].as_u64(), st["authorizations"].as_u64()), (Some(1), Some(2)), "{st}");
}

/// The authful-mcp-proxy shape: a configured OpenID issuer and a confidential client from the
/// environment (`OIDC_ISSUER_URL`, `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET`); no discovery from the
/// server, the sign-in happens before the first request. And client credentials for machines.
#[tokio::test]
async fn plain_oidc_from_the_environment_and_client_credentials() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("login-oidc-env");
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["stdio", "--no-banner"])
        .env("MCP_BACKEND_URL", &server.url)
        .env("OIDC_ISSUER_URL", &provider.url)
        .env("OIDC_CLIENT_ID", "mcpgate-confidential")
        .env("OIDC_CLIENT_SECRET", "test-secret")
        .env("OIDC_SCOPES", "openid,mcp:tools")
        .env("MCPGATE_STORE_DIR", &store)
        .env("MCPGATE_BROWSER", browser(&count, true));
    let who = whoami_over_stdio(cmd).await;
    assert_eq!(
        (who["aud"].as_str(), who["client_id"].as_str()),
        (Some(server.url.as_str()), Some("mcpgate-confidential")),
        "{who}"
    );
    assert!(who["scope"].as_str().unwrap().contains("mcp:tools"), "{who}");
    assert_eq!(opened(&count), 1);
    let reqs = get_json(&format!("{}/__test/requests", provider.url)).await;
    assert_eq!(reqs["token"][0]["client_auth"], "client_secret_basic", "{reqs}");
    assert_eq!(stats(&provider).await["registrations"], 0, "a configured client is not registered");

    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["stdio", &server.url, "--grant", "client-credentials", "--client-id", "mcpgate-m2m"])
        .env("OIDC_CLIENT_SECRET", "m2m-secret")
        .env("MCPGATE_STORE_DIR", &store)
        .env("MCPGATE_BROWSER", browser(&count, false));
    let who = whoami_over_stdio(cmd).await;
    assert_eq!(
        (who["aud"].as_str(), who["client_id"].as_str()),
        (Some(server.url.as_str()), Some("mcpgate-m2m")),
        "{who}"
    );
    assert_eq!(opened(&count), 1, "no browser for machines");
}

/// initialize, then the `whoami` tool, over a raw stdio session with `cmd`.
async fn whoami_over_stdio(mut cmd: tokio::process::Command) -> serde_json::Value {
    use tokio::io::AsyncWriteExt;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    stdin.write_all(format!("{init}\n").as_bytes()).await.unwrap();
    let first =
        tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap().unwrap_or_default();
    assert!(first.contains("\"result\""), "{first}");
    stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"whoami\",\"arguments\":{}}}\n").await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    serde_json::from_str(v["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{line}"))).unwrap()
}
