//! A remote server's refusal (401, with its `WWW-Authenticate` challenge) reaches the client as
//! a refusal keeping the challenge, never as an empty success: on the server's own endpoint as
//! the HTTP status and header it sent, merged as a JSON-RPC error carrying both. (A stdio child
//! speaks no HTTP: it has no status or challenge to refuse with.)

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::idp::until;

/// A protected server (its tokens from an OpenID provider) that the gateway has no credential
/// for, alone and merged: listing and calling it are refused with its challenge.
#[tokio::test]
async fn a_refusal_keeps_its_challenge_on_every_remote_route() {
    use crate::idp::{idp, protected};
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let dir = tempdir("serve-refusal");
    let config = dir.join("mcpgate.json");
    write_config(&config, json!({"remote": {"url": server.url}, "local": echo_server(&dir)}));
    let gw = serve(&config).await;
    // `remote` never gets ready (it refuses the gateway too); `local` does.
    let readyz = format!("{}/readyz", base(&gw.url));
    let local = until(Duration::from_secs(30), || async {
        request("GET", &readyz, &[], "").await.json()["servers"]["local"]["status"] == "ready"
    });
    assert!(local.await, "{}", gw.output());
    let resource = server.url.replace("/mcp", "");
    let ctx = Arc::new((gw, server, provider, resource));
    on_routes(&ctx, &REMOTE, |ctx, route| async move {
        let (gw, resource) = (&ctx.0, &ctx.3);
        let url = route.url(&gw.url);
        let sid = open_session(&url, &[]).await;
        let whoami = tool_call(json!(2), &route.name("whoami"), json!({}));
        if route.lone() {
            for body in [r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#, whoami.as_str()] {
                let r = call(&url, &sid, &[], body).await;
                assert_eq!(r.status, 401, "{route}: {body}: {}", r.body);
                let challenge = r.header("www-authenticate").expect("the challenge");
                assert!(
                    challenge.contains("resource_metadata") && challenge.contains(resource.as_str()),
                    "{route}: {challenge}"
                );
            }
        } else {
            let r = call(&url, &sid, &[], &whoami).await.message();
            assert_eq!(r["error"]["code"], -32004, "{route}: {r}");
            assert_eq!(r["error"]["data"]["status"], 401, "{route}: {r}");
            let challenge = r["error"]["data"]["wwwAuthenticate"].as_str().unwrap_or_default();
            assert!(challenge.contains("resource_metadata") && challenge.contains(resource.as_str()), "{route}: {r}");
            // The other server serves.
            let r = call_text(&url, &sid, "local__echo", json!({"message": "still"})).await;
            assert_eq!(text_of(&r), "Echo: still", "{route}: {r}");
        }
    })
    .await;
}
