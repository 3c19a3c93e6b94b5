//! A server's `tools` include/exclude lists: a hidden tool is neither listed nor callable, on
//! every path, the fast ones included (where the gateway otherwise forwards messages as they
//! came).

use serde_json::json;

use super::*;

/// A server's `tools` include/exclude lists hold on every path: the merged endpoint and the
/// server's own, for a lone server whose messages are otherwise forwarded untouched (remote)
/// and for a stdio child — a hidden tool is neither listed nor callable.
#[tokio::test]
async fn tool_filters_hide_tools_from_listings_and_calls() {
    let dir = tempdir("serve-tool-filter");
    let fixture = fixture(&[]).await;
    for (servers, name, hidden, shown, args) in [
        (
            json!({"fixture": {"url": fixture.url, "tools": {"exclude": ["test_simple_text"]}}}),
            "fixture",
            "test_simple_text",
            "test_image_content",
            json!({}),
        ),
        (
            json!({"local": {"command": node(), "args": [repo().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"), "stdio"], "tools": {"include": ["echo"]}}}),
            "local",
            "get-sum",
            "echo",
            json!({"message": "m"}),
        ),
    ] {
        let gw = serve_ready(&dir, servers).await;
        for url in [gw.url.clone(), format!("{}/servers/{name}/mcp", base(&gw.url))] {
            let sid = open_session(&url, &[]).await;
            let names = tool_names(&url, &sid).await;
            assert!(names.iter().any(|n| n == shown), "{shown} missing from {names:?} at {url}");
            assert!(!names.iter().any(|n| n == hidden), "{hidden} listed at {url}: {names:?}");
            let r = call_text(&url, &sid, hidden, json!({"a": 1, "b": 2})).await;
            assert_eq!(r["error"]["code"], -32602, "{hidden} callable at {url}: {r}");
            let r = call_text(&url, &sid, shown, args.clone()).await;
            assert!(r["result"]["content"].is_array(), "{shown} at {url}: {r}");
        }
    }
}

/// On every route, among several servers: `local` shows only what it includes (`echo`),
/// `remote` hides what it excludes (`get-sum`); the hidden tool is not listed and a call to it
/// is refused as for an unknown tool, while the other servers' tools are all there.
#[tokio::test]
async fn hidden_tools_are_neither_listed_nor_callable_on_every_route() {
    let m = Matrix::start(
        "serve-hidden-tools",
        json!({"tools": {"include": ["echo"]}}),
        json!({"tools": {"exclude": ["get-sum"]}}),
        false,
    )
    .await;
    on_routes(&m, &ROUTES, |m, route| async move {
        let url = m.url(route);
        let sid = session(&url).await;
        let names = tool_names(&url, &sid).await;
        let (shown, hidden) = (route.name("echo"), route.name("get-sum"));
        assert!(names.contains(&shown), "{route}: {shown} missing from {names:?}");
        assert!(!names.contains(&hidden), "{route}: {hidden} listed: {names:?}");
        if route.stdio() {
            assert!(!names.contains(&route.name("trigger-long-running-operation")), "{route}: {names:?}");
        } else {
            assert!(names.contains(&route.name("trigger-long-running-operation")), "{route}: {names:?}");
        }
        if !route.lone() {
            for other in ["local2__echo", "remote2__test_simple_text"] {
                assert!(names.iter().any(|n| n == other), "{route}: {other} missing from {names:?}");
            }
        }
        let r = call_text(&url, &sid, &hidden, json!({"a": 1, "b": 2})).await;
        assert_eq!(r["error"]["code"], -32602, "{route}: {hidden} callable: {r}");
        let r = call_text(&url, &sid, &shown, json!({"message": "m"})).await;
        assert_eq!(text_of(&r), "Echo: m", "{route}: {r}");
    })
    .await;
}
