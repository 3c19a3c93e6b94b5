//! The client-facing checks of `mcpgate connect`: Host/Origin (DNS rebinding), CORS for
//! browser clients, body limit, session and protocol-version rules, modern header checks.

use crate::harness::*;

#[tokio::test]
async fn host_and_origin_are_checked_before_anything_is_forwarded() {
    let upstream = everything("streamableHttp", 0).await;
    let gw = connect(&upstream.url, &["--allow-origin", "https://app.example"]).await;
    let table: &[(&[(&str, &str)], u16)] = &[
        (&[("host", "evil.example")], 403),
        (&[("host", "127.0.0.1.evil.example:80")], 403),
        (&[("origin", "http://evil.example")], 403),
        (&[("origin", "null")], 403),
        (&[("origin", "http://localhost.evil.example")], 403),
        (&[("origin", "http://localhost:6274")], 200),
        (&[("origin", "https://app.example")], 200),
        (&[("host", "localhost")], 200),
        (&[], 200),
    ];
    for (extra, want) in table {
        let mut h = MCP_HEADERS.to_vec();
        h.extend_from_slice(extra);
        let r = request("POST", &gw.url, &h, INITIALIZE).await;
        assert_eq!(r.status, *want, "{extra:?}: {}", r.body);
        if *want == 403 {
            assert_eq!(r.json()["error"]["code"], -32600);
        }
    }
}

#[tokio::test]
async fn browser_clients_get_cors_and_can_read_the_session_id() {
    let upstream = everything("streamableHttp", 0).await;
    let gw = connect(&upstream.url, &[]).await;
    let origin = ("origin", "http://localhost:6274");
    let pre = request("OPTIONS", &gw.url, &[origin, ("access-control-request-method", "POST")], "").await;
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("http://localhost:6274"));
    assert!(pre.header("access-control-allow-headers").unwrap().contains("mcp-session-id"));
    let mut h = MCP_HEADERS.to_vec();
    h.push(origin);
    let r = request("POST", &gw.url, &h, INITIALIZE).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("http://localhost:6274"));
    assert!(r.header("access-control-expose-headers").unwrap().contains("mcp-session-id"));
    assert!(r.header("mcp-session-id").is_some());
}

#[tokio::test]
async fn session_version_and_size_rules() {
    let upstream = everything("streamableHttp", 0).await;
    let gw = connect(&upstream.url, &["--max-body", "2048"]).await;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

    // No session header → 400; an unknown one → 404 (the spec's "start a new session").
    let r = request("POST", &gw.url, MCP_HEADERS, list).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["id"], 2);
    let r = call(&gw.url, "00000000000000000000000000000000", &[], list).await;
    assert_eq!(r.status, 404, "{}", r.body);

    let sid = open_session(&gw.url, &[]).await;
    assert_eq!(sid.len(), 32, "gateway session ids carry 128 random bits");
    let r = call(&gw.url, &sid, &[], list).await;
    assert_eq!(r.status, 200);
    assert!(r.message()["result"]["tools"].as_array().unwrap().len() > 3);

    // An unknown protocol version → 400 naming the header.
    let mut h = MCP_HEADERS.to_vec();
    h.push(("mcp-session-id", &sid));
    h.push(("mcp-protocol-version", "1999-01-01"));
    let r = request("POST", &gw.url, &h, list).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("MCP-Protocol-Version"), "{}", r.body);

    // Not JSON → 400 parse error; too large → 413 without reading it all.
    let r = call(&gw.url, &sid, &[], "{not json").await;
    assert_eq!((r.status, r.json()["error"]["code"].as_i64()), (400, Some(-32700)));
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{}"}}}}}}"#,
        "x".repeat(4096)
    );
    let r = call(&gw.url, &sid, &[], &big).await;
    assert_eq!(r.status, 413);

    // DELETE ends the session; it is gone afterwards.
    let r = request("DELETE", &gw.url, &[("mcp-session-id", &sid)], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(call(&gw.url, &sid, &[], list).await.status, 404);

    // Other paths do not exist.
    let other = gw.url.replace("/mcp", "/other");
    assert_eq!(request("POST", &other, MCP_HEADERS, list).await.status, 404);
}

#[tokio::test]
async fn modern_requests_must_mirror_the_body_in_their_headers() {
    let upstream = everything("streamableHttp", 0).await;
    let gw = connect(&upstream.url, &[]).await;
    let body = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}"#;
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("mcp-method", "tools/call")],
        &[("mcp-method", "tools/call"), ("mcp-name", "get-env")],
        &[("mcp-method", "tools/list"), ("mcp-name", "echo")],
    ];
    for extra in cases {
        let mut h = MCP_HEADERS.to_vec();
        h.push(("mcp-protocol-version", "2026-07-28"));
        h.extend_from_slice(extra);
        let r = request("POST", &gw.url, &h, body).await;
        assert_eq!(r.status, 400, "{extra:?}");
        assert_eq!(r.json()["error"]["code"], -32020, "{extra:?}");
        assert_eq!(r.json()["id"], 5);
    }
}
