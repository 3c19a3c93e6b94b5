//! Live reload: a broken file is refused and the old configuration serves on; servers added and
//! removed under running sessions, which are told; `sessionTtl` and `shutdownGrace` apply to the
//! running gateway (the listener's own limits and the Host/Origin guard are in edge_limits.rs).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Sse, call_text, is, three, tool_names};
use crate::harness::*;
use crate::idp::until;
use crate::serve::{base, serve, write_config};

/// Writes `gateway` (the `mcpgate` object) and one stdio server-everything into the config.
fn config(dir: &std::path::Path, gateway: serde_json::Value) -> std::path::PathBuf {
    let path = dir.join("mcpgate.json");
    write_config(&path, json!({"local": stdio_everything(dir)}));
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for (k, v) in gateway.as_object().unwrap() {
        cfg["mcpgate"][k] = v.clone();
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    path
}

async fn reload(url: &str) {
    let r = request("POST", &format!("{}/admin/reload", base(url)), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A session idle under the old `sessionTtl` (an hour) ends within seconds of a reload that
/// lowers it to one second.
#[tokio::test]
async fn a_reload_that_lowers_session_ttl_expires_idle_sessions() {
    let dir = tempdir("serve-reload-ttl");
    let path = config(&dir, json!({"sessionTtl": "1h"}));
    let gw = serve(&path).await;
    let sid = open_session(&gw.url, &[]).await;
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    assert_eq!(call(&gw.url, &sid, &[], ping).await.status, 200);

    config(&dir, json!({"sessionTtl": "1s"}));
    reload(&gw.url).await;
    // Watched in the log: a request would keep the session alive.
    let ended = until(Duration::from_secs(10), || async { gw.output().contains("session expired") }).await;
    assert!(ended, "the session outlived the new sessionTtl:\n{}", gw.output());
    assert_eq!(call(&gw.url, &sid, &[], ping).await.status, 404);
    assert!(gw.output().contains("sessionTtl is now 1s"), "{}", gw.output());
}

/// A reload that shortens `shutdownGrace` from a minute to one second: on SIGTERM a call that
/// would take 30 s more is cut off after about a second, not a minute.
#[tokio::test]
async fn a_reload_that_shortens_shutdown_grace_applies_to_the_next_shutdown() {
    let dir = tempdir("serve-reload-grace");
    let path = config(&dir, json!({"shutdownGrace": "60s"}));
    let mut gw = serve(&path).await;
    let ready = until(Duration::from_secs(30), || async {
        request("GET", &format!("{}/readyz", base(&gw.url)), &[], "").await.status == 200
    })
    .await;
    assert!(ready, "{}", gw.output());
    config(&dir, json!({"shutdownGrace": "1s"}));
    reload(&gw.url).await;

    let sid = open_session(&gw.url, &[]).await;
    let slow = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"trigger-long-running-operation","arguments":{"duration":30,"steps":30},
            "_meta":{"progressToken":"grace"}}})
    .to_string();
    // In flight: its first progress has come.
    let mut in_flight = Sse::post(&gw.url, &sid, &slow).await;
    let running = in_flight.until(Duration::from_secs(10), is("notifications/progress")).await;
    assert!(running.is_ok(), "{running:?}\n{}", gw.output());
    let started = Instant::now();
    gw.signal(libc::SIGTERM);
    let status = gw.wait(Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert!(status.success(), "exit status {status}:\n{}", gw.output());
    // One second of grace, then the backends stop (a child gets up to 5 s): well under a minute.
    assert!(took < Duration::from_secs(12), "shutdown took {took:?}:\n{}", gw.output());
    assert!(gw.output().contains("up to 1s"), "{}", gw.output());
    drop(in_flight);
}

/// Reload: a broken file is refused with its problems and the old configuration keeps serving;
/// adding and removing servers leaves existing sessions working, and tells them lists changed.
#[tokio::test]
async fn reload_refuses_a_broken_file_and_applies_changes_without_dropping_sessions() {
    let t = three("serve-reload", json!({})).await;
    let url = t.gw.url.clone();
    let config = t.dir.join("mcpgate.json");
    let sid = open_session(&url, &[]).await;
    let before = std::fs::read_to_string(&config).unwrap();
    let admin = format!("{}/admin/reload", base(&url));

    std::fs::write(&config, "{ \"mcpServers\": { \"x\": { \"comand\": \"nope\" } }").unwrap();
    let r = request("POST", &admin, &[], "").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("unexpected end") || r.body.contains("problems"), "{}", r.body);
    assert!(
        tool_names(&url, &sid).await.iter().any(|n| n == "fixture__test_simple_text"),
        "the old configuration serves"
    );

    // Remove `fixture`, add a second stdio server `extra`.
    let mut cfg: Value = serde_json::from_str(&before).unwrap();
    let servers = cfg["mcpServers"].as_object_mut().unwrap();
    servers.remove("fixture");
    servers.insert("extra".into(), stdio_everything(&tempdir("serve-reload-extra")));
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let r = request("POST", &admin, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let applied: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (applied["added"].clone(), applied["removed"].clone()),
        (json!(["extra"]), json!(["fixture"])),
        "{applied}"
    );
    // The same session goes on, and sees the new listing once the new server is up.
    let seen = until(Duration::from_secs(20), || {
        let (url, sid) = (url.clone(), sid.clone());
        async move {
            let names = tool_names(&url, &sid).await;
            names.iter().any(|n| n == "extra__echo") && !names.iter().any(|n| n.starts_with("fixture__"))
        }
    })
    .await;
    assert!(seen, "{:?}\n{}", tool_names(&url, &sid).await, t.gw.output());
    assert_eq!(
        call_text(&url, &sid, "local__echo", json!({"message":"kept"})).await["result"]["content"][0]["text"],
        "Echo: kept"
    );
    // The session's event stream was told.
    let mut events = Sse::get(&url, &sid).await;
    let told = events.until(Duration::from_secs(5), is("notifications/tools/list_changed")).await;
    assert!(told.is_ok(), "{told:?}");
}
