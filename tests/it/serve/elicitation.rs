//! Server→client requests (elicitation, sampling) during a call reach the client that made the
//! call, and its answers go back to the server that asked.

use serde_json::json;

use super::*;

/// The official SDK client, on every route: an elicitation and a sampling request during a
/// call, each answered, each answer reaching the server's result.
#[tokio::test]
async fn elicitation_and_sampling_reach_the_caller_on_every_route() {
    let m = Matrix::start("serve-elicitation", json!({}), json!({}), false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let prefix = route.prefix();
        let r = sdk_client_env(&m.url(route), &["elicit", "sampling", "close"], &[("MCP_TOOL_PREFIX", &prefix)]).await;
        assert_eq!(r["elicit"]["asked"], 1, "{route}: {r}");
        assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"), "{route}: {r}");
        assert!(r["sampling"].as_str().unwrap().contains("sampled by the test client"), "{route}: {r}");
    })
    .await;
}

/// Two clients at once, their elicitations in flight together (each answers after 500 ms): each
/// reaches the client whose call caused it — on a per-client SSE upstream session, and on a
/// stateful stdio server (a child per client) — and each client sees only its own progress, also
/// through a stdio child shared by both (progress tokens are the gateway's there).
#[tokio::test]
async fn two_clients_get_their_own_elicitations_and_progress() {
    let dir = tempdir("serve-two-clients-mine");
    let mut mine = stdio_everything(&dir);
    mine["stateful"] = json!(true);
    let t = three("serve-two-clients", json!({"mine": mine})).await;
    for (prefix, steps) in [
        ("mine__", &["progress", "elicit", "close"][..]),
        ("legacy__", &["progress", "elicit", "close"][..]),
        ("local__", &["progress", "close"][..]),
    ] {
        let env = |name| [("MCP_TOOL_PREFIX", prefix), ("MCP_ELICIT_NAME", name), ("MCP_ELICIT_DELAY_MS", "500")];
        let (env_a, env_b) = (env("Alice"), env("Bob"));
        let (a, b) = tokio::join!(sdk_client_env(&t.gw.url, steps, &env_a), sdk_client_env(&t.gw.url, steps, &env_b));
        for (r, name) in [(&a, "Alice"), (&b, "Bob")] {
            if steps.contains(&"elicit") {
                assert_eq!(r["elicit"]["asked"], 1, "{prefix}{name}: {r}");
                let text = r["elicit"]["text"].as_str().unwrap();
                assert!(text.contains(name), "{prefix}: {name}'s call got {text}");
            }
            let p: Vec<u64> =
                r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            assert_eq!(p, [1, 2, 3], "{prefix}{name}: progress of its own call only: {r}");
        }
    }
}
