//! DPoP-bound tokens (RFC 9449, SEP-1932) through `mcpgate stdio`: a certified OpenID provider
//! (`oidc-provider`, whose DPoP support binds tokens and checks refresh tokens against the key) as
//! the authorization server, and an MCP server on the official SDK that takes DPoP-bound tokens
//! only and checks every proof (tests/fixtures/protected-server.mjs `--dpop`): the signature
//! against the proof's key, `htm`, `htu`, `iat`, a `jti` never seen before, `ath`, the token's
//! `cnf.jkt`, and — where asked — its nonce. The bridge's key outlives it in the credential store,
//! sealed, and the refresh token bound to it is refreshed with it by the next bridge.

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
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(mcpgate_bin())
            .args(["stdio", &server.url, "--dpop", "-v"])
            .args(M2M)
            .env("OIDC_CLIENT_SECRET", "m2m-secret")
            .env("MCPGATE_STORE_DIR", &store)
            .env("MCPGATE_BROWSER", browser(&count, false))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
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

    // Stored sealed: the key's field name is not in any file's clear text.
    for entry in walk(&store).into_iter().filter(|p| p.is_file()) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        assert!(!text.contains("dpop_key") && !text.contains("PRIVATE KEY"), "{}: {text}", entry.display());
    }

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

    let secrets = get_json(&format!("{}/__test/secrets", provider.url)).await;
    for kind in ["access_tokens", "refresh_tokens", "codes"] {
        for t in secrets[kind].as_array().unwrap() {
            let t = t.as_str().unwrap();
            assert!(!first_stderr.contains(t) && !second_stderr.contains(t), "a {kind} value in the log");
        }
    }
}
