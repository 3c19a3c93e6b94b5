//! `mcpgate.auth` `"mode": "jwt"`: the gateway as a protected resource (RFC 9728, RFC 6750).
//! Every request to an MCP endpoint — merged or one server's, stdio or remote behind it, legacy
//! or 2026-07-28 client, POST, GET or DELETE — carries a valid bearer JWT from the configured
//! issuer or is refused with the challenge; a bad token never reaches a server and never makes
//! the gateway fetch keys it need not; the keys are fetched once for many, and kept when the
//! issuer is down. The issuer is tests/fixtures/jwt-issuer.mjs (it forges what a real provider
//! will not sign); the remote server is the OpenID provider's protected server, reached with the
//! gateway's own client credentials, so what it was shown can be read back.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::issuer::{issuer_stats, jwt_issuer, mint, public_pem, rotate, set_down, set_jwks_delay};

/// A gateway in `jwt` mode on a port chosen first (its public URL names it), with a stdio server
/// and, when given, a remote one; `auth` is merged over the mode's settings.
pub(super) async fn guarded(dir: &FsPath, issuer: &str, remote: Option<&str>, auth: Value) -> (Proc, String) {
    guarded_with(dir, issuer, remote, auth, json!({})).await
}

/// `guarded`, with more of `mcpgate` (`audit`, say).
pub(super) async fn guarded_with(
    dir: &FsPath,
    issuer: &str,
    remote: Option<&str>,
    auth: Value,
    more: Value,
) -> (Proc, String) {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut settings = json!({"mode": "jwt", "issuer": issuer, "publicUrl": public});
    for (k, v) in auth.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let mut servers = json!({"local": stdio_everything(dir)});
    if let Some(url) = remote {
        let m2m =
            json!({"oauth": {"clientId": "mcpgate-m2m", "clientSecret": "m2m-secret", "grant": "client-credentials"}});
        servers["remote"] = json!({"url": url, "auth": m2m});
    }
    let config = dir.join("mcpgate.json");
    let mut gateway = json!({"threads": 2, "auth": settings});
    for (k, v) in more.as_object().unwrap() {
        gateway[k] = v.clone();
    }
    let cfg = json!({"mcpgate": gateway, "mcpServers": servers});
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", &format!("127.0.0.1:{port}"), "-v"]);
    (Proc::start("mcpgate serve", cmd).await, public)
}

pub(super) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub(super) async fn initialize(url: &str, token: Option<&str>) -> Reply {
    let auth = token.map(bearer);
    let mut h = MCP_HEADERS.to_vec();
    if let Some(a) = &auth {
        h.push(("authorization", a));
    }
    request("POST", url, &h, INITIALIZE).await
}

/// A refusal as RFC 6750 has it: the status, a challenge naming the metadata of this endpoint,
/// `error` when a token was given, and a JSON-RPC error body.
fn assert_challenged(r: &Reply, public: &str, path: &str, error: Option<&str>, what: &str) {
    let status = if error == Some("insufficient_scope") { 403 } else { 401 };
    assert_eq!(r.status, status, "{what}: {}", r.body);
    let challenge = r.header("www-authenticate").unwrap_or_else(|| panic!("{what}: no challenge"));
    let metadata = format!("resource_metadata=\"{public}/.well-known/oauth-protected-resource{path}\"");
    assert!(challenge.starts_with("Bearer ") && challenge.contains(&metadata), "{what}: {challenge}");
    match error {
        Some(e) => assert!(challenge.contains(&format!("error=\"{e}\"")), "{what}: {challenge}"),
        None => assert!(!challenge.contains("error="), "{what}: {challenge}"),
    }
    assert!(r.json()["error"]["message"].is_string(), "{what}: {}", r.body);
}

