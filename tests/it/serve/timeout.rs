//! A server that takes too long: the call ends in a timeout error at the server's configured
//! `timeout`, and the gateway goes on serving. Real time, kept short (a one-second limit): the
//! servers are other processes, so tokio's paused clock cannot stand in for theirs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

/// On every route, with `timeout: 1s` on the server: a 10-second call ends in `-32002` after
/// about a second; the server itself and the others answer meanwhile.
#[tokio::test]
async fn a_call_past_the_servers_timeout_ends_in_a_timeout_error_on_every_route() {
    let limit = json!({"timeout": "1s"});
    let m = Matrix::start("serve-timeout", limit.clone(), limit, false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let url = m.url(route);
        let sid = session(&url).await;
        let r = call_text(&url, &sid, &route.name("echo"), json!({"message": "warm"})).await;
        assert_eq!(text_of(&r), "Echo: warm", "{route}: {r}");
        let started = Instant::now();
        let name = route.name("trigger-long-running-operation");
        let r = call_text(&url, &sid, &name, json!({"duration": 10, "steps": 2})).await;
        let took = started.elapsed();
        assert_eq!(r["error"]["code"], -32002, "{route}: {r}");
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "{route}: after {took:?}");
        let r = call_text(&url, &sid, &route.name("echo"), json!({"message": "ok"})).await;
        assert_eq!(text_of(&r), "Echo: ok", "{route}: {r}");
        if !route.lone() {
            let r = call_text(&url, &sid, "local2__echo", json!({"message": "ok"})).await;
            assert_eq!(text_of(&r), "Echo: ok", "{route}: {r}");
        }
    })
    .await;
}

/// A remote server that keeps the call's stream open with SSE comments (the SDKs' keep-alive,
/// every 15 s by default; here every 200 ms) but does not answer for four seconds: the call still
/// ends at the server's `timeout` (one second), alone and merged — comments are not an answer.
#[tokio::test]
async fn a_stream_kept_alive_by_comments_still_ends_at_the_timeout_on_every_remote_route() {
    let dir = tempdir("serve-timeout-keepalive");
    let upstream = fixture(&["--keep-alive-ms", "200"]).await;
    let gw =
        serve_ready(&dir, json!({"remote": {"url": upstream.url, "timeout": "1s"}, "local": echo_server(&dir)})).await;
    let ctx = Arc::new((gw, upstream));
    on_routes(&ctx, &REMOTE, |ctx, route| async move {
        let gw = &ctx.0;
        let url = route.url(&gw.url);
        let sid = session(&url).await;
        let r = call_text(&url, &sid, &route.name("test_simple_text"), json!({})).await;
        assert!(text_of(&r).contains("simple text"), "{route}: {r}");
        let started = Instant::now();
        let name = route.name("slow_progress");
        let slow = call_text(&url, &sid, &name, json!({"steps": 1, "delayMs": 4000}));
        let r = tokio::time::timeout(Duration::from_secs(10), slow).await.expect("an answer within 10 s");
        let took = started.elapsed();
        assert_eq!(r["error"]["code"], -32002, "{route}: after {took:?}: {r}");
        assert!(took < Duration::from_secs(3), "{route}: after {took:?}");
    })
    .await;
}
