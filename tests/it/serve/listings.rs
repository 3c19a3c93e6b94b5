//! Listings: what a client is offered — the tools a server offers to clients that can answer
//! its requests; names the spec does not allow left out, and said so once.

use std::time::Duration;

use serde_json::json;

use super::*;

/// Names the spec does not allow (here: longer than 128 characters once prefixed) are left out
/// of the listing and reported in the log when the server comes up, not at every listing.
#[tokio::test]
async fn names_that_cannot_be_offered_are_reported_at_load() {
    let dir = tempdir("serve-names");
    let mut local = stdio_everything(&dir);
    let prefix = "p".repeat(110);
    local["prefix"] = json!(prefix);
    let config = dir.join("mcpgate.json");
    write_config(&config, json!({"local": local}));
    let gw = serve(&config).await;
    let reported = crate::harness::eventually(Duration::from_secs(20), || {
        gw.output().lines().any(|l| l.contains("is not a valid name") && l.contains("__trigger-long-running-operation"))
    })
    .await;
    assert!(reported, "the name is given: {}", gw.output());
    let sid = open_session(&gw.url, &[]).await;
    let names = tool_names(&gw.url, &sid).await;
    assert!(names.contains(&format!("{prefix}__echo")), "{names:?}");
    assert!(names.iter().all(|n| n.len() <= 128), "{names:?}");
}

/// server-everything offers its tools that ask the client something (`trigger-elicitation-request`,
/// `trigger-sampling-request`) only to a client that declared it can answer. A client that
/// declares both (as the SDK client does) finds them in its listing on every route — and can call
/// them there, which elicitation.rs shows.
#[tokio::test]
async fn tools_for_clients_that_answer_requests_are_listed_on_every_route() {
    let m = Matrix::start("serve-listing-capabilities", json!({}), json!({}), false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let url = m.url(route);
        let sid = session(&url).await;
        let names = tool_names(&url, &sid).await;
        for tool in ["trigger-elicitation-request", "trigger-sampling-request"] {
            assert!(names.contains(&route.name(tool)), "{route}: {} missing from {names:?}", route.name(tool));
        }
    })
    .await;
}

/// Two clients that declared different capabilities see the tools the server offers each, as
/// it would direct: a client that declared nothing is not offered server-everything's tools that
/// would ask it something; one that declared elicitation, sampling and roots is. Where the server
/// is a stdio child shared by every client, it was told what any client may answer, so it lists
/// them for both, and the client that cannot answer is told so when a call asks it
/// (client_caps.rs); a `"stateful"` child is the client's own, told what its client declared.
#[tokio::test]
async fn clients_that_declared_different_capabilities_see_what_the_server_offers_each() {
    let m = Matrix::start("serve-listing-per-client", json!({"stateful": true}), json!({}), false).await;
    let direct_url = m.remote.lock().await.url.clone();
    let ctx = Arc::new((m, direct_url));
    on_routes(&ctx, &ROUTES, |ctx, route| async move {
        let (m, direct_url) = (&ctx.0, &ctx.1);
        let url = m.url(route);
        let asking = ["trigger-elicitation-request", "trigger-sampling-request", "get-roots-list"];
        // Direct, and through the route: the same offer for each client.
        let bare = open_session(&url, &[]).await;
        let all = session(&url).await;
        let (bare_direct, all_direct) = (open_session(direct_url, &[]).await, session(direct_url).await);
        let offered = |names: &[String]| -> Vec<String> {
            asking.iter().filter(|t| names.contains(&route.name(t))).map(|t| (*t).to_owned()).collect()
        };
        let direct = |names: Vec<String>| -> Vec<String> {
            asking.iter().filter(|t| names.iter().any(|n| n == *t)).map(|t| (*t).to_owned()).collect()
        };
        let want_bare = direct(tool_names(direct_url, &bare_direct).await);
        let want_all = direct(tool_names(direct_url, &all_direct).await);
        assert!(want_bare.is_empty() && want_all.len() == 3, "direct: {want_bare:?} / {want_all:?}");
        assert_eq!(offered(&tool_names(&url, &all).await), want_all, "{route}: a client that declared all");
        assert_eq!(offered(&tool_names(&url, &bare).await), want_bare, "{route}: a client that declared nothing");
    })
    .await;
}

/// One server's own endpoint is that server as it is: a listing or `logging/setLevel` it does
/// not offer is its own error (code and message), where the merged endpoint lists nothing and
/// answers `logging/setLevel` itself — for a stdio server and for a remote one (the same server
/// behind a second gateway's own endpoint, which must pass it on unchanged in turn).
#[tokio::test]
async fn one_servers_endpoint_answers_what_it_lacks_as_the_server_does() {
    let dir = tempdir("serve-as-it-is");
    let inner_dir = dir.join("inner");
    std::fs::create_dir_all(&inner_dir).unwrap();
    let inner = serve_ready(&inner_dir, json!({"echo": echo_server(&dir)})).await;
    let echo_url = format!("{}/servers/echo/mcp", base(&inner.url));
    let gw = serve_ready(&dir, json!({"local": echo_server(&dir), "remote": {"url": echo_url}})).await;
    let lacking = [
        ("prompts/list", r#"{"jsonrpc":"2.0","id":3,"method":"prompts/list"}"#),
        ("resources/list", r#"{"jsonrpc":"2.0","id":3,"method":"resources/list"}"#),
        ("resources/templates/list", r#"{"jsonrpc":"2.0","id":3,"method":"resources/templates/list"}"#),
        ("logging/setLevel", r#"{"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"debug"}}"#),
    ];
    for server in ["local", "remote"] {
        let url = format!("{}/servers/{server}/mcp", base(&gw.url));
        let sid = open_session(&url, &[]).await;
        for (method, body) in lacking {
            let m = call(&url, &sid, &[], body).await.message();
            assert_eq!(m["error"]["code"], -32601, "{server} {method}: {m}\n{}", gw.output());
            assert_eq!(m["error"]["message"], format!("no {method}"), "{server} {method}: {m}");
            assert_eq!(m["id"], 3, "{server} {method}: {m}");
        }
    }
    // The merged endpoint offers what any server offers: nothing here, and no error.
    let sid = open_session(&gw.url, &[]).await;
    for (method, body) in lacking {
        let m = call(&gw.url, &sid, &[], body).await.message();
        assert!(m["result"].is_object(), "/mcp {method}: {m}");
    }
}