/// Every MCP route, every era, every method: no token → 401 with the challenge; forged,
/// expired, foreign or misaddressed tokens → 401 `invalid_token`, without reaching a server and
/// (issuer and expiry being read first) without a key fetch; a valid token → served, and the
/// remote server is shown the gateway's own credential, never the caller's token. A session is
/// its opener's: another user's token with its id is a 404.
#[tokio::test]
async fn every_route_takes_only_valid_tokens_from_the_issuer() {
    use crate::idp::{idp, protected, seen};
    let issuer = jwt_issuer().await;
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let dir = tempdir("serve-jwt");
    let (gw, public) = guarded(&dir, &issuer.url, Some(&server.url), json!({})).await;
    ready(&gw).await;
    let paths = ["/mcp", "/servers/local/mcp", "/servers/remote/mcp"];

    // The metadata, at the well-known path and its path-suffixed forms.
    for suffix in ["", "/mcp", "/servers/remote/mcp"] {
        let r = request("GET", &format!("{public}/.well-known/oauth-protected-resource{suffix}"), &[], "").await;
        assert_eq!(r.status, 200, "{suffix}: {}", r.body);
        let doc = r.json();
        assert_eq!(doc["resource"], public.as_str(), "{doc}");
        assert_eq!(doc["authorization_servers"], json!([issuer.url]), "{doc}");
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]), "{doc}");
    }
    // A browser client on a loopback origin can read it, after a preflight for the header it adds.
    let metadata = format!("{public}/.well-known/oauth-protected-resource/mcp");
    let origin = ("origin", "http://localhost:6274");
    let pre =
        [origin, ("access-control-request-method", "GET"), ("access-control-request-headers", "mcp-protocol-version")];
    let r = request("OPTIONS", &metadata, &pre, "").await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(
        r.header("access-control-allow-headers")
            .is_some_and(|h| h.to_ascii_lowercase().contains("mcp-protocol-version"))
    );
    let r = request("GET", &metadata, &[origin], "").await;
    assert_eq!((r.status, r.header("access-control-allow-origin")), (200, Some("http://localhost:6274")));
    let r = request("GET", &metadata, &[("origin", "https://evil.example")], "").await;
    assert_eq!(r.status, 403, "a foreign origin is refused by the guard: {}", r.body);

    // Tokens that must not pass, read before any key is: no fetch for them.
    let audience = json!({"aud": public});
    let forged: Vec<(&str, Value)> = vec![
        ("another issuer", json!({"claims": {"aud": public, "iss": "http://127.0.0.1:1"}})),
        ("expired", json!({"claims": {"aud": public, "exp": 1_000_000_000}})),
        ("alg none", json!({"alg": "none", "claims": audience})),
        ("HS256 keyed with the public key", json!({"alg": "HS256-public", "claims": audience})),
    ];
    let mut refused = Vec::new();
    for (what, spec) in &forged {
        refused.push((*what, mint(&issuer, spec.clone()).await));
    }
    refused.push(("garbage", "not-a-jwt".to_owned()));
    refused.push(("oversized", format!("{}.{}.{}", "e".repeat(3000), "e".repeat(3000), "e".repeat(3000))));
    for path in paths {
        let url = format!("{public}{path}");
        assert_challenged(&initialize(&url, None).await, &public, path, None, "no token");
        for (what, token) in &refused {
            assert_challenged(&initialize(&url, Some(token)).await, &public, path, Some("invalid_token"), what);
        }
    }
    assert_eq!(issuer_stats(&issuer).await["jwks_fetches"], 0, "no key was fetched for tokens refused unread");

    // Tokens that need the keys to be refused.
    let checked: Vec<(&str, Value)> = vec![
        ("wrong audience", json!({"claims": {"aud": "https://elsewhere.example"}})),
        ("no audience", json!({})),
        ("not yet valid", json!({"claims": {"aud": public, "nbf": 4_000_000_000u64}})),
        ("bad signature", json!({"alg": "bad-signature", "claims": audience})),
        ("signed by an unpublished key", json!({"alg": "foreign", "claims": audience})),
        ("no subject", json!({"claims": {"aud": public, "sub": null}})),
    ];
    for (what, spec) in &checked {
        let token = mint(&issuer, spec.clone()).await;
        for path in paths {
            let r = initialize(&format!("{public}{path}"), Some(&token)).await;
            assert_challenged(&r, &public, path, Some("invalid_token"), what);
        }
    }

    // Valid tokens, of each algorithm, on every route; the server sees the gateway's credential.
    let alice = mint(&issuer, json!({"claims": {"aud": public}})).await;
    let alice_es = mint(&issuer, json!({"alg": "ES256", "claims": {"aud": public}})).await;
    let alice_ed = mint(&issuer, json!({"alg": "EdDSA", "claims": {"aud": public}})).await;
    let bob = mint(&issuer, json!({"claims": {"aud": [public, "other"], "sub": "bob"}})).await;
    let calls = [
        ("/mcp", "local__echo", json!({"message": "hi"})),
        ("/mcp", "remote__whoami", json!({})),
        ("/servers/local/mcp", "echo", json!({"message": "hi"})),
        ("/servers/remote/mcp", "whoami", json!({})),
    ];
    for (path, tool, args) in &calls {
        let url = format!("{public}{path}");
        for token in [&alice, &alice_es, &alice_ed] {
            let auth = bearer(token);
            let sid = open_session(&url, &[("authorization", &auth)]).await;
            let body =
                json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": args}});
            let r = call(&url, &sid, &[("authorization", &auth)], &body.to_string()).await;
            assert_eq!(r.status, 200, "{path} {tool}: {}", r.body);
            assert!(r.message()["result"]["content"].is_array(), "{path} {tool}: {}", r.body);
            // The same session without a token, or with another user's: refused, and unknown.
            let r = call(&url, &sid, &[], &body.to_string()).await;
            assert_challenged(&r, &public, path, None, "a session's request without a token");
            let r = call(&url, &sid, &[("authorization", &bearer(&bob))], &body.to_string()).await;
            assert_eq!(r.status, 404, "another user's token with alice's session: {}", r.body);
            // GET and DELETE are guarded alike.
            let h = [("mcp-session-id", sid.as_str()), ("accept", "text/event-stream")];
            assert_challenged(&request("GET", &url, &h, "").await, &public, path, None, "GET");
            assert_challenged(&request("DELETE", &url, &h, "").await, &public, path, None, "DELETE");
            let r = request("DELETE", &url, &[("mcp-session-id", &sid), ("authorization", &bearer(&bob))], "").await;
            assert_eq!(r.status, 404, "bob cannot end alice's session: {}", r.body);
            let r = request("DELETE", &url, &[("mcp-session-id", &sid), ("authorization", &auth)], "").await;
            assert_eq!(r.status, 200, "alice ends her own: {}", r.body);
        }
    }
    // A token in the query is not a token.
    let r = request("POST", &format!("{public}/mcp?access_token={alice}"), MCP_HEADERS, INITIALIZE).await;
    assert_challenged(&r, &public, "/mcp", None, "?access_token=");
    // A 2026-07-28 client, stateless: refused alike, served with a token.
    let discover = r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    for path in paths {
        let url = format!("{public}{path}");
        let mut h = MCP_HEADERS.to_vec();
        h.extend([("mcp-protocol-version", "2026-07-28"), ("mcp-method", "server/discover")]);
        assert_challenged(&request("POST", &url, &h, discover).await, &public, path, None, "modern, no token");
        let auth = bearer(&alice);
        h.push(("authorization", &auth));
        let r = request("POST", &url, &h, discover).await;
        assert_eq!(r.status, 200, "modern, {path}: {}", r.body);
    }

    // The remote server saw only the gateway's own token (client credentials at the provider),
    // never one of the issuer's.
    let shown = seen(&server).await;
    assert!(!shown.is_empty(), "the remote server was called");
    for t in &shown {
        assert_ne!(t["iss"].as_str(), Some(issuer.url.as_str()), "a caller's token reached the server: {t}");
    }
    // The keys were fetched once for all of it.
    assert_eq!(issuer_stats(&issuer).await["jwks_fetches"], 1, "{}", gw.output());
    // No token is ever logged.
    for token in [&alice, &bob] {
        assert!(!gw.output().contains(token.as_str()), "a token was logged:\n{}", gw.output());
    }
}

