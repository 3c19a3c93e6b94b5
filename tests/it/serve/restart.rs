//! A server lost mid-call: the call fails at once, the other servers never notice, and the
//! server's return is invisible to the client — a stdio child is restarted by the gateway within
//! its backoff, a remote server that restarted (and lost its sessions) gets the client's session
//! opened again on the next call.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

/// On every route: a slow call in flight when its server dies fails at once (`-32001`); the
/// other servers serve meanwhile; the same session then gets answers again — from the stdio
/// child the gateway restarted, or from the remote server restarted on its port.
#[tokio::test]
async fn a_server_lost_mid_call_fails_the_call_at_once_and_comes_back_on_every_route() {
    let m = Matrix::start("serve-restart", json!({}), json!({}), false).await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let url = m.url(route);
        let sid = session(&url).await;
        let echo = |message: &'static str| {
            let (url, sid, name) = (url.clone(), sid.clone(), route.name("echo"));
            async move { call_text(&url, &sid, &name, json!({"message": message})).await }
        };
        let r = echo("before").await;
        assert_eq!(text_of(&r), "Echo: before", "{route}: {r}");
        let mut slow = m.slow_call_running(route, &sid, "slow").await;
        if route.stdio() {
            let killed = std::process::Command::new("pkill").arg("-KILL").arg("-f").arg(m.marker()).status().unwrap();
            assert!(killed.success(), "{route}: the child was running");
        } else {
            m.remote.lock().await.kill().await;
        }
        let started = Instant::now();
        let r = slow
            .until(Duration::from_secs(10), |m| m.get("id").is_some())
            .await
            .unwrap_or_else(|got| panic!("{route}: the pending call did not end: {got:?}\n{}", m.output()));
        let took = started.elapsed();
        assert_eq!(
            (r["id"].clone(), r["error"]["code"].clone()),
            (json!("slow"), json!(-32001)),
            "{route}: the pending call fails: {r}"
        );
        assert!(took < Duration::from_secs(5), "{route}: at once, not at the tool's end ({took:?})");
        // Meanwhile the other servers serve.
        let merged = m.gw(route).url.clone();
        let other = session(&merged).await;
        let r = call_text(&merged, &other, "local2__echo", json!({"message": "still"})).await;
        assert_eq!(text_of(&r), "Echo: still", "{route}: {r}");
        let r = call_text(&merged, &other, "remote2__test_simple_text", json!({})).await;
        assert!(text_of(&r).contains("simple text"), "{route}: {r}");
        if route.stdio() {
            // Back within the backoff (1 s ± 25 %, plus its start).
            let back = until(Duration::from_secs(15), || async { text_of(&echo("back").await) == "Echo: back" }).await;
            assert!(back, "{route}: the child did not come back:\n{}", m.output());
            let restarts = metric(&merged, "mcpgate_upstream_restarts_total{server=\"local\"}").await;
            let expected = if route == LoneStdio { 1.0 } else { 2.0 };
            assert_eq!(restarts, Some(expected), "{route}: one restart per kill");
        } else {
            // The server restarts on its port, without the sessions it had: the next call
            // finds its session gone and opens it again, unseen by the client.
            *m.remote.lock().await = everything("streamableHttp", m.remote_port).await;
            let r = echo("after").await;
            assert_eq!(text_of(&r), "Echo: after", "{route}: {r}\n{}", m.output());
            if route.lone() {
                let said = m.output();
                assert!(said.contains("a direct request was refused") && said.contains("re-initializing"), "{said}");
            }
        }
    })
    .await;
}
