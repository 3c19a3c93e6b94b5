//! DPoP-bound tokens (RFC 9449, SEP-1932) through `mcpgate stdio`: a certified OpenID provider
//! (`oidc-provider`, whose DPoP support binds tokens and checks refresh tokens against the key) as
//! the authorization server, and an MCP server on the official SDK that takes DPoP-bound tokens
//! only and checks every proof (tests/fixtures/protected-server.mjs `--dpop`): the signature
//! against the proof's key, `htm`, `htu`, `iat`, a `jti` never seen before, `ath`, the token's
//! `cnf.jkt`, and — where asked — its nonce. The bridge's key outlives it in the credential store,
//! sealed, and the refresh token bound to it is refreshed with it by the next bridge. The server can
//! start or stop taking DPoP-bound tokens only at the same URL (`/__test/dpop`), and the provider stop
//! binding (`/__test/strip-dpop`): what a stored credential does then — rebound by a new sign-in,
//! never downgraded, left unused under `--no-dpop`. Last, `mcpgate connect` with a client that holds
//! a DPoP-bound token of its own.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::idp::*;

/// The client-credentials bridge flags for the provider's machine client.
const M2M: [&str; 4] = ["--grant", "client-credentials", "--client-id", "mcpgate-m2m"];

/// `mcpgate stdio` with `args` and `-v` (the more it logs, the more a leak would show).
async fn bridge(url: &str, args: &[&str], store: &std::path::Path, browser: &str) -> Bridge {
    let mut all = vec!["-v"];
    all.extend_from_slice(args);
    Bridge::start(url, &all, store, browser).await
}

/// The protected server's test API base (its URL without `/mcp`).
fn base(server: &Proc) -> &str {
    server.url.trim_end_matches("/mcp")
}

/// `mcpgate stdio URL ARGS -v` run to its end with no client (stdin closed): (success, stderr).
async fn stdio_alone(
    url: &str,
    args: &[&str],
    store: &std::path::Path,
    count: &std::path::Path,
    env: &[(&str, &str)],
) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(mcpgate_bin())
            .args(["stdio", url, "-v"])
            .args(args)
            .envs(env.iter().copied())
            .env("MCPGATE_STORE_DIR", store)
            .env("MCPGATE_BROWSER", browser(count, false))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The P-256 PKCS#8 document's first 36 bytes — the same for every key ring makes — in base64url
/// (`MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg` in standard base64, which has no `+` or
/// `/` here): how a DPoP private key in the clear begins, wherever it would leak.
const PKCS8_P256_PREFIX: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg";

/// The provider's log of token requests of `grant`.
async fn token_requests(provider: &Proc, grant: &str) -> Vec<Value> {
    let reqs = get_json(&format!("{}/__test/requests", provider.url)).await;
    reqs["token"].as_array().unwrap().iter().filter(|r| r["grant_type"] == grant).cloned().collect()
}

/// What every request the server saw says about the proofs: all with the DPoP scheme, each with a
/// `jti` of its own, all of one key, and the token bound to that key wherever it was accepted.
fn assert_well_proved(seen: &[Value]) -> String {
    assert!(!seen.is_empty());
    let mut jtis = HashSet::new();
    let mut keys = HashSet::new();
    for e in seen {
        assert_eq!(e["scheme"], "DPoP", "{e}");
        let jti = e["proof_jti"].as_str().unwrap_or_else(|| panic!("no proof: {e}"));
        assert!(jtis.insert(jti.to_owned()), "a proof sent twice: {e}");
        keys.insert(e["proof_jkt"].as_str().unwrap().to_owned());
        if e["accepted"] == true {
            assert_eq!(e["proof"], "ok", "{e}");
            assert_eq!(e["cnf_jkt"], e["proof_jkt"], "{e}");
        } else {
            // Only ever refused for want of the server's nonce: every proof was well-formed.
            assert_eq!(e["error"], "use_dpop_nonce", "{e}");
        }
    }
    assert_eq!(keys.len(), 1, "one key for the credential: {seen:?}");
    keys.into_iter().next().unwrap()
}