/// A rotation: the first token naming the new key makes one fetch, however many arrive at once
/// (100 here, while the fetch is slow); a key id nobody publishes cannot make a second one within
/// the minimum interval; with the issuer's key endpoint down, the last good keys still verify.
#[tokio::test]
async fn keys_are_fetched_once_for_many_and_kept_while_the_issuer_is_down() {
    let issuer = jwt_issuer().await;
    let dir = tempdir("serve-jwt-keys");
    let (gw, public) = guarded(&dir, &issuer.url, None, json!({})).await;
    ready(&gw).await;
    let url = format!("{public}/servers/local/mcp");
    let old = mint(&issuer, json!({"claims": {"aud": public}})).await;
    assert_eq!(initialize(&url, Some(&old)).await.status, 200);
    assert_eq!(issuer_stats(&issuer).await["jwks_fetches"], 1);

    rotate(&issuer, true).await;
    let new = mint(&issuer, json!({"claims": {"aud": public}})).await;
    // Past the minimum interval between fetches (5 s) since the first.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    set_jwks_delay(&issuer, 500).await;
    let all: Vec<_> = (0..100)
        .map(|_| {
            let (url, new) = (url.clone(), new.clone());
            tokio::spawn(async move { initialize(&url, Some(&new)).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for one in all {
        statuses.push(one.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}\n{}", gw.output());
    assert_eq!(issuer_stats(&issuer).await["jwks_fetches"], 2, "one fetch for 100 requests");
    set_jwks_delay(&issuer, 0).await;

    // A made-up key id right after: refused, no fetch (the interval), the old key still good.
    let made_up = mint(&issuer, json!({"kid": "made-up", "claims": {"aud": public}})).await;
    assert_challenged(
        &initialize(&url, Some(&made_up)).await,
        &public,
        "/servers/local/mcp",
        Some("invalid_token"),
        "made-up kid",
    );
    assert_eq!(issuer_stats(&issuer).await["jwks_fetches"], 2);
    assert_eq!(initialize(&url, Some(&old)).await.status, 200);

    // The key endpoint goes down; an unknown key id makes a fetch, which fails; the keys held
    // still verify.
    set_down(&issuer, true).await;
    tokio::time::sleep(Duration::from_millis(5200)).await;
    assert_eq!(initialize(&url, Some(&made_up)).await.status, 401);
    assert_eq!(issuer_stats(&issuer).await["jwks_fetches"], 3, "the fetch was tried");
    assert!(gw.output().contains("keeping the last ones"), "{}", gw.output());
    // A token not seen before (its signature checked, not taken from the tokens verified
    // lately), signed with a key held: verified with the last good keys.
    let fresh = mint(&issuer, json!({"claims": {"aud": public, "jti": "fresh"}})).await;
    assert_eq!(initialize(&url, Some(&fresh)).await.status, 200, "the last good keys");
}

/// A gateway that never got the issuer's keys cannot check a token: 503, saying so — not a 401
/// that would send a client to sign in again for nothing.
#[tokio::test]
async fn without_the_issuers_keys_a_token_cannot_be_checked() {
    let issuer = jwt_issuer().await;
    set_down(&issuer, true).await;
    let dir = tempdir("serve-jwt-down");
    let (gw, public) = guarded(&dir, &issuer.url, None, json!({})).await;
    ready(&gw).await;
    let token = mint(&issuer, json!({"claims": {"aud": public}})).await;
    let r = initialize(&format!("{public}/mcp"), Some(&token)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("signing keys"), "{}", r.body);
}

/// The air-gapped case: a static public key file, never a fetch; a configured audience (an
/// Auth0 API identifier) instead of the public URL; required scopes → 403 `insufficient_scope`
/// naming them.
#[tokio::test]
async fn a_static_key_a_configured_audience_and_required_scopes() {
    let issuer = jwt_issuer().await;
    let dir = tempdir("serve-jwt-static");
    let key = dir.join("issuer.pem");
    std::fs::write(&key, public_pem(&issuer, "RS256").await).unwrap();
    let auth = json!({"publicKeyFile": key, "audience": "https://api.example", "algorithms": ["RS256"], "scopes": ["mcp:tools"]});
    let (gw, public) = guarded(&dir, &issuer.url, None, auth).await;
    ready(&gw).await;
    let url = format!("{public}/mcp");
    let with = |claims: Value| mint(&issuer, json!({"claims": claims}));
    let good = with(json!({"aud": "https://api.example", "scope": "openid mcp:tools"})).await;
    assert_eq!(initialize(&url, Some(&good)).await.status, 200, "{}", gw.output());
    let scp = with(json!({"aud": "https://api.example", "scp": ["mcp:tools"]})).await;
    assert_eq!(initialize(&url, Some(&scp)).await.status, 200, "scp as a list (Entra ID, Okta)");
    let unscoped = with(json!({"aud": "https://api.example", "scope": "openid"})).await;
    let r = initialize(&url, Some(&unscoped)).await;
    assert_challenged(&r, &public, "/mcp", Some("insufficient_scope"), "no mcp:tools");
    assert!(r.header("www-authenticate").unwrap().contains("scope=\"mcp:tools\""), "{:?}", r.headers);
    let public_aud = with(json!({"aud": public, "scope": "mcp:tools"})).await;
    assert_challenged(&initialize(&url, Some(&public_aud)).await, &public, "/mcp", Some("invalid_token"), "aud");
    let es =
        mint(&issuer, json!({"alg": "ES256", "claims": {"aud": "https://api.example", "scope": "mcp:tools"}})).await;
    assert_challenged(&initialize(&url, Some(&es)).await, &public, "/mcp", Some("invalid_token"), "ES256 not allowed");
    let doc = request("GET", &format!("{public}/.well-known/oauth-protected-resource"), &[], "").await.json();
    assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]), "{doc}");
    assert_eq!(issuer_stats(&issuer).await["jwks_fetches"], 0, "a static key is never fetched");
}

/// A certified OpenID provider (npm `oidc-provider`) as the issuer: its signing keys found
/// through its metadata, its RS256 access tokens for the gateway's resource (RFC 8707, a
/// client-credentials grant) accepted; a token it issued for another resource refused.
#[tokio::test]
async fn tokens_of_a_real_openid_provider_are_taken_for_this_gateway_only() {
    let provider = crate::idp::idp(&[], 3600).await;
    let dir = tempdir("serve-jwt-oidc");
    let (gw, public) = guarded(&dir, &provider.url, None, json!({})).await;
    ready(&gw).await;
    let token_for = |resource: String| {
        let url = format!("{}/token", provider.url);
        async move {
            let form = format!(
                "grant_type=client_credentials&scope=mcp:tools&resource={}",
                form_urlencoded::byte_serialize(resource.as_bytes()).collect::<String>()
            );
            let basic = format!(
                "Basic {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "mcpgate-m2m:m2m-secret")
            );
            let h = [("content-type", "application/x-www-form-urlencoded"), ("authorization", basic.as_str())];
            let r = request("POST", &url, &h, &form).await;
            r.json()["access_token"].as_str().unwrap_or_else(|| panic!("{}", r.body)).to_owned()
        }
    };
    let ours = token_for(public.clone()).await;
    let url = format!("{public}/mcp");
    let sid = open_session(&url, &[("authorization", &bearer(&ours))]).await;
    let body =
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;
    let r = call(&url, &sid, &[("authorization", &bearer(&ours))], body).await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, gw.output());
    let theirs = token_for("http://127.0.0.1:1/mcp".to_owned()).await;
    assert_challenged(
        &initialize(&url, Some(&theirs)).await,
        &public,
        "/mcp",
        Some("invalid_token"),
        "another resource",
    );
}

/// Path tricks do not get past the check (DESIGN §8, passthrough and spoofing): every spelling
/// of an MCP endpoint is refused without a token, every other path is a 404 — none is served.
/// A raw socket sends each target as written (an HTTP client would normalize it).
#[tokio::test]
async fn path_tricks_do_not_bypass_the_check() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let issuer = jwt_issuer().await;
    let dir = tempdir("serve-jwt-paths");
    let (gw, public) = guarded(&dir, &issuer.url, None, json!({})).await;
    ready(&gw).await;
    let addr = public.trim_start_matches("http://").to_owned();
    let targets = [
        "/mcp",
        "/mcp?x=1",
        "/mcp#frag",
        "/mcp/",
        "//mcp",
        "/./mcp",
        "/mcp/.",
        "/x/../mcp",
        "/%6Dcp",
        "/%2Fmcp",
        "/MCP",
        "/servers/local/mcp",
        "/servers/local/mcp?access_token=x",
        "/servers/local/../local/mcp",
        "/servers/local%2Fmcp",
        "/servers/%6Cocal/mcp",
        "/servers//local/mcp",
        "/servers/local/mcp/../mcp",
        "/.well-known/oauth-protected-resource/../../mcp",
        "/healthz/../mcp",
        "/metrics/../servers/local/mcp",
    ];
    for target in targets {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let req = format!(
            "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{INITIALIZE}",
            INITIALIZE.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&out);
        let status: u16 = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        assert!(matches!(status, 400 | 401 | 404 | 405), "{target}: {status}\n{text}");
        assert!(
            !text.contains("mcp-session-id") && !text.contains("Mcp-Session-Id"),
            "{target}: a session was opened\n{text}"
        );
    }
}
