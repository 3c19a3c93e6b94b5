//! Harness for the JWT-validation tests: a small, controllable JWT issuer
//! (tests/fixtures/jwt-issuer.mjs) that mints honest and forged tokens, rotates its keys, takes its
//! JWKS endpoint down and counts the fetches; and the test that the fixture does what it says.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::harness::*;
use crate::idp::get_json;

/// Starts the JWT issuer on an ephemeral loopback port; `proc.url` is the issuer
/// (`http://127.0.0.1:PORT`, no trailing slash), its JWKS at `{url}/jwks`.
pub async fn jwt_issuer() -> Proc {
    let mut cmd = Command::new(node());
    cmd.arg(repo().join("tests/fixtures/jwt-issuer.mjs"));
    Proc::start("jwt issuer", cmd).await
}

/// POSTs `body` as JSON to the issuer's `path` and returns the JSON answer; panics unless 200.
async fn post_json(issuer: &Proc, path: &str, body: &Value) -> Value {
    let r =
        request("POST", &format!("{}{path}", issuer.url), &[("content-type", "application/json")], &body.to_string())
            .await;
    assert_eq!(r.status, 200, "POST {path} {body}: {}", r.body);
    r.json()
}

/// Mints a token (`POST /__test/mint`). `spec`: `{claims?, alg?, kid?, header?}`, e.g.
/// `json!({})` (RS256, iss = issuer, sub = alice, 300 s), `json!({"alg": "ES256"})`,
/// `json!({"claims": {"aud": "x", "exp": null}})` (null removes a claim), or a forgery: `alg`
/// `"none"`, `"HS256-public"`, `"bad-signature"`, `"foreign"` (see the fixture's header).
pub async fn mint(issuer: &Proc, spec: Value) -> String {
    let r = post_json(issuer, "/__test/mint", &spec).await;
    r["token"].as_str().unwrap_or_else(|| panic!("no token in {r}")).to_owned()
}

/// Rotates the keys (new kids); the JWKS keeps the earlier keys only if `keep`. Returns
/// `{"kids": {"RS256", "ES256", "EdDSA"}}`, the new kids.
pub async fn rotate(issuer: &Proc, keep: bool) -> Value {
    post_json(issuer, "/__test/rotate", &json!({ "keep": keep })).await
}

/// Takes the JWKS endpoint down (503) or brings it back up; discovery stays up.
pub async fn set_down(issuer: &Proc, down: bool) {
    post_json(issuer, if down { "/__test/down" } else { "/__test/up" }, &json!({})).await;
}

/// The delay before the JWKS endpoint answers (0: none), so that concurrent fetches overlap.
pub async fn set_jwks_delay(issuer: &Proc, ms: u64) {
    post_json(issuer, "/__test/config", &json!({ "jwksDelayMs": ms })).await;
}

/// The issuer's counters: `{"jwks_fetches", "discovery_fetches"}` (every JWKS request counts,
/// including those answered 503).
pub async fn issuer_stats(issuer: &Proc) -> Value {
    get_json(&format!("{}/__test/stats", issuer.url)).await
}

/// Zeroes the issuer's counters.
pub async fn reset_stats(issuer: &Proc) {
    post_json(issuer, "/__test/reset", &json!({})).await;
}

/// The current public key for `alg` ("RS256", "ES256" or "EdDSA") as SPKI PEM
/// (`-----BEGIN PUBLIC KEY-----`, no trailing newline): for RS256, exactly the HMAC secret of
/// "HS256-public" tokens.
pub async fn public_pem(issuer: &Proc, alg: &str) -> String {
    let r = request("GET", &format!("{}/__test/public-pem?alg={alg}", issuer.url), &[], "").await;
    assert_eq!(r.status, 200, "public-pem {alg}: {}", r.body);
    r.body
}

/// The current public JWK for `alg` ("RS256", "ES256" or "EdDSA"), with `kid`, `alg` and `use`.
pub async fn public_jwk(issuer: &Proc, alg: &str) -> Value {
    get_json(&format!("{}/__test/public-jwk?alg={alg}", issuer.url)).await
}