/// Machine to machine, where both servers ask for DPoP: the token request carries a proof and,
/// asked for the provider's nonce, is sent once more with it; the token comes back bound (`DPoP`);
/// every request to the MCP server — POSTs and the GET stream — carries a fresh proof with the
/// server's nonce, which the bridge picks up from the server's answers as it rotates. Nothing of
/// it reaches the log.
#[tokio::test]
async fn client_credentials_are_dpop_bound_where_the_servers_ask_and_every_request_proves_it() {
    let provider = idp(&["--dpop-nonce"], 3600).await;
    let server = protected(&provider.url, &["--dpop", "--dpop-nonce", "rotate"]).await;
    let (store, count) = store("dpop-m2m");
    let mut b = Bridge::start_with_env(
        &server.url,
        &["-v", M2M[0], M2M[1], M2M[2], M2M[3]],
        &store,
        &browser(&count, false),
        &[("OIDC_CLIENT_SECRET", "m2m-secret")],
    )
    .await;
    b.initialize().await;
    let who: Value = serde_json::from_str(&b.call_text("whoami", json!({})).await).unwrap();
    assert_eq!(who["client_id"], "mcpgate-m2m", "{who}");
    for i in 0..6 {
        assert_eq!(b.call_text("echo", json!({"message": i.to_string()})).await, format!("Echo: {i}"));
    }
    let stderr = b.close().await;

    let tokens = token_requests(&provider, "client_credentials").await;
    assert_eq!(tokens.len(), 2, "one request, sent again once with the nonce: {tokens:?}");
    assert_eq!((tokens[0]["dpop"].as_str(), tokens[0]["error"].as_str()), (Some("proof"), Some("use_dpop_nonce")));
    assert_eq!((tokens[1]["dpop"].as_str(), tokens[1]["error"].as_str()), (Some("proof+nonce"), None));

    let seen = seen(&server).await;
    assert_well_proved(&seen);
    let accepted: Vec<&Value> = seen.iter().filter(|e| e["accepted"] == true).collect();
    assert!(accepted.len() >= 8, "{seen:?}");
    assert!(accepted.iter().all(|e| e["proof_nonce"] == true), "{seen:?}");
    assert!(
        seen.iter().any(|e| e["http_method"] == "GET" && e["accepted"] == true),
        "the GET stream proves too: {seen:?}"
    );
    // The nonce rotated after every third request accepted (three times here); the bridge took
    // each new one from the answer that brought it, so only its very first request was refused
    // for want of one (measured: 1 of 12 every run; one more is allowed for a request under way
    // as the nonce rotated; a bridge that kept only the nonces of refusals would see 4).
    let refused = seen.iter().filter(|e| e["error"] == "use_dpop_nonce").count();
    assert!(accepted.len() >= 9, "three rotations: {seen:?}");
    assert!((1..=2).contains(&refused), "{refused} refusals for want of a nonce: {seen:?}");

    let secrets = get_json(&format!("{}/__test/secrets", provider.url)).await;
    for t in secrets["access_tokens"].as_array().unwrap() {
        assert!(!stderr.contains(t.as_str().unwrap()), "a token in the log:\n{stderr}");
    }
    // A proof's header is `{"typ":"dpop+jwt"…`, base64url: none is logged either.
    assert!(!stderr.contains("eyJ0eXAiOiJkcG9wK2p3dCI"), "a proof in the log:\n{stderr}");
}

/// A server's nonce is taken once per request: a server that answers every proof with a new nonce
/// gets two tries of the request, not a loop; a nonce past 1 KiB is ignored (no retry at all).
#[tokio::test]
async fn a_nonce_retry_happens_once_per_request_and_a_hostile_nonce_is_ignored() {
    let provider = idp(&[], 3600).await;
    for (mode, tries) in [("hostile", 2), ("huge", 1)] {
        let server = protected(&provider.url, &["--dpop", "--dpop-nonce", mode]).await;
        let (store, count) = store(&format!("dpop-nonce-{mode}"));
        let mut b = Bridge::start_with_env(
            &server.url,
            &[M2M[0], M2M[1], M2M[2], M2M[3]],
            &store,
            &browser(&count, false),
            &[("OIDC_CLIENT_SECRET", "m2m-secret")],
        )
        .await;
        let r = b
            .request(
                "initialize",
                json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}),
            )
            .await;
        assert!(r.get("error").is_some(), "{mode}: the refusal reaches the client: {r}");
        let stderr = b.close().await;
        let seen = seen(&server).await;
        assert_eq!(seen.len(), tries, "{mode}: {seen:?}\n{stderr}");
        assert_well_proved(&seen);
        assert!(seen.iter().all(|e| e["error"] == "use_dpop_nonce"), "{mode}: {seen:?}");
        if mode == "hostile" {
            assert_eq!((seen[0]["proof_nonce"].as_bool(), seen[1]["proof_nonce"].as_bool()), (Some(false), Some(true)));
        }
    }
}

