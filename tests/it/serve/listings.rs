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
