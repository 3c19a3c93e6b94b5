//! Users' own sign-ins to an upstream server (`"auth": {"oauth": {"perUser": true}}`), all real
//! parts: the gateway in `oauth` mode in front of tests/fixtures/oidc-provider.mjs, which is also
//! the authorization server of tests/fixtures/protected-server.mjs; headless Chromium as each
//! user; the official SDK's client, which opens the URL of a URL-elicitation-required error
//! (-32042) and tries again. Each user reaches the server with their own token, on every route
//! (merged and per-server endpoints, 2025 and 2026-07-28 clients); a user whose client cannot open
//! URLs is told where to sign in; a link opened by another user signs nobody in; a token the
//! server refuses sends its user to sign in again; tokens are refreshed.

use std::time::Duration;

use serde_json::{Value, json};

use super::auth_oauth::{authorizing_as, sign_in};
use super::*;
use crate::idp::{idp, post, protected, seen, stats};

const META_2026: &str = "io.modelcontextprotocol/protocolVersion";

/// A 2026-07-28 request of `method` to `url` with `token`, declaring `capabilities`.
async fn modern(url: &str, token: &str, method: &str, name: Option<&str>, params: Value, capabilities: Value) -> Value {
    let auth = format!("Bearer {token}");
    let mut h = MCP_HEADERS.to_vec();
    h.extend([("mcp-protocol-version", "2026-07-28"), ("authorization", auth.as_str()), ("mcp-method", method)]);
    if let Some(n) = name {
        h.push(("mcp-name", n));
    }
    let mut params = params;
    params["_meta"] = json!({META_2026: "2026-07-28", "io.modelcontextprotocol/clientCapabilities": capabilities});
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    request("POST", url, &h, &body.to_string()).await.message()
}

/// A 2026-07-28 `tools/call` of `tool` with `args` (`{}` for `whoami`).
async fn call_tool(url: &str, token: &str, tool: &str, args: Value, capabilities: Value) -> Value {
    modern(url, token, "tools/call", Some(tool), json!({"name": tool, "arguments": args}), capabilities).await
}

/// Who the server saw call `whoami` (its answer's JSON).
fn who(answer: &Value) -> Value {
    let text = answer["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no result: {answer}"));
    serde_json::from_str(text).unwrap()
}

/// Opens `url` in the browser profile `profile` as `user`: whether it got through, and what it said.
async fn open_link(url: &str, user: &str, profile: &FsPath) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/browser-login.mjs"))
        .arg(url)
        .env("LOGIN_USER", user)
        .env("BROWSER_PROFILE", profile)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(40), cmd.output()).await.unwrap().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The sign-in link in an error's text.
