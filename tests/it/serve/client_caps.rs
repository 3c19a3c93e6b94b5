//! Each client seen as itself by a stdio server: its roots reach the server (npm's
//! server-filesystem serves the client's directory instead of the one it was started with), a
//! URL-mode elicitation reaches a client that declared it, and a client that did not declare
//! what a server asks of it is answered for at once, with what it lacks named.

use serde_json::json;

use super::*;

/// server-filesystem, started with a directory of its own.
fn filesystem(own: &FsPath, stateful: bool) -> Value {
    let server = repo().join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    json!({"command": node(), "args": [server, own], "stateful": stateful})
}

/// A stateful server's child is initialized with the client's own capabilities, so it asks that
/// client for its roots; a shared child (initialized by the gateway) asks when the client says its
/// roots changed, and the question goes to the client that can answer it.
#[tokio::test]
async fn a_clients_roots_reach_a_stdio_server_its_own_or_shared() {
    let dir = tempdir("serve-roots");
    let (own, theirs) = (dir.join("server-dir"), dir.join("client-root"));
    std::fs::create_dir_all(&own).unwrap();
    std::fs::create_dir_all(&theirs).unwrap();
    let theirs = std::fs::canonicalize(&theirs).unwrap().display().to_string();
    let gw = serve_ready(&dir, json!({"shared": filesystem(&own, false), "own": filesystem(&own, true)})).await;
    let roots = json!([format!("file://{theirs}")]).to_string();
    let env = [("MCP_ROOTS", roots.as_str()), ("MCP_EXPECT_DIR", theirs.as_str())];
    for (server, steps) in [("own", &["allowed"][..]), ("shared", &["roots_changed", "allowed"][..])] {
        let url = format!("{}/servers/{server}/mcp", base(&gw.url));
        let r = sdk_client_env(&url, steps, &env).await;
        let allowed = r["allowed"]["text"].as_str().unwrap_or_default();
        assert!(
            allowed.contains(&theirs),
            "{server}: the server serves {allowed:?}, not the client's root\n{}",
            gw.output()
        );
        assert!(r["allowed"]["rootsAsked"].as_u64() >= Some(1), "{server}: {r}");
    }
}

/// server-everything as a shared stdio child: a URL-mode elicitation reaches a client that
/// declared it, on its own endpoint and merged; a client that declared only form elicitation is
/// not asked, and the call ends at once with the server's own account of the refusal.
#[tokio::test]
async fn a_url_elicitation_reaches_a_client_that_declared_it_and_no_other() {
    let dir = tempdir("serve-url-elicit");
    let gw = serve_ready(&dir, json!({"local": stdio_everything(&dir), "local2": echo_server(&dir)})).await;
    for (url, prefix) in [(format!("{}/servers/local/mcp", base(&gw.url)), ""), (gw.url.clone(), "local__")] {
        let env = [("MCP_TOOL_PREFIX", prefix), ("MCP_ELICIT_URL", "1")];
        let r = sdk_client_env(&url, &["url_elicit"], &env).await;
        assert_eq!(r["url_elicit"]["asked"], 1, "{url}: {r}");
        assert_eq!(r["url_elicit"]["isError"], false, "{url}: {r}");
        let r = sdk_client_env(&url, &["url_elicit"], &[("MCP_TOOL_PREFIX", prefix)]).await;
        assert_eq!(r["url_elicit"]["asked"], 0, "{url}: a client without URL elicitation was asked: {r}");
    }
}

/// A remote server's session for a client is opened with that client's own `initialize`: the
/// server asks this client for its roots (server-everything's `get-roots-list` reports them) and
/// offers it URL elicitation, which reaches it — alone and merged.
#[tokio::test]
async fn a_remote_server_sees_the_clients_own_roots_and_url_elicitation() {
    let m = Matrix::start("serve-remote-caps", json!({}), json!({}), false).await;
    on_routes(&m, &REMOTE, |m, route| async move {
        let url = m.url(route);
        let prefix = route.prefix();
        let root = "file:///tmp/mcpgate-remote-root";
        let roots = json!([root]).to_string();
        let env = [("MCP_TOOL_PREFIX", prefix.as_str()), ("MCP_ROOTS", roots.as_str()), ("MCP_ELICIT_URL", "1")];
        let r = sdk_client_env(&url, &["roots_tool", "url_elicit"], &env).await;
        let text = r["roots_tool"]["text"].as_str().unwrap_or_default();
        assert!(text.contains(root), "{route}: the server reports {text:?}\n{}", m.output());
        assert!(r["roots_tool"]["asked"].as_u64() >= Some(1), "{route}: {r}");
        assert_eq!(r["url_elicit"]["asked"], 1, "{route}: {r}");
        assert_eq!(r["url_elicit"]["isError"], false, "{route}: {r}");
    })
    .await;
}
