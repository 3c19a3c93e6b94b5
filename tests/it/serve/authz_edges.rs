//! The authorization server (`"mode": "oauth"`) against what a hostile or careless client sends:
//! the open-redirect corpus at `/authorize` (oauth2-proxy's is the model), registrations it must
//! refuse, token requests that must fail (and how), the consent form posted from elsewhere, the
//! provider's answer replayed. A real OpenID provider behind the gateway; codes are obtained by a
//! real browser sign-in.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::auth_oauth::authorizing;
use super::*;
use crate::idp::idp;

const FORM: &[(&str, &str)] = &[("content-type", "application/x-www-form-urlencoded")];

/// A gateway in `oauth` mode in front of a fresh OpenID provider: (the provider, the test's
/// directory, the gateway, its public URL).
async fn gateway(name: &str) -> (Proc, std::path::PathBuf, Proc, String) {
    let provider = idp(&[], 3600).await;
    let dir = tempdir(name);
    let (gw, public) = authorizing(&dir, &provider.url, None, free_port()).await;
    ready(&gw).await;
    (provider, dir, gw, public)
}

/// The token request that redeems `code` the right way.
fn redeem(client: &str, redirect: &str, code: &str, verifier: &str) -> String {
    format!(
        "grant_type=authorization_code&client_id={client}&redirect_uri={}&code={code}&code_verifier={verifier}",
        enc(redirect)
    )
}

async fn register(public: &str, metadata: Value) -> Reply {
    request("POST", &format!("{public}/register"), &[("content-type", "application/json")], &metadata.to_string()).await
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn authorize_url(public: &str, client_id: &str, redirect: &str, challenge: &str) -> String {
    format!(
        "{public}/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&state=st4te",
        enc(client_id),
        enc(redirect)
    )
}

/// A loopback listener standing for a client's redirect URI: the first request's target.
async fn redirect_listener() -> (String, tokio::sync::oneshot::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/cb", listener.local_addr().unwrap().port());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let target = head.split(' ').nth(1).unwrap_or("").to_owned();
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            if let Some(tx) = tx.take() {
                let _ = tx.send(target);
            }
        }
    });
    (url, rx)
}

/// A code for a fresh public client, signed in as `user` in the browser: (client_id, redirect, code).
async fn code(public: &str, verifier: &str) -> (String, String, String) {
    let (redirect, landed) = redirect_listener().await;
    let r = register(public, json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "none"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let client_id = r.json()["client_id"].as_str().unwrap().to_owned();
    let url = authorize_url(public, &client_id, &redirect, &mcpgate::oauth_client::pkce::s256(verifier));
    let code = code_at(&url, landed).await;
    (client_id, redirect, code)
}

async fn code_at(url: &str, landed: tokio::sync::oneshot::Receiver<String>) -> String {
    code_in(url, landed, None).await.0
}

/// `code_at` in the browser profile `profile` (kept between runs); also what the browser said.
async fn code_in(
    url: &str,
    landed: tokio::sync::oneshot::Receiver<String>,
    profile: Option<&FsPath>,
) -> (String, String) {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/browser-login.mjs"))
        .arg(url)
        .env("LOGIN_USER", "alice@example.com")
        .kill_on_drop(true);
    if let Some(p) = profile {
        cmd.env("BROWSER_PROFILE", p);
    }
    let out = tokio::time::timeout(Duration::from_secs(40), cmd.output()).await.unwrap().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "sign-in failed: {said}");
    let target = tokio::time::timeout(Duration::from_secs(5), landed).await.unwrap().unwrap();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    assert_eq!(params.get("state").map(String::as_str), Some("st4te"), "{target}");
    (params.get("code").cloned().unwrap_or_else(|| panic!("no code: {target}")), said)
}

