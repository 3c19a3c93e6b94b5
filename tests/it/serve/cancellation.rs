//! Cancellation: a client's `notifications/cancelled` reaches the server running the call, under
//! the id the server knows it by, and the call ends at once; the server goes on serving.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

/// On every route: a 20-second call, cancelled once the server has it, ends within seconds, and
/// the session goes on.
#[tokio::test]
async fn a_cancelled_call_ends_at_once_on_every_route() {
    let m = Matrix::start("serve-cancel", json!({}), json!({}), false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let url = m.url(route);
        let sid = session(&url).await;
        // The first call opens the client's session upstream: after it, only the slow call moves
        // the server on.
        let r = call_text(&url, &sid, &route.name("echo"), json!({"message": "before"})).await;
        assert_eq!(text_of(&r), "Echo: before", "{route}: {r}");
        let mut slow = m.slow_call_running(route, &sid, "slow-1").await;
        let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow-1","reason":"the user gave up"}}"#;
        let r = call(&url, &sid, &[], cancel).await;
        assert_eq!(r.status, 202, "{route}: {}", r.body);
        // Ended within seconds: its stream closes (with an answer or without: a cancelled
        // call's server need not answer), not 20 s on with the tool.
        let started = Instant::now();
        let end = slow.until(Duration::from_secs(5), |m| m.get("id").is_some()).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{route}: the call went on after its cancellation: {end:?}\n{}", m.output());
        let r = call_text(&url, &sid, &route.name("echo"), json!({"message": "after"})).await;
        assert_eq!(text_of(&r), "Echo: after", "{route}: {r}");
    })
    .await;
}