/// `--dpop` where the authorization server issues Bearer tokens only: the token is refused, the
/// bridge does not start, and the message says why. Without `--dpop`, an authorization server's
/// advertising DPoP is not enough: in front of an MCP server that takes Bearer tokens, the bridge
/// asks for none (the provider advertises DPoP by default).
#[tokio::test]
async fn dpop_required_refuses_a_bearer_token_and_is_not_used_where_only_the_provider_offers_it() {
    let bearer_only = idp(&["--no-dpop"], 3600).await;
    let server = protected(&bearer_only.url, &[]).await;
    let (store, count) = store("dpop-required");
    let mut args = vec!["--dpop"];
    args.extend(M2M);
    let (ok, stderr) = stdio_alone(&server.url, &args, &store, &count, &[("OIDC_CLIENT_SECRET", "m2m-secret")]).await;
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("Bearer token where DPoP-bound tokens are required (--dpop)"), "{stderr}");
    let tokens = token_requests(&bearer_only, "client_credentials").await;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0]["dpop"], "proof", "the request carried a proof: {tokens:?}");
    let secrets = get_json(&format!("{}/__test/secrets", bearer_only.url)).await;
    for t in secrets["access_tokens"].as_array().unwrap() {
        assert!(!stderr.contains(t.as_str().unwrap()), "the refused token in the log:\n{stderr}");
    }

    // The provider advertises DPoP; the server's challenge and metadata say Bearer: Bearer it is.
    let provider = idp(&[], 3600).await;
    let md = get_json(&format!("{}/.well-known/oauth-authorization-server", provider.url)).await;
    assert!(md["dpop_signing_alg_values_supported"].as_array().is_some_and(|a| a.contains(&json!("ES256"))), "{md}");
    let server = protected(&provider.url, &[]).await;
    let mut b = Bridge::start_with_env(
        &server.url,
        &M2M,
        &store,
        &browser(&count, false),
        &[("OIDC_CLIENT_SECRET", "m2m-secret")],
    )
    .await;
    b.initialize().await;
    assert!(b.call_text("whoami", json!({})).await.contains("mcpgate-m2m"));
    b.close().await;
    let tokens = token_requests(&provider, "client_credentials").await;
    assert!(tokens.iter().all(|t| t["dpop"] == "none"), "{tokens:?}");
    assert!(seen(&server).await.iter().all(|e| e["scheme"] == "Bearer" && e["accepted"] == true));
}

