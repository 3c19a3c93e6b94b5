//! `"auth": {"tokenExchange": …}` (RFC 8693): each caller reaches a remote server as themselves —
//! the caller's token, exchanged by the gateway at the issuer's token endpoint for one addressed
//! to that server — never with the caller's own token and never with one shared by all. One
//! exchange per caller while the exchanged token lasts. The issuer is the certified OpenID
//! provider of the tests (tests/fixtures/oidc-provider.mjs, with its token-exchange grant); the
//! server is its protected server, which says whose token it was shown (`whoami`).

use serde_json::{Value, json};

use super::auth_jwt::bearer;
use super::*;
use crate::idp::{idp, protected, seen, stats};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// A client-credentials token for `resource` with `scope` (its `sub` is the client).
pub(super) async fn client_credentials(
    provider: &Proc,
    (client, secret): (&str, &str),
    resource: &str,
    scope: &str,
) -> String {
    let form = format!(
        "grant_type=client_credentials&scope={scope}&resource={}",
        form_urlencoded::byte_serialize(resource.as_bytes()).collect::<String>()
    );
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{client}:{secret}"))
    );
    let h = [("content-type", "application/x-www-form-urlencoded"), ("authorization", basic.as_str())];
    let r = request("POST", &format!("{}/token", provider.url), &h, &form).await;
    r.json()["access_token"].as_str().unwrap_or_else(|| panic!("{}", r.body)).to_owned()
}

/// A second machine client, registered at the provider (RFC 7591), for a second user.
async fn register(provider: &Proc) -> (String, String) {
    let body = json!({"grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
                      "token_endpoint_auth_method": "client_secret_basic", "scope": "mcp:tools"});
    let r =
        request("POST", &format!("{}/reg", provider.url), &[("content-type", "application/json")], &body.to_string())
            .await;
    let c = r.json();
    (
        c["client_id"].as_str().unwrap_or_else(|| panic!("{}", r.body)).to_owned(),
        c["client_secret"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn each_caller_reaches_the_server_as_themselves_on_every_route() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let dir = tempdir("serve-token-exchange");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let exchange = json!({"tokenExchange": {"issuer": provider.url, "clientId": "mcpgate-exchange", "clientSecret": "exchange-secret"}});
    let cfg = json!({
        "mcpgate": {"auth": {"mode": "jwt", "issuer": provider.url, "publicUrl": public}},
        "mcpServers": {"local": stdio_everything(&dir), "remote": {"url": server.url, "auth": exchange}}
    });
    let config = dir.join("mcpgate.json");
    std::fs::write(&config, cfg.to_string()).unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", &format!("127.0.0.1:{port}"), "-v"]);
    let gw = Proc::start("mcpgate serve", cmd).await;
    ready(&gw).await;

    let alice = client_credentials(&provider, ("mcpgate-m2m", "m2m-secret"), &public, "mcp:tools").await;
    let (bob_id, bob_secret) = register(&provider).await;
    let bob = client_credentials(&provider, (&bob_id, &bob_secret), &public, "mcp:tools").await;
    let sub_of = |t: &str| -> String {
        let payload = t.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
        )
        .unwrap();
        claims["sub"].as_str().unwrap().to_owned()
    };
    assert_ne!(sub_of(&alice), sub_of(&bob));

    for (path, tool) in [("/mcp", "remote__whoami"), ("/servers/remote/mcp", "whoami")] {
        let url = format!("{public}{path}");
        for user in [&alice, &bob] {
            let auth = bearer(user);
            let sid = open_session(&url, &[("authorization", &auth)]).await;
            // The listing too is the caller's own (fetched with their exchanged token).
            let list =
                call(&url, &sid, &[("authorization", &auth)], r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
                    .await
                    .message();
            assert!(
                list["result"]["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == tool)),
                "{path}: {list}\n{}",
                gw.output()
            );
            for id in 2..4 {
                let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}});
                let r = call(&url, &sid, &[("authorization", &auth)], &body.to_string()).await.message();
                let text = r["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{path}: {r}\n{}", gw.output()));
                let who: Value = serde_json::from_str(text).unwrap();
                assert_eq!(
                    who["sub"].as_str(),
                    Some(sub_of(user).as_str()),
                    "{path}: the server sees the caller: {who}"
                );
                assert_eq!(who["aud"].as_str(), Some(server.url.as_str()), "{path}: a token for the server: {who}");
                assert_eq!(who["client_id"].as_str(), Some("mcpgate-exchange"), "{path}: made by the gateway: {who}");
            }
        }
    }
    // 2026-07-28 callers alike: each reaches the server as themselves (one upstream session per
    // user, carrying their token), on both routes, listings included.
    for (path, tool) in [("/mcp", "remote__whoami"), ("/servers/remote/mcp", "whoami")] {
        let url = format!("{public}{path}");
        for user in [&alice, &bob] {
            let auth = bearer(user);
            let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
            let mut h = MCP_HEADERS.to_vec();
            h.extend([("mcp-protocol-version", "2026-07-28"), ("authorization", auth.as_str())]);
            let mut list_h = h.clone();
            list_h.push(("mcp-method", "tools/list"));
            let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}});
            let r = request("POST", &url, &list_h, &list.to_string()).await.message();
            assert!(
                r["result"]["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == tool)),
                "{path}: {r}\n{}",
                gw.output()
            );
            let mut call_h = h.clone();
            call_h.extend([("mcp-method", "tools/call"), ("mcp-name", tool)]);
            let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": {}, "_meta": meta}});
            let r = request("POST", &url, &call_h, &body.to_string()).await.message();
            let text = r["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_else(|| panic!("modern {path}: {r}\n{}", gw.output()));
            let who: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                who["sub"].as_str(),
                Some(sub_of(user).as_str()),
                "modern {path}: the server sees the caller: {who}"
            );
            assert_eq!(who["client_id"].as_str(), Some("mcpgate-exchange"), "modern {path}: {who}");
        }
    }

    // Never the caller's own token; one exchange per caller (kept while it lasts).
    let shown = seen(&server).await;
    assert!(!shown.is_empty());
    for t in shown {
        assert_ne!(t["aud"].as_str(), Some(public.as_str()), "a caller's own token reached the server: {t}");
    }
    let s = stats(&provider).await;
    assert_eq!(s["token_requests_by_grant"][EXCHANGE], 2, "one exchange per caller: {s}");
    assert_eq!(s["token_errors_by_grant"][EXCHANGE], 0, "{s}");
    for t in [&alice, &bob] {
        assert!(!gw.output().contains(t.as_str()), "a token was logged");
    }
}