/// A compact token, decoded: (header, payload, signing input, signature bytes).
fn split(token: &str) -> (Value, Value, String, Vec<u8>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS: {token}");
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap_or_else(|e| panic!("base64url {s:?}: {e}"));
    let json = |s: &str| -> Value { serde_json::from_slice(&decode(s)).expect("a JSON part") };
    (json(parts[0]), json(parts[1]), format!("{}.{}", parts[0], parts[1]), decode(parts[2]))
}

fn b64(jwk: &Value, member: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(jwk[member].as_str().unwrap_or_else(|| panic!("{member} in {jwk}"))).unwrap()
}

/// Whether `token`'s signature verifies with the public `jwk` (RS256, ES256 or EdDSA), by `ring`.
fn verifies(token: &str, jwk: &Value) -> bool {
    let (_, _, input, sig) = split(token);
    let input = input.as_bytes();
    match jwk["alg"].as_str() {
        Some("RS256") => RsaPublicKeyComponents { n: b64(jwk, "n"), e: b64(jwk, "e") }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, &sig)
            .is_ok(),
        Some("ES256") => {
            let point = [&[4u8][..], &b64(jwk, "x"), &b64(jwk, "y")].concat();
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(input, &sig).is_ok()
        }
        Some("EdDSA") => UnparsedPublicKey::new(&signature::ED25519, b64(jwk, "x")).verify(input, &sig).is_ok(),
        other => panic!("no verifier for {other:?}"),
    }
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"].as_array().expect("keys").iter().map(|k| k["kid"].as_str().expect("a kid").to_owned()).collect()
}