/// A user's sign-in where the MCP server asks for DPoP: the code is redeemed with a proof (and
/// the provider's nonce), the key is stored with the tokens, sealed — and the next bridge, with
/// the token expired, refreshes with that same key (the provider checks the refresh token's
/// binding) and proves with it: no second sign-in.
#[tokio::test]
async fn a_dpop_bound_sign_in_keeps_its_key_in_the_store_and_the_next_bridge_refreshes_with_it() {
    let provider = idp(&["--dpop-nonce"], 6).await;
    let server = protected(&provider.url, &["--dpop"]).await;
    let (store, count) = store("dpop-sign-in");
    let mut b = bridge(&server.url, &[], &store, &browser(&count, true)).await;
    b.initialize().await;
    let who: Value = serde_json::from_str(&b.call_text("whoami", json!({})).await).unwrap();
    assert_eq!(who["aud"], server.url, "{who}");
    let first_stderr = b.close().await;
    assert_eq!(opened(&count), 1);
    let first = seen(&server).await;
    let key = assert_well_proved(&first);
    let codes = token_requests(&provider, "authorization_code").await;
    assert_eq!(
        codes.iter().map(|r| r["dpop"].as_str().unwrap()).collect::<Vec<_>>(),
        ["proof", "proof+nonce"],
        "the code redeemed with a proof, again with the nonce: {codes:?}"
    );

    // Stored: the store's own view of the record, decrypted, holds the key (base64url PKCS#8)…
    let records = mcpgate::store::Store::new(store.clone()).list(mcpgate::store::Kind::Token).unwrap();
    assert_eq!(records.len(), 1);
    let stored_key = records[0].secret.as_ref().expect("the record opens")["dpop_key"].as_str().unwrap().to_owned();
    assert!(stored_key.starts_with(PKCS8_P256_PREFIX), "the stored key is a P-256 PKCS#8 document");
    // …sealed: neither it nor its field name is in any file's clear text, nor in the log.
    for entry in walk(&store).into_iter().filter(|p| p.is_file()) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        assert!(!text.contains("dpop_key") && !text.contains(PKCS8_P256_PREFIX), "{}: {text}", entry.display());
    }
    assert!(!first_stderr.contains(PKCS8_P256_PREFIX), "the key in the log:\n{first_stderr}");

    // The access token has expired by now: the next bridge refreshes, with the stored key.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut b = bridge(&server.url, &[], &store, &browser(&count, false)).await;
    b.initialize().await;
    let who: Value = serde_json::from_str(&b.call_text("whoami", json!({})).await).unwrap();
    assert_eq!(who["aud"], server.url, "{who}");
    let second_stderr = b.close().await;
    assert_eq!(opened(&count), 1, "no second sign-in");
    // The refresh: with a proof, once more with the provider's nonce (this bridge had none yet),
    // and accepted — the provider refuses a refresh token proved with any other key
    // ("failed jkt verification").
    let refreshes = token_requests(&provider, "refresh_token").await;
    let shape: Vec<(&str, Option<&str>)> =
        refreshes.iter().map(|r| (r["dpop"].as_str().unwrap(), r["error"].as_str())).collect();
    assert_eq!(shape, [("proof", Some("use_dpop_nonce")), ("proof+nonce", None)], "{refreshes:?}");
    assert_eq!(stats(&provider).await["refresh_rotations"], 1);
    let all = seen(&server).await;
    assert_eq!(assert_well_proved(&all), key, "the second bridge proves with the first one's key");
    assert!(!second_stderr.contains(PKCS8_P256_PREFIX), "the key in the log:\n{second_stderr}");

    let secrets = get_json(&format!("{}/__test/secrets", provider.url)).await;
    for kind in ["access_tokens", "refresh_tokens", "codes"] {
        for t in secrets[kind].as_array().unwrap() {
            let t = t.as_str().unwrap();
            assert!(!first_stderr.contains(t) && !second_stderr.contains(t), "a {kind} value in the log");
        }
    }
}

/// `--issuer`: the authorization server is given, not discovered, and the server's resource
/// metadata still says whether it takes DPoP-bound tokens only. Here it does: the first sign-in
/// binds (the code redeemed with a proof), and every request is proved — one sign-in, no refresh,
/// no refusal. (Read without the metadata, the sign-in would end Bearer, the server refuse it.)
#[tokio::test]
async fn with_an_issuer_the_first_sign_in_is_dpop_bound_where_the_servers_resource_metadata_asks() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &["--dpop"]).await;
    let (store, count) = store("dpop-issuer");
    let mut b = bridge(&server.url, &["--issuer", &provider.url], &store, &browser(&count, true)).await;
    b.initialize().await;
    let who: Value = serde_json::from_str(&b.call_text("whoami", json!({})).await).unwrap();
    assert_eq!(who["aud"], server.url, "{who}");
    assert_eq!(b.call_text("echo", json!({"message": "x"})).await, "Echo: x");
    let stderr = b.close().await;
    assert_eq!(opened(&count), 1, "one sign-in:\n{stderr}");
    let codes = token_requests(&provider, "authorization_code").await;
    assert_eq!(codes.len(), 1, "{codes:?}");
    assert_eq!(codes[0]["dpop"], "proof", "the code redeemed with a proof: {codes:?}");
    assert!(token_requests(&provider, "refresh_token").await.is_empty());
    let seen = seen(&server).await;
    assert_well_proved(&seen);
    assert!(seen.iter().all(|e| e["accepted"] == true), "{seen:?}");
    assert!(stderr.contains("dpop=true"), "{stderr}");
}

