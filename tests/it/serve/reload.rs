//! What a live reload changes besides the servers: `sessionTtl` and `shutdownGrace` apply to the
//! running gateway (the listener's own limits and the Host/Origin guard are in edge_limits.rs).

use std::time::{Duration, Instant};

use serde_json::json;

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
        "params":{"name":"trigger-long-running-operation","arguments":{"duration":30,"steps":30}}})
    .to_string();
    let url = gw.url.clone();
    let in_flight = tokio::spawn(async move { call(&url, &sid, &[], &slow).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    gw.signal(libc::SIGTERM);
    let status = gw.wait(Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert!(status.success(), "exit status {status}:\n{}", gw.output());
    // One second of grace, then the backends stop (a child gets up to 5 s): well under a minute.
    assert!(took < Duration::from_secs(12), "shutdown took {took:?}:\n{}", gw.output());
    assert!(gw.output().contains("up to 1s"), "{}", gw.output());
    in_flight.abort();
}