fn link_in(text: &str) -> String {
    let start = text.find("http://").unwrap_or_else(|| panic!("no link in {text:?}"));
    text[start..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn each_user_signs_in_to_an_upstream_server_through_the_gateway() {
    // Upstream access tokens live 8 s: long enough to use, short enough to see one refreshed.
    let provider = idp(&[], 8).await;
    let server = protected(&provider.url, &[]).await;
    let dir = tempdir("serve-upstream-sign-in");
    let remote = json!({"url": server.url, "auth": {"oauth": {"perUser": true}}});
    let (gw, public) = authorizing_as(&dir, &provider.url, Some(remote), free_port(), false, &[]).await;
    ready(&gw).await;
    let mcp = format!("{public}/mcp");
    let alice_browser = dir.join("alice-browser");
    let alice_env = [("URL_ELICITATION", "1"), ("BROWSER_PROFILE", alice_browser.to_str().unwrap())];

    // Alice's client can open URLs: its first listing is answered -32042 with the gateway's sign-in
    // link for the server; she signs in (the same browser that signed her in to the gateway), and
    // the listing tried again shows the server's tools; her call reaches it with her own token.
    let alice = sign_in(&mcp, "alice@example.com", &["remote__whoami={}"], &alice_env).await;
    let links = alice["elicitations"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{alice:#}");
    assert_eq!(links[0]["mode"], json!("url"));
    let link = links[0]["url"].as_str().unwrap();
    assert!(link.starts_with(&format!("{public}/upstream/remote/sign-in?ticket=")), "{link}");
    assert!(!link.contains("alice"), "the link names no user: {link}");
    assert_eq!(alice["completed"], json!([links[0]["id"]]), "her client was told the sign-in is done: {alice:#}");
    assert_eq!(alice["tools"], json!(["local__echo", "remote__whoami"]), "{alice:#}");
    let text = alice["calls"]["remote__whoami"]["text"].as_str().unwrap_or_else(|| panic!("{alice:#}"));
    let seen_as: Value = serde_json::from_str(text).unwrap();
    assert_eq!(seen_as["sub"], json!("alice@example.com"), "{seen_as}");
    assert_eq!(seen_as["aud"], json!(server.url), "a token for that server: {seen_as}");
    let upstream_client = seen_as["client_id"].as_str().unwrap().to_owned();
    assert_ne!(upstream_client, alice["client_id"].as_str().unwrap(), "the gateway's client, not the MCP client's");
    assert_ne!(upstream_client, "mcpgate-confidential", "registered for the upstream, apart from the gateway's own");
    let alice_token = alice["tokens"]["access_token"].as_str().unwrap().to_owned();

    // Her kept token serves her next sessions and the other era alike, on both endpoints.
    for (url, tool) in [(mcp.clone(), "remote__whoami"), (format!("{public}/servers/remote/mcp"), "whoami")] {
        let r = call_tool(&url, &alice_token, tool, json!({}), json!({})).await;
        assert_eq!(who(&r)["sub"], json!("alice@example.com"), "{url}: {r}");
        let auth = format!("Bearer {alice_token}");
        let sid = open_session(&url, &[("authorization", auth.as_str())]).await;
        let body =
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": {}}});
        let r = call(&url, &sid, &[("authorization", auth.as_str())], &body.to_string()).await.message();
        assert_eq!(who(&r)["sub"], json!("alice@example.com"), "{url}: {r}");
    }

    // Bob's client declares no URL elicitation: the merged listing leaves the server out, and a
    // call is told where to sign in (in the message, for him to open).
    let bob = sign_in(&mcp, "bob@example.com", &[r#"remote__echo={"message":"b"}"#], &[]).await;
    assert_eq!(bob["tools"], json!(["local__get-sum"]), "{bob:#}");
    let refused = &bob["calls"]["remote__echo"];
    assert_eq!(refused["ok"], json!(false), "{bob:#}");
    let bob_link = link_in(refused["error"].as_str().unwrap());
    assert!(bob_link.starts_with(&format!("{public}/upstream/remote/sign-in?ticket=")), "{bob:#}");
    let bob_token = bob["tokens"]["access_token"].as_str().unwrap().to_owned();

    // His link, opened in Alice's browser, signs nobody in: it was given to another user.
    let (ok, said) = open_link(&bob_link, "alice@example.com", &alice_browser).await;
    assert!(!ok && said.contains("given to another user"), "{said}");
    let r = call_tool(&mcp, &bob_token, "remote__echo", json!({"message": "b"}), json!({})).await;
    assert!(
        r["error"]["message"].as_str().is_some_and(|m| m.contains("/upstream/remote/sign-in")),
        "still not signed in: {r}"
    );

    // A 2026-07-28 client of his that can open URLs gets the elicitation, on both endpoints, for a
    // call; a listing of the server alone waits for the sign-in too, while the merged one, once
    // its client was sent to sign in, lists the other servers' tools meanwhile.
    let url_caps = json!({"elicitation": {"url": {}}});
    for (url, tool) in [(mcp.clone(), "remote__echo"), (format!("{public}/servers/remote/mcp"), "echo")] {
        let r = call_tool(&url, &bob_token, tool, json!({"message": "b"}), url_caps.clone()).await;
        assert_eq!(r["error"]["code"], json!(-32042), "{url}: {r}");
        assert_eq!(r["error"]["data"]["elicitations"][0]["mode"], json!("url"), "{r}");
    }
    let r =
        modern(&format!("{public}/servers/remote/mcp"), &bob_token, "tools/list", None, json!({}), url_caps.clone())
            .await;
    assert_eq!(r["error"]["code"], json!(-32042), "the server alone: {r}");
    let r = modern(&mcp, &bob_token, "tools/list", None, json!({}), url_caps.clone()).await;
    assert_eq!(r["result"]["tools"].as_array().map(Vec::len), Some(1), "merged, sent to sign in lately: {r}");
    let altered = format!("{}x", &bob_link[..bob_link.len() - 1]);
    let r = request("GET", &altered, &[], "").await;
    assert_eq!(r.status, 400, "{}", r.body);

    // In his own browser, his link signs him in; his calls then carry his own token.
    let (ok, said) = open_link(&bob_link, "bob@example.com", &dir.join("bob-browser")).await;
    assert!(ok && said.contains("Signed in to remote"), "{said}");
    let r = call_tool(&mcp, &bob_token, "remote__echo", json!({"message": "b"}), json!({})).await;
    assert_eq!(r["result"]["content"][0]["text"], json!("Echo: b"), "{r}");

    // Tokens are refreshed as they near expiry (rotating refresh tokens, one at a time).
    let before = stats(&provider).await["refresh_rotations"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let r = call_tool(&mcp, &alice_token, "remote__whoami", json!({}), json!({})).await;
    assert_eq!(who(&r)["sub"], json!("alice@example.com"), "{r}");
    let after = stats(&provider).await["refresh_rotations"].as_u64().unwrap();
    assert_eq!(after, before + 1, "one refresh for her expired token");

    // The server refuses her token (revoked at it): the gateway renews it and sends the call
    // again — she notices nothing.
    let revoke =
        |all: &str| format!("{}/__test/revoke?sub=alice%40example.com{all}", server.url.trim_end_matches("/mcp"));
    post(&revoke("")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = call_tool(&mcp, &alice_token, "remote__whoami", json!({}), url_caps.clone()).await;
    assert_eq!(who(&r)["sub"], json!("alice@example.com"), "renewed unseen: {r}");
    assert_eq!(
        stats(&provider).await["refresh_rotations"].as_u64().unwrap(),
        after + 1,
        "one refresh for the refused token"
    );
    // It refuses every token of hers: her sign-in is dropped and she is sent to sign in again.
    post(&revoke("&all=1")).await;
    let r = call_tool(&mcp, &alice_token, "remote__whoami", json!({}), url_caps.clone()).await;
    assert_eq!(r["error"]["code"], json!(-32042), "{r}");
    post(&revoke("&all=0")).await;
    let relink = r["error"]["data"]["elicitations"][0]["url"].as_str().unwrap().to_owned();
    let (ok, said) = open_link(&relink, "alice@example.com", &alice_browser).await;
    assert!(ok, "{said}");
    let r = call_tool(&mcp, &alice_token, "remote__whoami", json!({}), json!({})).await;
    assert_eq!(who(&r)["sub"], json!("alice@example.com"), "{r}");

    // Never a token of the gateway's own reached the server; none was logged.
    for t in seen(&server).await {
        assert_ne!(t["aud"].as_str(), Some(public.as_str()), "a gateway token reached the server: {t}");
        assert!(matches!(t["sub"].as_str(), Some("alice@example.com" | "bob@example.com")), "{t}");
    }
    let log = gw.output();
    for secret in [&alice_token, &bob_token] {
        assert!(!log.contains(secret.as_str()), "a token was logged");
    }
    assert!(!log.contains("ticket="), "a sign-in link was logged: {log}");
}