/// A Bearer token in the store, and a server that now takes DPoP-bound tokens only: its `DPoP`
/// challenge is answered with a new sign-in with a key — not with a refresh, which would bring
/// another Bearer token, spend the rotating refresh token, and fail every request alike.
#[tokio::test]
async fn a_stored_bearer_token_refused_with_a_dpop_challenge_is_replaced_by_a_bound_sign_in_not_refreshed() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("dpop-rebind");
    let mut b = bridge(&server.url, &[], &store, &browser(&count, true)).await;
    b.initialize().await;
    assert!(b.call_text("whoami", json!({})).await.contains(&server.url));
    b.close().await;
    assert!(seen(&server).await.iter().all(|e| e["scheme"] == "Bearer" && e["accepted"] == true));

    post(&format!("{}/__test/dpop?on=1", base(&server))).await;
    post(&format!("{}/__test/reset", base(&server))).await;
    let mut b = bridge(&server.url, &[], &store, &browser(&count, true)).await;
    b.initialize().await;
    let who: Value = serde_json::from_str(&b.call_text("whoami", json!({})).await).unwrap();
    assert_eq!(who["aud"], server.url, "{who}");
    for i in 0..3 {
        assert_eq!(b.call_text("echo", json!({"message": i.to_string()})).await, format!("Echo: {i}"));
    }
    let stderr = b.close().await;
    assert_eq!(opened(&count), 2, "one new sign-in:\n{stderr}");
    let codes = token_requests(&provider, "authorization_code").await;
    let proofs: Vec<&str> = codes.iter().map(|r| r["dpop"].as_str().unwrap()).collect();
    assert_eq!(proofs, ["none", "proof"], "Bearer first, then with a key: {codes:?}");
    assert!(token_requests(&provider, "refresh_token").await.is_empty(), "no refresh token spent");
    let seen = seen(&server).await;
    assert_eq!((seen[0]["scheme"].as_str(), seen[0]["status"].as_u64()), (Some("Bearer"), Some(401)), "{seen:?}");
    assert_well_proved(&seen[1..]);
    assert!(seen[1..].iter().all(|e| e["accepted"] == true), "{seen:?}");
}

/// The new sign-in for a `DPoP` challenge is tried once: where the authorization server will not
/// bind (it takes no proofs), the refusal reaches the client, and the next requests do not open
/// the browser again.
#[tokio::test]
async fn the_sign_in_for_a_dpop_challenge_is_tried_once_where_the_authorization_server_does_not_bind() {
    let provider = idp(&["--no-dpop"], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("dpop-rebind-once");
    let mut b = bridge(&server.url, &[], &store, &browser(&count, true)).await;
    b.initialize().await;
    b.close().await;
    post(&format!("{}/__test/dpop?on=1", base(&server))).await;
    let mut b = bridge(&server.url, &[], &store, &browser(&count, true)).await;
    for i in 0..3 {
        let r = b
            .request(
                "initialize",
                json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}),
            )
            .await;
        let why = if i == 0 {
            "issued a Bearer token where DPoP-bound tokens are required"
        } else {
            "a sign-in with a DPoP key at the authorization server"
        };
        assert!(r["error"]["message"].as_str().is_some_and(|m| m.contains(why)), "{i}: {r}");
    }
    let stderr = b.close().await;
    assert_eq!(opened(&count), 2, "one sign-in for the challenge, not one per request:\n{stderr}");
    let codes = token_requests(&provider, "authorization_code").await;
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert_eq!(codes[1]["dpop"], "proof", "the sign-in for the challenge came with a key: {codes:?}");
    // The server takes no Bearer token: no refresh token is spent on another one.
    assert!(token_requests(&provider, "refresh_token").await.is_empty());
}