/// A consent is remembered per user and client: the same browser signing the same user in for
/// the same client again sees no consent page; another client still asks.
#[tokio::test]
async fn a_consent_is_remembered_per_user_and_client() {
    let (_provider, dir, _gw, public) = gateway("authz-remembered").await;
    let profile = dir.join("browser");
    let challenge = mcpgate::oauth_client::pkce::s256("remembered-remembered-remembered-remembered");
    let mut seen = Vec::new();
    for client_name in ["first", "first", "second"] {
        let (redirect, landed) = redirect_listener().await;
        let meta =
            json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "none", "client_name": client_name});
        // The same client for the first two sign-ins (registered once, its redirect's port free).
        let client = match (client_name, seen.last()) {
            ("first", Some((_, id, _))) => String::clone(id),
            _ => register(&public, meta).await.json()["client_id"].as_str().unwrap().to_owned(),
        };
        let url = authorize_url(&public, &client, &redirect, &challenge);
        let (_, said) = code_in(&url, landed, Some(&profile)).await;
        seen.push((client_name, client, said.contains("gateway consent page")));
    }
    let asked: Vec<bool> = seen.iter().map(|(_, _, asked)| *asked).collect();
    assert_eq!(asked, vec![true, false, true], "consent page shown per sign-in: {seen:?}");
}

async fn token(public: &str, headers: &[(&str, &str)], form: &str) -> Reply {
    let h = [FORM, headers].concat();
    request("POST", &format!("{public}/token"), &h, form).await
}

