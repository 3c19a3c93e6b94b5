//! A lone stdio server spoken to as it is: requests written as they came with only the id
//! swapped, answers handed back as the server wrote them.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

/// A lone stdio server's requests go to it as they came (only the id swapped) and its answers
/// come back as it wrote them with the client's id: any id, JSON-only clients, pretty-printed
/// bodies, many calls at once kept apart; a server→client request mid-call still reaches the
/// caller (the call turns into a stream), progress still flows, and a killed child still fails
/// the call at once.
#[tokio::test]
async fn a_lone_stdio_server_is_spoken_to_as_it_is() {
    let dir = tempdir("serve-lone-stdio");
    let gw = serve_ready(&dir, json!({"local": stdio_everything(&dir)})).await;
    let url = gw.url.clone();
    // The official SDK client: a plain call, an elicitation and a sampling request during a
    // call, progress.
    let r = sdk_client(&url, &["echo", "elicit", "sampling", "progress", "close"]).await;
    assert_eq!(r["echo"], "Echo: hello through mcpgate", "{r}");
    assert_eq!(r["elicit"]["asked"], 1, "{r}");
    assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"), "{r}");
    assert!(r["sampling"].as_str().is_some_and(|t| !t.is_empty()), "{r}");
    assert_eq!(r["progress"]["progress"], json!([1, 2, 3]), "{r}");
    // Raw: ids of every kind come back as sent, as SSE or JSON.
    let sid = open_session(&url, &[]).await;
    for (id, accept) in [
        (json!("a \"quoted\" id"), "application/json, text/event-stream"),
        (json!(-7), "application/json"),
        (json!(12.5), "application/json, text/event-stream"),
    ] {
        let body = serde_json::to_string_pretty(
            &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":"line\nbreak"}}}),
        )
        .unwrap();
        let h = [
            ("content-type", "application/json"),
            ("accept", accept),
            ("mcp-session-id", sid.as_str()),
            ("mcp-protocol-version", "2025-06-18"),
        ];
        let r = request("POST", &url, &h, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let m = r.message();
        assert_eq!(m["id"], id, "{}", r.body);
        assert_eq!(m["result"]["content"][0]["text"], "Echo: line\nbreak", "{}", r.body);
        let json_only = accept == "application/json";
        assert_eq!(r.header("content-type").unwrap().starts_with("application/json"), json_only, "{accept}");
    }
    // An error the server answers comes back as it said it, under the client's id.
    let r = call(&url, &sid, &[], r#"{"jsonrpc":"2.0","id":"e","method":"nonexistent/method"}"#).await.message();
    assert_eq!((r["id"].clone(), r["error"]["code"].clone()), (json!("e"), json!(-32601)), "{r}");
    // Many at once, each with its own answer.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (url, sid) = (url.clone(), sid.clone());
        calls.spawn(async move {
            let body = json!({"jsonrpc":"2.0","id":format!("c{i}"),"method":"tools/call","params":{"name":"echo","arguments":{"message":format!("m{i}")}}});
            (i, call(&url, &sid, &[], &body.to_string()).await.message())
        });
    }
    while let Some(done) = calls.join_next().await {
        let (i, m) = done.unwrap();
        assert_eq!(m["id"], format!("c{i}"), "{m}");
        assert_eq!(m["result"]["content"][0]["text"], format!("Echo: m{i}"), "{m}");
    }
    // A child killed mid-call (once it has read the call): the call fails at once.
    let before = bytes_read(&dir.join("everything-stdio.js"));
    let slow = {
        let (url, sid) = (url.clone(), sid.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let body = r#"{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":20,"steps":20}}}"#;
            (call(&url, &sid, &[], body).await.message(), started.elapsed())
        })
    };
    let marker = dir.join("everything-stdio.js");
    read_past(&marker, before).await;
    assert!(std::process::Command::new("pkill").arg("-KILL").arg("-f").arg(&marker).status().unwrap().success());
    let (m, took) = slow.await.unwrap();
    assert_eq!((m["id"].clone(), m["error"]["code"].clone()), (json!("slow"), json!(-32001)), "{m}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}