/// A client behind `mcpgate connect` with no credential of mcpgate's holds a DPoP-bound token of
/// its own: its `Authorization` and its proof reach the server together on every request, those
/// of an open session (the direct path) included. Where mcpgate supplies the credential, neither
/// of the client's goes: mcpgate's token goes with mcpgate's proof, alone.
#[tokio::test]
async fn connect_passes_a_clients_own_dpop_proof_with_its_token_and_neither_beside_its_own_credential() {
    use mcpgate::oauth_client::dpop::Key;
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &["--dpop"]).await;

    // The client's own bound token, from the provider's token endpoint.
    let key = Key::generate().unwrap();
    let token_endpoint = format!("{}/token", provider.url);
    let proof = key.proof("POST", &token_endpoint, None, None).unwrap();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "mcpgate-m2m:m2m-secret")
    );
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("resource", &server.url)
        .finish();
    let r = request(
        "POST",
        &token_endpoint,
        &[("content-type", "application/x-www-form-urlencoded"), ("authorization", &basic), ("dpop", &proof)],
        &form,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let issued: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(issued["token_type"], "DPoP", "{issued}");
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let authorization = format!("DPoP {token}");
    // A fresh proof of a POST to the server for each request (the server refuses a jti twice).
    let prove = || key.proof("POST", &server.url, None, Some(&token)).unwrap();

    let exchange = |gw: String| {
        let (authorization, prove) = (authorization.clone(), &prove);
        async move {
            let p = prove();
            let own = [("authorization", authorization.as_str()), ("dpop", p.as_str())];
            let mut h = MCP_HEADERS.to_vec();
            h.extend_from_slice(&own);
            let r = request("POST", &gw, &h, INITIALIZE).await;
            assert_eq!(r.status, 200, "initialize: {}", r.body);
            let sid = r.header("mcp-session-id").expect("a session id").to_owned();
            let p = prove();
            let own = [("authorization", authorization.as_str()), ("dpop", p.as_str())];
            let r = call(&gw, &sid, &own, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
            assert_eq!(r.status, 202, "initialized, in the session: {}", r.body);
            for id in 2..5 {
                let p = prove();
                let own = [("authorization", authorization.as_str()), ("dpop", p.as_str())];
                let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);
                let r = call(&gw, &sid, &own, &body).await;
                assert_eq!(r.status, 200, "tools/list, in the session: {}", r.body);
                assert!(r.body.contains("whoami"), "{}", r.body);
            }
        }
    };

    // No credential of mcpgate's: the client's token and proof go through, together.
    let gw = connect(&server.url, &[]).await;
    exchange(gw.url.clone()).await;
    let seen_own = seen(&server).await;
    assert_eq!(seen_own.len(), 5, "{seen_own:?}");
    assert_eq!(assert_well_proved(&seen_own), key.thumbprint(), "the client's own key");
    assert!(seen_own.iter().all(|e| e["accepted"] == true), "{seen_own:?}");

    // mcpgate's credential (bound: both servers ask): the client's token and proof stay behind.
    post(&format!("{}/__test/reset", base(&server))).await;
    let dir = tempdir("dpop-connect-own");
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["connect", &server.url, "--listen", "127.0.0.1:0"])
        .args(M2M)
        .env("OIDC_CLIENT_SECRET", "m2m-secret")
        .env("MCPGATE_STORE_DIR", dir.join("store"));
    let gw = Proc::start("mcpgate connect", cmd).await;
    exchange(gw.url.clone()).await;
    let seen_theirs = seen(&server).await;
    assert!(seen_theirs.len() >= 5, "{seen_theirs:?}");
    let mcpgate_key = assert_well_proved(&seen_theirs);
    assert_ne!(mcpgate_key, key.thumbprint(), "mcpgate's own key, not the client's");
    assert!(
        seen_theirs.iter().all(|e| e["accepted"] == true && e["cnf_jkt"] == mcpgate_key.as_str()),
        "{seen_theirs:?}"
    );
}

