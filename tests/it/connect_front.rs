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

/// Raw bytes on one connection: what the gateway's own HTTP/1.1 codec takes (pipelined
/// requests answered in order, `Connection: close`), and what it hands to hyper on the same
/// connection (a chunked upload; an h2c preface), with a smuggling attempt that must come out
/// as one request.
#[tokio::test]
async fn one_connection_carries_what_the_codec_takes_and_what_it_hands_to_hyper() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = everything("streamableHttp", 0).await;
    let gw = connect(&upstream.url, &[]).await;
    let addr = gw.url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let post = |body: &str, extra: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n{extra}content-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    /// Reads until `n` whole answers (by Content-Length or chunked end) arrived, or `wait` passed.
    async fn answers_within(s: &mut tokio::net::TcpStream, n: usize, wait: u64) -> String {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait);
        while count_answers(&String::from_utf8_lossy(&got)) < n {
            let mut chunk = [0u8; 65536];
            match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(k)) => got.extend_from_slice(&chunk[..k]),
                Ok(Err(e)) => panic!("read failed: {e}"),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }
    async fn answers(s: &mut tokio::net::TcpStream, n: usize) -> String {
        answers_within(s, n, 5000).await
    }
    fn count_answers(text: &str) -> usize {
        let mut n = 0;
        let mut rest = text;
        while let Some(at) = rest.find("HTTP/1.1 ") {
            let after = &rest[at..];
            let Some(end) = after.find("\r\n\r\n") else { break };
            let head = after[..end].to_ascii_lowercase();
            let body = &after[end + 4..];
            let used = if let Some(l) = head.lines().find_map(|l| l.strip_prefix("content-length: ")) {
                let l: usize = l.trim().parse().unwrap();
                if body.len() < l {
                    break;
                }
                l
            } else if head.contains("transfer-encoding: chunked") {
                match body.find("\r\n0\r\n\r\n") {
                    Some(i) => i + 7,
                    None => break,
                }
            } else {
                0
            };
            n += 1;
            rest = &after[end + 4 + used..];
        }
        n
    }

    // Two requests in one write: answered in order, the second (no session yet) refused.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let list = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
    s.write_all((post(INITIALIZE, "") + &post(list, "")).as_bytes()).await.unwrap();
    let text = answers(&mut s, 2).await;
    assert_eq!(count_answers(&text), 2, "{text}");
    let (first, second) = text.split_at(text[1..].find("HTTP/1.1 ").unwrap() + 1);
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    let sid = first
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("mcp-session-id: ").map(|v| v.trim().to_owned()))
        .expect("a session id");
    assert!(second.starts_with("HTTP/1.1 400 "), "{second}");
    assert!(second.contains(r#""id":7"#), "{second}");
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    s.write_all(post(initialized, &format!("mcp-session-id: {sid}\r\n")).as_bytes()).await.unwrap();
    assert!(answers(&mut s, 1).await.starts_with("HTTP/1.1 202 "));

    // A chunked upload: hyper's from here on, the same connection and session.
    let chunked = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-session-id: {sid}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{list}\r\n0\r\n\r\n",
        list.len()
    );
    s.write_all(chunked.as_bytes()).await.unwrap();
    let text = answers(&mut s, 1).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && text.contains("\"tools\""), "{text}");
    s.write_all(post(list, &format!("mcp-session-id: {sid}\r\n")).as_bytes()).await.unwrap();
    let text = answers(&mut s, 1).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && text.contains("\"tools\""), "{text}");

    // Smuggling: Transfer-Encoding wins over Content-Length (or the request is refused); the
    // bytes the Content-Length would have left over never become a second request.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let hidden = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    let smuggle = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nmcp-session-id: {sid}\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
    );
    s.write_all(smuggle.as_bytes()).await.unwrap();
    let text = answers_within(&mut s, 2, 1000).await;
    assert!(count_answers(&text) <= 1 || !text.contains("HTTP/1.1 200 OK\r\n"), "{text}");

    // `Connection: close`: said in the answer, and the connection ends after it.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(post(INITIALIZE, "connection: close\r\n").as_bytes()).await.unwrap();
    let mut all = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_string(&mut all)).await.unwrap().unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n") && all.contains("connection: close\r\n"), "{all}");

    // An h2c client (prior knowledge) is answered in HTTP/2: the server's first frame is SETTINGS.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
    let mut frame = [0u8; 9];
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut frame)).await.unwrap().unwrap();
    assert_eq!(frame[3], 0x4, "not a SETTINGS frame: {frame:?}");
}
