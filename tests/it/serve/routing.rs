//! Three upstreams of three kinds behind one endpoint — server-everything as a stdio child, our
//! fixture over Streamable HTTP, server-everything over legacy HTTP+SSE: merged listings, calls
//! routed by prefixed name and by URI, one server alone and unprefixed, the SDK client through
//! all of it.

use serde_json::json;

use super::*;

#[tokio::test]
async fn three_upstreams_merged_listings_and_routed_calls() {
    let t = three("serve-three", json!({})).await;
    let url = &t.gw.url;
    let sid = open_session(url, &[]).await;
    let names = tool_names(url, &sid).await;
    for expected in
        ["local__echo", "local__trigger-long-running-operation", "fixture__test_simple_text", "legacy__echo"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    assert!(names.iter().all(|n| n.starts_with("local__") || n.starts_with("fixture__") || n.starts_with("legacy__")));
    assert_eq!(
        call_text(url, &sid, "local__echo", json!({"message":"a"})).await["result"]["content"][0]["text"],
        "Echo: a"
    );
    assert_eq!(
        call_text(url, &sid, "legacy__echo", json!({"message":"b"})).await["result"]["content"][0]["text"],
        "Echo: b"
    );
    let r = call_text(url, &sid, "fixture__test_simple_text", json!({})).await;
    assert!(r["result"]["content"][0]["text"].as_str().unwrap().contains("simple text"), "{r}");
    let r = call_text(url, &sid, "nobody__echo", json!({})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // To the stdio child as it came, name and id swapped in the bytes (a pretty-printed body, an
    // id with quotes), and its answer back under the client's id.
    let body = serde_json::to_string_pretty(&json!({"jsonrpc":"2.0","id":"q\"1","method":"tools/call",
        "params":{"arguments":{"message":"pretty"},"name":"local__echo"}}))
    .unwrap();
    let m = call(url, &sid, &[], &body).await.message();
    assert_eq!(
        (m["id"].clone(), m["result"]["content"][0]["text"].clone()),
        (json!("q\"1"), json!("Echo: pretty")),
        "{m}"
    );
    let r = call(
        url,
        &sid,
        &[],
        r#"{"jsonrpc":"2.0","id":8,"method":"prompts/get","params":{"name":"local__simple-prompt"}}"#,
    )
    .await
    .message();
    assert!(r["result"]["messages"].is_array(), "{r}");
    // Resources are routed by URI; prompts by name.
    let r = call(
        url,
        &sid,
        &[],
        r#"{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":"test://static-text"}}"#,
    )
    .await
    .message();
    assert!(r["result"]["contents"][0]["text"].is_string(), "{r}");
    // One server alone, unprefixed, with its own identity.
    let one = format!("{}/servers/legacy/mcp", base(url));
    let sid1 = open_session(&one, &[]).await;
    let names = tool_names(&one, &sid1).await;
    assert!(names.iter().any(|n| n == "echo") && !names.iter().any(|n| n.contains("__")), "{names:?}");
    // The SDK client through the merged endpoint: progress, elicitation, sampling on the stdio child.
    let r =
        sdk_client_env(url, &["echo", "progress", "elicit", "sampling", "close"], &[("MCP_TOOL_PREFIX", "local__")])
            .await;
    assert_eq!(r["echo"], "Echo: hello through mcpgate");
    let p: Vec<u64> = r["progress"]["progress"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(p, [1, 2, 3], "{r}");
    assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"), "{r}");
    assert!(r["sampling"].as_str().unwrap().contains("sampled by the test client"), "{r}");
    // The same over the legacy SSE server (a session per client upstream).
    let r = sdk_client_env(url, &["progress", "elicit", "close"], &[("MCP_TOOL_PREFIX", "legacy__")]).await;
    assert!(r["elicit"]["text"].as_str().unwrap().contains("Ada Lovelace"), "{r}");
    let metrics = request("GET", &format!("{}/metrics", base(url)), &[], "").await.body;
    assert!(
        metrics.contains("mcpgate_requests_total{server=\"local\",method=\"tools/call\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("mcpgate_listing_cache_hits_total"), "{metrics}");
}
