//! `forwardClientToken`: a remote server that opts in gets the caller's own bearer token, and no
//! other server does. (A stdio child has no HTTP request to carry one.)

use serde_json::{Value, json};

use super::token_exchange::client_credentials;
use super::*;

/// The caller's own token goes to the server that opted in (`a`), and to no other (`b`, which
/// refuses the caller for want of a token, keeping its challenge; `c`, the same server as `a`
/// with the gateway's own client credentials) — merged on `/mcp` and alone on each server's own
/// endpoint.
#[tokio::test]
async fn the_callers_token_goes_only_where_allowed_on_every_remote_route() {
    use crate::idp::{idp, protected, seen};
    let provider = idp(&[], 3600).await;
    let a = protected(&provider.url, &[]).await;
    let b = protected(&provider.url, &[]).await;
    let dir = tempdir("serve-refusals");
    let config = dir.join("mcpgate.json");
    let m2m =
        json!({"oauth": {"clientId": "mcpgate-m2m", "clientSecret": "m2m-secret", "grant": "client-credentials"}});
    write_config(
        &config,
        json!({"a": {"url": a.url, "forwardClientToken": true}, "b": {"url": b.url}, "c": {"url": a.url, "auth": m2m}}),
    );
    let gw = serve(&config).await;
    // The caller's token, for a (client credentials at the provider).
    let m2m_client = ("mcpgate-m2m", "m2m-secret");
    let bearer = format!("Bearer {}", client_credentials(&provider, m2m_client, &a.url, "mcp:tools").await);
    let sid = open_session(&gw.url, &[("authorization", &bearer)]).await;
    // What a client says about itself in headers never reaches a server (the gateway builds each
    // upstream request itself): forwarding and identity headers, in any spelling.
    let spoofed: &[(&str, &str)] = &[
        ("authorization", &bearer),
        ("x-forwarded-for", "10.0.0.1"),
        ("x_forwarded_user", "admin"),
        ("forwarded", "for=10.0.0.1"),
        ("x-real-ip", "10.0.0.1"),
        ("x-auth-request-email", "admin@example.com"),
        ("remote-user", "admin"),
        ("x-user", "admin"),
    ];
    let r = call(
        &gw.url,
        &sid,
        spoofed,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a__whoami","arguments":{}}}"#,
    )
    .await
    .message();
    let who: Value = serde_json::from_str(
        r["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{r}\n{}", gw.output())),
    )
    .unwrap();
    assert_eq!((who["aud"].as_str(), who["client_id"].as_str()), (Some(a.url.as_str()), Some("mcpgate-m2m")));
    let r = call(
        &gw.url,
        &sid,
        &[("authorization", &bearer)],
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"b__whoami","arguments":{}}}"#,
    )
    .await
    .message();
    assert_eq!(r["error"]["code"], -32004, "{r}");
    assert_eq!(r["error"]["data"]["status"], 401, "{r}");
    assert!(r["error"]["data"]["wwwAuthenticate"].as_str().unwrap().contains("resource_metadata"), "{r}");
    assert!(seen(&b).await.is_empty(), "b never saw the caller's token: {:?}", seen(&b).await);
    // c: the same server, with the gateway's own client credentials instead.
    let r = call(
        &gw.url,
        &sid,
        &[],
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"c__whoami","arguments":{}}}"#,
    )
    .await
    .message();
    let who: Value = serde_json::from_str(
        r["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{r}\n{}", gw.output())),
    )
    .unwrap();
    assert_eq!(who["client_id"], "mcpgate-m2m");
    // b's own endpoint: its 401 and challenge as they were.
    let one = gw.url.replace("/mcp", "/servers/b/mcp");
    let sid = open_session(&one, &[]).await;
    let r = call(&one, &sid, &[], r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let challenge = r.header("www-authenticate").expect("the challenge");
    assert!(challenge.contains("resource_metadata") && challenge.contains(&b.url.replace("/mcp", "")), "{challenge}");
    // Alone: a's own endpoint takes the caller's token to a (its messages forwarded as they
    // came); b's does not, and b answers as it answers anyone without a token.
    let alone = gw.url.replace("/mcp", "/servers/a/mcp");
    let sid = open_session(&alone, &[("authorization", &bearer)]).await;
    let r = call(
        &alone,
        &sid,
        spoofed,
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
    )
    .await;
    let m = r.message();
    let who: Value = serde_json::from_str(
        m["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("a alone: {}\n{}", r.body, gw.output())),
    )
    .unwrap();
    assert_eq!((who["aud"].as_str(), who["client_id"].as_str()), (Some(a.url.as_str()), Some("mcpgate-m2m")));
    let names: Vec<String> = seen(&a)
        .await
        .iter()
        .flat_map(|e| e["headers"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| h.as_str().map(str::to_owned))
        .collect();
    assert!(!names.is_empty() && names.contains(&"authorization".to_owned()), "{names:?}");
    for (name, _) in &spoofed[1..] {
        assert!(
            !names.iter().any(|n| n.replace('_', "-") == name.replace('_', "-")),
            "{name} reached the server: {names:?}"
        );
    }
    let alone = gw.url.replace("/mcp", "/servers/b/mcp");
    let sid = open_session(&alone, &[("authorization", &bearer)]).await;
    let r = call(
        &alone,
        &sid,
        &[("authorization", &bearer)],
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
    )
    .await;
    assert_eq!(r.status, 401, "b alone: {}", r.body);
    assert!(seen(&b).await.is_empty(), "b alone never saw the caller's token: {:?}", seen(&b).await);

    // 2026-07-28 callers: each one's own token reaches a (merged and alone) — two callers with
    // different tokens never share an upstream session, so neither is sent the other's.
    let other = format!("Bearer {}", client_credentials(&provider, m2m_client, &a.url, "mcp:admin").await);
    for (url, tool) in [(gw.url.clone(), "a__whoami"), (gw.url.replace("/mcp", "/servers/a/mcp"), "whoami")] {
        for (token, scope) in [(&bearer, None), (&other, Some("mcp:admin")), (&bearer, None)] {
            let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
            let body = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": tool, "arguments": {}, "_meta": meta}});
            let mut h = MCP_HEADERS.to_vec();
            h.extend([
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", tool),
                ("authorization", token.as_str()),
            ]);
            let r = request("POST", &url, &h, &body.to_string()).await.message();
            let who: Value = serde_json::from_str(
                r["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap_or_else(|| panic!("modern {url}: {r}\n{}", gw.output())),
            )
            .unwrap();
            assert_eq!(who["aud"].as_str(), Some(a.url.as_str()), "modern {url}: {who}");
            let has_admin = who["scope"].as_str().is_some_and(|s| s.contains("mcp:admin"));
            assert_eq!(has_admin, scope.is_some(), "modern {url}: each caller's own token: {who}");
        }
    }
}
