//! Shutdown: SIGTERM lets the calls in flight on every event loop finish, then stops the
//! children and exits 0.

use std::time::Duration;

use serde_json::json;

use super::*;

/// The processes whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if after.split_whitespace().nth(1).and_then(|v| v.parse::<u32>().ok()) == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// Gone, or a zombie nobody reaps (a container's init may not).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn sigterm_drains_calls_on_every_loop_then_stops_the_children_and_exits_zero() {
    let dir = tempdir("serve-sigterm");
    let mut mine = stdio_everything(&dir);
    mine["stateful"] = json!(true);
    let mut gw = serve_ready(&dir, json!({"local": stdio_everything(&dir), "mine": mine})).await;
    // Three sessions, each with a slow call in flight: with three loops and connections handed
    // to the least busy, they run on different loops, each with a stateful child started there.
    let long = |i: u32| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"mine__trigger-long-running-operation","arguments":{{"duration":1.5,"steps":3}},"_meta":{{"progressToken":"p{i}"}}}}}}"#
        )
    };
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(open_session(&gw.url, &[]).await);
    }
    // All three at once, each in flight once its first progress has come.
    let mut started = Vec::new();
    for (i, sid) in sessions.into_iter().enumerate() {
        let url = gw.url.clone();
        started.push(tokio::spawn(async move {
            let mut s = Sse::post(&url, &sid, &long(i as u32)).await;
            let first = s.until(Duration::from_secs(10), is("notifications/progress")).await;
            assert!(first.is_ok(), "call {i}: {first:?}");
            s
        }));
    }
    let mut calls = Vec::new();
    for s in started {
        calls.push(s.await.unwrap());
    }
    let pid = gw.child.id().unwrap();
    let children = children_of(pid);
    assert!(children.len() >= 4, "the shared child and three stateful ones: {children:?}\n{}", gw.output());
    let mut loops: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("mcpgate-loop-"))
        .collect();
    loops.sort();
    assert_eq!(loops, ["mcpgate-loop-1", "mcpgate-loop-2"], "threads: 3 is the caller's loop and two more");
    gw.signal(libc::SIGTERM);
    for mut c in calls {
        assert_eq!(c.status, 200, "{}", gw.output());
        let r = c.answer(Duration::from_secs(10)).await.unwrap_or_else(|seen| panic!("{seen:?}\n{}", gw.output()));
        assert!(r["result"]["content"][0]["text"].as_str().unwrap().contains("completed"), "{r}");
    }
    let status = gw.wait(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status}; output:\n{}", gw.output());
    let gone = until(Duration::from_secs(5), || {
        let alive: Vec<u32> = children.iter().copied().filter(|p| !is_dead(*p)).collect();
        async move { alive.is_empty() }
    })
    .await;
    assert!(gone, "children left running: {:?}", children.iter().filter(|p| !is_dead(**p)).collect::<Vec<_>>());
}
