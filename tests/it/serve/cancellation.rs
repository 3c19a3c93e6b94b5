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
        let before = m.progress_of(route).await;
        let slow = {
            let (url, sid) = (url.clone(), sid.clone());
            let body = tool_call(
                json!("slow-1"),
                &route.name("trigger-long-running-operation"),
                json!({"duration": 20, "steps": 20}),
            );
            tokio::spawn(async move {
                let started = Instant::now();
                let r = call(&url, &sid, &[], &body).await;
                (r.body, started.elapsed())
            })
        };
        m.reached(route, before).await;
        let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow-1","reason":"the user gave up"}}"#;
        let r = call(&url, &sid, &[], cancel).await;
        assert_eq!(r.status, 202, "{route}: {}", r.body);
        let ended = tokio::time::timeout(Duration::from_secs(5), slow).await;
        let (body, took) = ended.unwrap_or_else(|_| {
            panic!("{route}: the call did not end within 5 s of its cancellation\n{}", m.output())
        })
        .unwrap();
        assert!(took < Duration::from_secs(5), "{route}: the call ended at {took:?}: {body}");
        let r = call_text(&url, &sid, &route.name("echo"), json!({"message": "after"})).await;
        assert_eq!(text_of(&r), "Echo: after", "{route}: {r}");
    })
    .await;
}
