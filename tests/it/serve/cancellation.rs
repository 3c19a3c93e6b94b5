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
        // The server has the call once its first progress is here.
        let mut body: Value = serde_json::from_str(&tool_call(
            json!("slow-1"),
            &route.name("trigger-long-running-operation"),
            json!({"duration": 20, "steps": 20}),
        ))
        .unwrap();
        body["params"]["_meta"] = json!({"progressToken": "slow-1"});
        let mut slow = Sse::post(&url, &sid, &body.to_string()).await;
        let running = slow.until(Duration::from_secs(10), |m| m["method"] == "notifications/progress").await;
        assert!(running.is_ok(), "{route}: the call never reached the server: {running:?}\n{}", m.output());
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