/// A refresh that comes back Bearer for a DPoP-bound credential (an authorization server that
/// stopped binding) is refused, not stored: the credential is not silently downgraded to a token
/// anyone who sees it can replay, and no Bearer token reaches the server.
#[tokio::test]
async fn a_bound_credentials_refresh_that_comes_back_bearer_is_refused() {
    let provider = idp(&[], 6).await;
    let server = protected(&provider.url, &["--dpop"]).await;
    let (store, count) = store("dpop-no-downgrade");
    let args = ["--client-id", "mcpgate-confidential", "-v"];
    let env = [("OIDC_CLIENT_SECRET", "test-secret")];
    let mut b = Bridge::start_with_env(&server.url, &args, &store, &browser(&count, true), &env).await;
    b.initialize().await;
    assert!(b.call_text("whoami", json!({})).await.contains(&server.url));
    b.close().await;
    let codes = token_requests(&provider, "authorization_code").await;
    assert_eq!(codes[0]["dpop"], "proof", "{codes:?}");

    // The provider no longer sees proofs; the access token has expired: the next bridge refreshes.
    post(&format!("{}/__test/strip-dpop", provider.url)).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    // (A sign-in would fail: no browser, and soon.)
    let args = [&args[..], &["--login-timeout", "3s"]].concat();
    let mut b = Bridge::start_with_env(&server.url, &args, &store, &browser(&count, false), &env).await;
    let r = b
        .request(
            "initialize",
            json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}),
        )
        .await;
    let stderr = b.close().await;
    assert!(
        r["error"]["message"].as_str().is_some_and(|m| m.contains(
            "issued a Bearer token where DPoP-bound tokens are required (the credential it renews is DPoP-bound)"
        )),
        "{r}\n{stderr}"
    );
    let refreshes = token_requests(&provider, "refresh_token").await;
    assert_eq!(refreshes.len(), 1, "{refreshes:?}");
    assert_eq!((refreshes[0]["dpop"].as_str(), refreshes[0]["error"].as_str()), (Some("none"), None), "{refreshes:?}");
    let seen = seen(&server).await;
    assert!(seen.iter().all(|e| e["scheme"] == "DPoP"), "no Bearer token reached the server: {seen:?}");
}

/// Where the server requires DPoP-bound tokens and the authorization server takes proofs in other
/// algorithms only, the default mode stops with a message naming what is missing (ES256), rather
/// than take a Bearer token the server refuses.
#[tokio::test]
async fn the_default_mode_names_the_missing_algorithm_where_the_server_requires_dpop() {
    let provider = idp(&["--dpop-algs", "EdDSA"], 3600).await;
    let server = protected(&provider.url, &["--dpop"]).await;
    let (store, count) = store("dpop-no-es256");
    let (ok, stderr) = stdio_alone(&server.url, &M2M, &store, &count, &[("OIDC_CLIENT_SECRET", "m2m-secret")]).await;
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("requires DPoP-bound tokens (dpop_bound_access_tokens_required"), "{stderr}");
    assert!(stderr.contains("does not take DPoP proofs in ES256"), "{stderr}");
    assert!(stderr.contains("dpop_signing_alg_values_supported: EdDSA"), "{stderr}");
    assert!(token_requests(&provider, "client_credentials").await.is_empty(), "no Bearer token asked for");
}

/// `--no-dpop` turns DPoP off for the stored credential too: a bound one is not used (its proofs
/// are what the flag turns off) — a new sign-in gets a Bearer token, and no proof is sent.
#[tokio::test]
async fn no_dpop_does_not_use_a_stored_bound_credential() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &["--dpop"]).await;
    let (store, count) = store("dpop-off-stored");
    let mut b = bridge(&server.url, &[], &store, &browser(&count, true)).await;
    b.initialize().await;
    assert!(b.call_text("whoami", json!({})).await.contains(&server.url));
    b.close().await;
    assert_well_proved(&seen(&server).await);

    post(&format!("{}/__test/dpop?on=0", base(&server))).await;
    post(&format!("{}/__test/reset", base(&server))).await;
    let mut b = bridge(&server.url, &["--no-dpop"], &store, &browser(&count, true)).await;
    b.initialize().await;
    assert!(b.call_text("whoami", json!({})).await.contains(&server.url));
    let stderr = b.close().await;
    assert_eq!(opened(&count), 2, "a new sign-in:\n{stderr}");
    let codes = token_requests(&provider, "authorization_code").await;
    assert_eq!(codes[1]["dpop"], "none", "{codes:?}");
    let seen = seen(&server).await;
    assert!(!seen.is_empty());
    for e in &seen {
        assert_eq!((e["scheme"].as_str(), e["accepted"].as_bool()), (Some("Bearer"), Some(true)), "{e}");
        assert!(!e["headers"].as_array().unwrap().contains(&json!("dpop")), "a proof sent: {e}");
    }
}
