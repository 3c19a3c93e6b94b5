//! Progress: a call's progress notifications reach the client that made it, under its own
//! token, before its answer.

use serde_json::json;

use super::*;

/// The official SDK client's call with a progress token, on every route: its three steps come,
/// in order, then the answer.
#[tokio::test]
async fn progress_reaches_the_caller_on_every_route() {
    let m = Matrix::start("serve-progress", json!({}), json!({}), false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let prefix = route.prefix();
        let r = sdk_client_env(&m.url(route), &["progress", "close"], &[("MCP_TOOL_PREFIX", &prefix)]).await;
        let p: Vec<u64> = r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(p, [1, 2, 3], "{route}: {r}");
        assert!(r["progress"]["lastProgressAt"].as_u64() <= r["progress"]["resultAt"].as_u64(), "{route}: {r}");
        assert!(r["progress"]["text"].as_str().unwrap().contains("completed"), "{route}: {r}");
    })
    .await;
}