/// Every redirect URI that is not exactly one the client registered (a loopback one may change
/// its port, nothing else) gets an error page, never a redirect; the registered ones get the
/// consent page. A request without a client, or with an unknown one, likewise.
#[tokio::test]
async fn authorize_never_redirects_anywhere_a_client_did_not_register() {
    let (_provider, _dir, _gw, public) = gateway("authz-redirects").await;
    let registered = ["https://app.example/cb", "http://127.0.0.1/cb"];
    let r = register(
        &public,
        json!({"redirect_uris": registered, "token_endpoint_auth_method": "none", "client_name": "<b>Corpus</b>"}),
    )
    .await;
    let client = r.json()["client_id"].as_str().unwrap().to_owned();
    let challenge = mcpgate::oauth_client::pkce::s256("a-verifier-a-verifier-a-verifier-a-verifier");

    let corpus = [
        "https://evil.example/cb",
        "https://app.example.evil.example/cb",
        "https://evil.example/app.example/cb",
        "https://app.example@evil.example/cb",
        "https://evil.example\\@app.example/cb",
        "https://evil.example%2f@app.example/cb",
        "https://evil.example#@app.example/cb",
        "https://evil.example?@app.example/cb",
        "//evil.example/cb",
        "///evil.example/cb",
        "/\\evil.example",
        "\\\\evil.example",
        "https:/evil.example",
        "https:evil.example",
        "https://app.example/cb/../../evil",
        "https://app.example/cb/..%2f..%2fevil",
        "https://app.example/cb?next=https://evil.example",
        "https://app.example/cb#https://evil.example",
        "https://app.example/cb/",
        "https://app.example/CB",
        "https://app.example/c%62",
        "https://APP.example/cb",
        "https://app.example:443/cb",
        "https://app.example:8443/cb",
        "http://app.example/cb",
        " https://app.example/cb",
        "https://app.example/cb ",
        "https://app.example/cb\t",
        "https://app.example/cb\r\nLocation: https://evil.example",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://127.0.0.1.evil.example/cb",
        "http://127.0.0.1:8080/cb/../evil",
        "http://127.0.0.1:8080/cb?x=1",
        "http://127.0.0.1@evil.example/cb",
        "http://evil.example@127.0.0.1/cb",
        "http://[::1]/cb",
        "http://localhost/cb",
        "http://127.0.0.2/cb",
        "https://127.0.0.1/cb",
        "",
    ];
    for bad in corpus {
        let url = authorize_url(&public, &client, bad, &challenge);
        let r = request("GET", &url, &[], "").await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.body);
        assert!(r.header("location").is_none(), "{bad:?} redirected to {:?}", r.header("location"));
        assert!(r.body.contains("Sign-in failed"), "{bad:?}: {}", r.body);
    }
    // No client, an unknown one: a page too.
    for url in [
        format!("{public}/authorize?response_type=code&redirect_uri={}", enc("https://evil.example/cb")),
        authorize_url(&public, "no-such-client", "https://evil.example/cb", &challenge),
    ] {
        let r = request("GET", &url, &[], "").await;
        assert!(r.status == 400 && r.header("location").is_none(), "{url}: {} {}", r.status, r.body);
    }
    // The registered ones (a loopback one on any port): the consent page, escaped, not frameable.
    for good in ["https://app.example/cb", "http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"] {
        let r = request("GET", &authorize_url(&public, &client, good, &challenge), &[], "").await;
        assert_eq!(r.status, 200, "{good}: {}", r.body);
        assert!(r.body.contains("&lt;b&gt;Corpus&lt;/b&gt;") && !r.body.contains("<b>Corpus"), "{}", r.body);
        let host = if good.starts_with("https") { "app.example" } else { "127.0.0.1" };
        assert!(r.body.contains(&format!("sent back to <strong>{host}</strong>")), "{}", r.body);
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert!(r.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    // The scopes asked for are named on the page.
    let url =
        format!("{}&scope=files%3Aread+%3Cb%3E", authorize_url(&public, &client, "https://app.example/cb", &challenge));
    let r = request("GET", &url, &[], "").await;
    assert!(r.body.contains("<code>files:read</code>") && r.body.contains("<code>&lt;b&gt;</code>"), "{}", r.body);
    // A request with a good redirect but a bad rest, before any user saw it: a page, with a link
    // back to the client carrying the error, its state and the gateway's issuer — never an
    // automatic redirect (registration is open: that would be an open redirector); PKCE is
    // required, S256 only.
    let bare = format!(
        "{public}/authorize?response_type=code&client_id={client}&redirect_uri={}&state=s1",
        enc("https://app.example/cb")
    );
    let good = authorize_url(&public, &client, "https://app.example/cb", &challenge);
    for (url, error) in [
        (bare.clone(), "invalid_request"),
        (format!("{bare}&code_challenge={challenge}&code_challenge_method=plain"), "invalid_request"),
        (format!("{bare}&code_challenge={challenge}"), "invalid_request"),
        (format!("{bare}&code_challenge_method=S256&code_challenge=short"), "invalid_request"),
        (good.replace("response_type=code", "response_type=token"), "unsupported_response_type"),
        (format!("{good}&resource={}", enc("https://other.example/mcp")), "invalid_target"),
    ] {
        let r = request("GET", &url, &[], "").await;
        assert_eq!((r.status, r.header("location")), (400, None), "{url}: {}", r.body);
        let link = r.body.split("href=\"").nth(1).unwrap_or_else(|| panic!("{url}: no link: {}", r.body));
        let link = link.split('"').next().unwrap().replace("&amp;", "&");
        assert!(link.starts_with("https://app.example/cb?"), "{link}");
        let state = if url.contains("state=s1") { "&state=s1" } else { "&state=st4te" };
        assert!(link.contains(&format!("error={error}")) && link.contains(state), "{link}");
        assert!(link.contains(&format!("iss={}", enc(&public))), "{link}");
    }
    // HEAD writes nothing, and is not served.
    let r = request("HEAD", &authorize_url(&public, &client, "https://app.example/cb", &challenge), &[], "").await;
    assert_eq!(r.status, 405);
    let r = request(
        "GET",
        &format!("{}&client_id=again", authorize_url(&public, &client, "https://app.example/cb", &challenge)),
        &[],
        "",
    )
    .await;
    assert_eq!((r.status, r.header("location")), (400, None), "a repeated parameter: {}", r.body);
}

/// What a client may not register, and what it may.
#[tokio::test]
async fn registration_takes_only_what_the_code_flow_needs() {
    let (_provider, dir, _gw, public) = gateway("authz-register").await;
    for (metadata, error) in [
        (json!({}), "invalid_redirect_uri"),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["http://app.example/cb"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["https://app.example/cb#f"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["javascript:alert(1)"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": "https://app.example/cb"}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": (0..11).map(|i| format!("https://app.example/{i}")).collect::<Vec<_>>()}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["implicit"]}), "invalid_client_metadata"),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (json!({"redirect_uris": ["https://app.example/cb"], "response_types": ["token"]}), "invalid_client_metadata"),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "application_type": "browser"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "client_name": "x".repeat(201)}),
            "invalid_client_metadata",
        ),
    ] {
        let r = register(&public, metadata.clone()).await;
        assert_eq!((r.status, r.json()["error"].clone()), (400, json!(error)), "{metadata}: {}", r.body);
    }
    let r = request("POST", &format!("{public}/register"), &[("content-type", "application/json")], "[1,2").await;
    assert_eq!(r.status, 400);
    let huge = json!({"redirect_uris": ["https://app.example/cb"], "client_name": "x".repeat(70_000)}).to_string();
    let r = request("POST", &format!("{public}/register"), &[("content-type", "application/json")], &huge).await;
    assert_eq!(r.status, 413, "{}", r.body);
    // A public client gets no secret; a confidential one a secret, once.
    let r = register(&public, json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
        .await;
    assert_eq!(r.status, 201);
    assert!(r.json().get("client_secret").is_none(), "{}", r.body);
    let r = register(&public, json!({"redirect_uris": ["https://app.example/cb"]})).await;
    let doc = r.json();
    assert_eq!(doc["token_endpoint_auth_method"], json!("client_secret_basic"));
    assert!(doc["client_secret"].as_str().unwrap().len() >= 32, "{doc}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // One address registering in a loop is stopped (each registration is a record kept).
    let mut refused = None;
    for i in 0..25 {
        let r = register(&public, json!({"redirect_uris": ["https://app.example/cb"]})).await;
        if r.status == 429 {
            refused = Some((i, r));
            break;
        }
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let (at, r) = refused.expect("no limit on registrations");
    assert!(at <= 20, "refused only after {at} more registrations");
    assert!(r.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok()), "{:?}", r.header("retry-after"));
    let state = std::fs::read(dir.join("state/state.redb")).unwrap();
    let secret = doc["client_secret"].as_str().unwrap();
    assert!(!state.windows(secret.len()).any(|w| w == secret.as_bytes()), "a client secret stored as it is");
}

/// The token endpoint: a code is redeemed once, by its client, with its verifier and redirect
/// URI; everything else is refused with the RFC's error, and a failed attempt burns the code.
#[tokio::test]
async fn a_code_is_redeemed_once_by_its_client_with_its_verifier() {
    let (_provider, _dir, _gw, public) = gateway("authz-token").await;
    let verifier = "the-right-verifier-the-right-verifier-0123456789";

    // A wrong verifier: refused, and the code is gone.
    let (client, redirect, c) = code(&public, verifier).await;
    let base = format!("grant_type=authorization_code&client_id={client}&redirect_uri={}&code={c}", enc(&redirect));
    let r =
        token(&public, &[], &format!("{base}&code_verifier=the-wrong-verifier-the-wrong-verifier-0123456789")).await;
    assert_eq!(r.json()["error"], json!("invalid_grant"), "{}", r.body);
    let r = token(&public, &[], &format!("{base}&code_verifier={verifier}")).await;
    assert_eq!(r.json()["error"], json!("invalid_grant"), "a failed attempt burns the code: {}", r.body);
    // The challenge itself as verifier (`plain`), or none at all: refused.
    let challenge = mcpgate::oauth_client::pkce::s256(verifier);
    // And the right verifier without the redirect URI the authorization request named.
    for (verifier_param, with_redirect) in [
        (format!("&code_verifier={challenge}"), true),
        (String::new(), true),
        (format!("&code_verifier={verifier}"), false),
    ] {
        let (client, redirect, c) = code(&public, verifier).await;
        let redirect = if with_redirect { format!("&redirect_uri={}", enc(&redirect)) } else { String::new() };
        let form = format!("grant_type=authorization_code&client_id={client}{redirect}&code={c}{verifier_param}");
        let r = token(&public, &[], &form).await;
        assert_eq!(r.json()["error"], json!("invalid_grant"), "{verifier_param:?}: {}", r.body);
    }

    // Another client, another redirect URI: refused.
    let (client, _, c) = code(&public, verifier).await;
    let other =
        register(&public, json!({"redirect_uris": ["http://127.0.0.1/x"], "token_endpoint_auth_method": "none"}))
            .await
            .json();
    let other = other["client_id"].as_str().unwrap();
    let r = token(
        &public,
        &[],
        &format!("grant_type=authorization_code&client_id={other}&code={c}&code_verifier={verifier}"),
    )
    .await;
    assert_eq!(r.json()["error"], json!("invalid_grant"), "{}", r.body);
    let (client2, _, c2) = code(&public, verifier).await;
    let r = token(
        &public,
        &[],
        &format!(
            "grant_type=authorization_code&client_id={client2}&redirect_uri={}&code={c2}&code_verifier={verifier}",
            enc("http://127.0.0.1:1/elsewhere")
        ),
    )
    .await;
    assert_eq!(r.json()["error"], json!("invalid_grant"), "{}", r.body);

    // Malformed requests; client authentication that does not hold.
    for (headers, form, status, error) in [
        (vec![], format!("grant_type=implicit&client_id={client}"), 400, "unsupported_grant_type"),
        (vec![], format!("client_id={client}&code=x"), 400, "invalid_request"),
        (
            vec![],
            format!("grant_type=authorization_code&client_id={client}&client_id={client}&code=x&code_verifier=y"),
            400,
            "invalid_request",
        ),
        (vec![], "grant_type=authorization_code&code=x&code_verifier=y".to_owned(), 401, "invalid_client"),
        (
            vec![],
            format!("grant_type=authorization_code&client_id={client}&client_secret=guess&code=x&code_verifier=y"),
            401,
            "invalid_client",
        ),
        (
            vec![("authorization", "Bearer abc")],
            format!("grant_type=authorization_code&client_id={client}"),
            401,
            "invalid_client",
        ),
        (
            vec![],
            "grant_type=authorization_code&client_id=unknown&code=x&code_verifier=y".to_owned(),
            401,
            "invalid_client",
        ),
        (vec![], format!("grant_type=refresh_token&client_id={client}&refresh_token=made-up"), 400, "invalid_grant"),
    ] {
        let r = token(&public, &headers, &form).await;
        assert_eq!((r.status, r.json()["error"].clone()), (status, json!(error)), "{form}: {}", r.body);
        if status == 401 {
            assert!(r.header("www-authenticate").is_some(), "{form}");
        }
    }
    let r = request("POST", &format!("{public}/token"), &[("content-type", "application/json")], "{}").await;
    assert_eq!(r.json()["error"], json!("invalid_request"), "{}", r.body);
}

/// A code redeemed the right way gives tokens once; redeemed again it revokes the sign-in it
/// started (refresh and access tokens alike); a refresh token presented by another client is
/// refused and its sign-in revoked; `/revoke` ends a sign-in for its client only.
#[tokio::test]
async fn a_sign_in_is_revoked_by_a_replayed_code_another_client_or_its_own() {
    let (_provider, _dir, _gw, public) = gateway("authz-revoke").await;
    let verifier = "the-right-verifier-the-right-verifier-0123456789";
    let other =
        register(&public, json!({"redirect_uris": ["http://127.0.0.1/x"], "token_endpoint_auth_method": "none"}))
            .await
            .json();
    let other = other["client_id"].as_str().unwrap();

    // The right request: tokens, once.
    let (client, redirect, c) = code(&public, verifier).await;
    let form = redeem(&client, &redirect, &c, verifier);
    let r = token(&public, &[], &form).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let t = r.json();
    assert_eq!((t["token_type"].clone(), t["expires_in"].clone()), (json!("Bearer"), json!(900)), "{t}");
    let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
    let mcp = format!("{public}/mcp");
    let with_token = [MCP_HEADERS, &[("authorization", bearer.as_str())]].concat();
    assert_eq!(request("POST", &mcp, &with_token, INITIALIZE).await.status, 200);
    // The code again: refused, and the sign-in it started is revoked — its refresh token and its
    // access token alike.
    let r = token(&public, &[], &form).await;
    assert_eq!(r.json()["error"], json!("invalid_grant"), "a code twice: {}", r.body);
    let refresh = t["refresh_token"].as_str().unwrap();
    let r = token(&public, &[], &format!("grant_type=refresh_token&client_id={client}&refresh_token={refresh}")).await;
    assert_eq!(r.json()["error"], json!("invalid_grant"), "{}", r.body);
    let r = request("POST", &mcp, &with_token, INITIALIZE).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.header("www-authenticate").unwrap().contains("revoked"), "{:?}", r.header("www-authenticate"));

    // Two redemptions of one code at the same instant: one gets tokens, the other is refused,
    // and the tokens the first got are revoked all the same.
    let (client, redirect, c) = code(&public, verifier).await;
    let form = redeem(&client, &redirect, &c, verifier);
    let (a, b) = tokio::join!(token(&public, &[], &form), token(&public, &[], &form));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{} / {}", a.body, b.body);
    let won = if a.status == 200 { a.json() } else { b.json() };
    let bearer = format!("Bearer {}", won["access_token"].as_str().unwrap());
    let with_token = [MCP_HEADERS, &[("authorization", bearer.as_str())]].concat();
    assert_eq!(request("POST", &mcp, &with_token, INITIALIZE).await.status, 401, "a raced code's tokens stay valid");

    // A refresh token presented by another client: refused, and its sign-in revoked.
    let (client, redirect, c) = code(&public, verifier).await;
    let form = redeem(&client, &redirect, &c, verifier);
    let t = token(&public, &[], &form).await.json();
    let refresh = t["refresh_token"].as_str().unwrap();
    let r = token(&public, &[], &format!("grant_type=refresh_token&client_id={other}&refresh_token={refresh}")).await;
    assert_eq!(r.json()["error"], json!("invalid_grant"), "{}", r.body);
    let r = token(&public, &[], &format!("grant_type=refresh_token&client_id={client}&refresh_token={refresh}")).await;
    assert_eq!(r.json()["error"], json!("invalid_grant"), "{}", r.body);

    // Revoked by its client: the refresh token is dead (RFC 7009), another client's revocation
    // changes nothing, and the answer is 200 either way.
    let (client, redirect, c) = code(&public, verifier).await;
    let form = redeem(&client, &redirect, &c, verifier);
    let t = token(&public, &[], &form).await.json();
    let refresh = t["refresh_token"].as_str().unwrap();
    let r = request("POST", &format!("{public}/revoke"), FORM, &format!("client_id={other}&token={refresh}")).await;
    assert_eq!(r.status, 200);
    let again = format!("grant_type=refresh_token&client_id={client}&refresh_token={refresh}");
    let r = token(&public, &[], &again).await;
    assert_eq!(r.status, 200, "another client cannot revoke it: {}", r.body);
    let fresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let r = request("POST", &format!("{public}/revoke"), FORM, &format!("client_id={client}&token={fresh}")).await;
    assert_eq!(r.status, 200);
    let r = token(&public, &[], &format!("grant_type=refresh_token&client_id={client}&refresh_token={fresh}")).await;
    assert_eq!(r.json()["error"], json!("invalid_grant"), "{}", r.body);
    let r = request("POST", &format!("{public}/revoke"), FORM, &format!("client_id={client}&token=never-issued")).await;
    assert_eq!(r.status, 200);
    // An access token revoked by its client ends its sign-in too: the token itself and the
    // sign-in's refresh token stop working at once.
    let (client, redirect, c) = code(&public, verifier).await;
    let t = token(&public, &[], &redeem(&client, &redirect, &c, verifier)).await.json();
    let access = t["access_token"].as_str().unwrap();
    let bearer = format!("Bearer {access}");
    let with_token = [MCP_HEADERS, &[("authorization", bearer.as_str())]].concat();
    assert_eq!(request("POST", &format!("{public}/mcp"), &with_token, INITIALIZE).await.status, 200);
    let r = request("POST", &format!("{public}/revoke"), FORM, &format!("client_id={other}&token={access}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        request("POST", &format!("{public}/mcp"), &with_token, INITIALIZE).await.status,
        200,
        "another client's revocation counts for nothing"
    );
    let r = request(
        "POST",
        &format!("{public}/revoke"),
        FORM,
        &format!("client_id={client}&token={access}&token_type_hint=access_token"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(request("POST", &format!("{public}/mcp"), &with_token, INITIALIZE).await.status, 401);
    let refresh = t["refresh_token"].as_str().unwrap();
    let r = token(&public, &[], &format!("grant_type=refresh_token&client_id={client}&refresh_token={refresh}")).await;
    assert_eq!(r.json()["error"], json!("invalid_grant"), "{}", r.body);
}

/// The consent form answers only from the gateway's own page, in the browser it was shown in;
/// the provider's answer is taken once.
#[tokio::test]
async fn the_consent_form_and_the_callback_cannot_be_forged_or_replayed() {
    let (provider, _dir, _gw, public) = gateway("authz-consent").await;
    let r = register(&public, json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
        .await;
    let client = r.json()["client_id"].as_str().unwrap().to_owned();
    let url = authorize_url(
        &public,
        &client,
        "http://127.0.0.1/cb",
        &mcpgate::oauth_client::pkce::s256("v-v-v-v-v-v-v-v-v-v-v-v-v-v-v-v-v-v-v-v-v-v"),
    );
    let page = request("GET", &url, &[], "").await;
    let cookie = page.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let field = |name: &str| {
        let at = page.body.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
        page.body[at..].split('"').next().unwrap().to_owned()
    };
    let (id, csrf) = (field("request"), field("csrf"));
    let form = format!("request={id}&csrf={csrf}&decision=approve");
    let approve = |headers: Vec<(&'static str, String)>, form: String| {
        let public = public.clone();
        async move {
            let mut h: Vec<(&str, &str)> = FORM.to_vec();
            h.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
            request("POST", &format!("{public}/authorize"), &h, &form).await
        }
    };
    for (what, headers, body) in [
        ("no cookie", vec![], form.clone()),
        ("another browser's cookie", vec![("cookie", "mcpgate-browser=someone-else".to_owned())], form.clone()),
        (
            "a cross-site post",
            vec![("cookie", cookie.clone()), ("sec-fetch-site", "cross-site".to_owned())],
            form.clone(),
        ),
        (
            "another request's token",
            vec![("cookie", cookie.clone())],
            format!("request=other&csrf={csrf}&decision=approve"),
        ),
        ("no token", vec![("cookie", cookie.clone())], format!("request={id}&decision=approve")),
    ] {
        let r = approve(headers, body).await;
        assert!(r.status == 403 || r.status == 400, "{what}: {} {}", r.status, r.body);
        assert!(r.header("location").is_none(), "{what}");
    }
    let r =
        approve(vec![("cookie", cookie.clone()), ("origin", "https://evil.example".to_owned())], form.clone()).await;
    assert_eq!(r.status, 403, "a foreign origin: {}", r.body);
    assert!(page.header("set-cookie").unwrap().contains("HttpOnly; SameSite=Lax"), "{:?}", page.header("set-cookie"));
    // The real answer from the page's browser: on to the provider (twice: a double click).
    let mut states = Vec::new();
    for _ in 0..2 {
        let r = approve(vec![("cookie", cookie.clone()), ("origin", public.clone())], form.clone()).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let location = r.header("location").unwrap();
        assert!(location.starts_with(&provider.url), "{location}");
        let query = location.split_once('?').unwrap().1;
        let state = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "state").unwrap().1.into_owned();
        states.push(state);
    }
    assert_ne!(states[0], states[1], "a sign-in's state is random, one per attempt");
    // The provider's answer counts only in the browser that started the sign-in: a link to the
    // provider started by someone else (for their own client) signs no victim in, and leaves the
    // real sign-in intact.
    let answer = format!("{public}/oauth/callback?state={}&code=made-up&iss={}", states[0], enc(&provider.url));
    for other in [vec![], vec![("cookie", "mcpgate-browser=the-victims-own")]] {
        let r = request("GET", &answer, &other, "").await;
        assert_eq!((r.status, r.header("location")), (403, None), "{other:?}: {}", r.body);
    }
    // It is taken once: the first use goes back to the client (here with an error: the code is
    // made up), the second is unknown.
    let r = request("GET", &answer, &[("cookie", cookie.as_str())], "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        r.header("location").unwrap().starts_with("http://127.0.0.1/cb?error=access_denied"),
        "{:?}",
        r.header("location")
    );
    let r = request("GET", &answer, &[("cookie", cookie.as_str())], "").await;
    assert_eq!((r.status, r.header("location")), (400, None), "{}", r.body);
    // The provider's answer with a state never issued, or none: a page, nothing more.
    for q in ["state=made-up&code=x", "code=x", "state=&code=x"] {
        let r = request("GET", &format!("{public}/oauth/callback?{q}"), &[], "").await;
        assert_eq!((r.status, r.header("location")), (400, None), "{q}: {}", r.body);
    }
}