#[tokio::test]
async fn fixture_mints_what_it_says() {
    let iss = jwt_issuer().await;
    let url = iss.url.clone();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with('/'), "{url}");

    // Discovery, both documents.
    for doc in ["openid-configuration", "oauth-authorization-server"] {
        let d = get_json(&format!("{url}/.well-known/{doc}")).await;
        assert_eq!(d["issuer"], url, "{d}");
        assert_eq!(d["jwks_uri"], format!("{url}/jwks"), "{d}");
        assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]), "{d}");
    }

    // The JWKS: one key per algorithm, distinct kids, each the one /__test/public-jwk names.
    let jwks = get_json(&format!("{url}/jwks")).await;
    let old = kids(&jwks);
    assert_eq!(old.len(), 3, "{jwks}");
    assert!(old[0] != old[1] && old[1] != old[2] && old[0] != old[2], "{jwks}");
    let mut jwk = std::collections::HashMap::new();
    for alg in ["RS256", "ES256", "EdDSA"] {
        let k = public_jwk(&iss, alg).await;
        assert_eq!(k["alg"], alg);
        assert_eq!(k["use"], "sig");
        assert!(jwks["keys"].as_array().unwrap().contains(&k), "{alg} {k} in {jwks}");
        jwk.insert(alg, k);
    }
    let rsa = &jwk["RS256"];

    // An RS256 token: header, claims, and a signature that verifies with the published key.
    let token = mint(&iss, json!({})).await;
    let (header, claims, _, _) = split(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], rsa["kid"]);
    assert_eq!(claims["iss"], url);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300, "{claims}");
    assert!(verifies(&token, rsa), "the RS256 token verifies");

    // ES256 and EdDSA tokens verify with their keys.
    for alg in ["ES256", "EdDSA"] {
        let t = mint(&iss, json!({ "alg": alg })).await;
        let (h, _, _, _) = split(&t);
        assert_eq!((&h["alg"], &h["kid"]), (&json!(alg), &jwk[alg]["kid"]));
        assert!(verifies(&t, &jwk[alg]), "the {alg} token verifies");
    }

    // Claims merged, null removes; header merged; kid overridden.
    let t = mint(
        &iss,
        json!({"claims": {"exp": null, "aud": "https://gw.example/mcp"}, "kid": "other", "header": {"typ": "at+jwt"}}),
    )
    .await;
    let (h, c, _, _) = split(&t);
    assert!(c.get("exp").is_none(), "{c}");
    assert_eq!(c["aud"], "https://gw.example/mcp");
    assert_eq!(c["sub"], "alice");
    assert_eq!((&h["kid"], &h["typ"]), (&json!("other"), &json!("at+jwt")));
    assert!(verifies(&t, rsa), "still signed by the RSA key");

    // Forgeries.
    let none = mint(&iss, json!({"alg": "none"})).await;
    assert!(none.ends_with('.'), "{none}");
    assert_eq!(split(&none).0, json!({"alg": "none", "typ": "JWT"}));

    let pem = public_pem(&iss, "RS256").await;
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    for alg in ["ES256", "EdDSA"] {
        assert!(public_pem(&iss, alg).await.starts_with("-----BEGIN PUBLIC KEY-----"));
    }
    let hs = mint(&iss, json!({"alg": "HS256-public"})).await;
    let (h, _, input, tag) = split(&hs);
    assert_eq!((&h["alg"], &h["kid"]), (&json!("HS256"), &rsa["kid"]));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, pem.as_bytes());
    assert!(ring::hmac::verify(&key, input.as_bytes(), &tag).is_ok(), "HMAC keyed with the served PEM");

    let bad = mint(&iss, json!({"alg": "bad-signature"})).await;
    let (h, c, _, _) = split(&bad);
    assert_eq!((&h["alg"], &h["kid"], &c["sub"]), (&json!("RS256"), &rsa["kid"], &json!("alice")));
    assert!(!verifies(&bad, rsa), "a flipped signature byte fails");

    let foreign = mint(&iss, json!({"alg": "foreign"})).await;
    let (h, _, _, _) = split(&foreign);
    assert_eq!((&h["alg"], &h["kid"]), (&json!("RS256"), &rsa["kid"]));
    assert!(!verifies(&foreign, rsa), "a foreign key's signature fails");

    // Rotation: every kid new, new tokens carry the new RSA kid and verify only with the new key.
    let rotated = rotate(&iss, false).await;
    let jwks = get_json(&format!("{url}/jwks")).await;
    let new = kids(&jwks);
    assert_eq!(new.len(), 3, "{jwks}");
    assert!(new.iter().all(|k| !old.contains(k)), "old {old:?}, new {new:?}");
    let new_rsa = public_jwk(&iss, "RS256").await;
    assert_eq!(rotated["kids"]["RS256"], new_rsa["kid"], "{rotated}");
    let t = mint(&iss, json!({})).await;
    assert_eq!(split(&t).0["kid"], new_rsa["kid"]);
    assert!(verifies(&t, &new_rsa) && !verifies(&t, rsa));
    rotate(&iss, true).await;
    let jwks = get_json(&format!("{url}/jwks")).await;
    let kept = kids(&jwks);
    assert_eq!(kept.len(), 6, "{jwks}");
    assert!(new.iter().all(|k| kept.contains(k)), "kept {kept:?} has {new:?}");

    // Down, counted; discovery stays up.
    reset_stats(&iss).await;
    assert_eq!(issuer_stats(&iss).await, json!({"jwks_fetches": 0, "discovery_fetches": 0}));
    set_down(&iss, true).await;
    assert_eq!(request("GET", &format!("{url}/jwks"), &[], "").await.status, 503);
    let r = request("GET", &format!("{url}/.well-known/openid-configuration"), &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(issuer_stats(&iss).await, json!({"jwks_fetches": 1, "discovery_fetches": 1}));
    set_down(&iss, false).await;
    assert_eq!(request("GET", &format!("{url}/jwks"), &[], "").await.status, 200);

    // The delay: two concurrent fetches overlap, both counted.
    set_jwks_delay(&iss, 1000).await;
    let started = Instant::now();
    let jwks_url = format!("{url}/jwks");
    let (a, b) = tokio::join!(request("GET", &jwks_url, &[], ""), request("GET", &jwks_url, &[], ""));
    let took = started.elapsed();
    assert_eq!((a.status, b.status), (200, 200));
    assert!(took >= Duration::from_millis(1000) && took < Duration::from_millis(1900), "{took:?}");
    assert_eq!(issuer_stats(&iss).await["jwks_fetches"], 4);
    set_jwks_delay(&iss, 0).await;

    // Anything else is 404.
    assert_eq!(request("GET", &format!("{url}/token"), &[], "").await.status, 404);
}
