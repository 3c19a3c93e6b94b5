//! The Python clients: the official SDK's `ClientSession` (package `mcp`) and FastMCP's `Client`
//! (tests/clients/python-client.py; tests/clients/requirements.txt pins both) run one scripted
//! session — tools, echo, prompts, resources, a subscription, progress, sampling, elicitation,
//! roots — against server-everything directly over Streamable HTTP, then through the gateway on
//! every route, and get the same results (the merged endpoint's prefix aside: the script reports
//! the server's own names).

use serde_json::Value;

use super::*;

/// The whole session, in the script's order.
const ALL: &[&str] =
    &["info", "tools", "echo", "prompts", "resources", "subscribe", "progress", "sampling", "elicit", "roots"];

/// What server-everything speaks, and so what a client negotiates with it directly.
const SERVER_VERSION: &str = "2025-11-25";

/// A report as it can be compared with the direct one: what legitimately differs on `route` taken
/// out (each case says why), the rest as it came.
fn comparable(route: Route, mut report: Value) -> Value {
    // `info` is the negotiated version, checked on its own (see `check_version`).
    report.as_object_mut().unwrap().remove("info");
    if !route.lone()
        && let Some(r) = report.get_mut("resources")
    {
        // The merged endpoint lists every server's resources, each URI naming its server
        // (`mcpgate://<server>/…`, which the client reports without for the route's own server,
        // `MCP_URI_PREFIX`): `remote2`, our fixture, adds its `test://` ones to server-everything's
        // `demo://` ones. The first listed, and what reading it gave, are compared as they are.
        for key in ["uris", "templates"] {
            if let Some(list) = r[key].as_array_mut() {
                list.retain(|u| !u.as_str().unwrap_or_default().starts_with("mcpgate://"));
            }
        }
    }
    if route.stdio()
        && let Some(r) = report.get_mut("roots")
    {
        // Whether this client was asked for its roots: a shared stdio child is one server session
        // for every client (docs/ARCHITECTURE.md, "A shared stdio child"), and server-everything
        // keeps the roots it got per session, so only the first client to call get-roots-list on
        // the child is asked; a later one gets the roots the child already has. Every client here
        // declares the same root, so the text — the roots the server reports — is compared.
        r.as_object_mut().unwrap().remove("asked");
    }
    report
}

/// The version `kind` negotiated: server-everything's, directly and through the gateway — but
/// FastMCP's client (mode "auto") probes `server/discover` first, which the gateway answers
/// (2026-07-28 for modern clients in front of 2025 servers, modern_clients.rs) and
/// server-everything does not, so through the gateway it speaks 2026-07-28 (unless pinned to the
/// handshake, `MCP_FASTMCP_MODE=legacy` in `env`).
fn check_version(kind: &str, env: &[(&str, &str)], route: Option<Route>, report: &Value) {
    let auto = kind == "fastmcp" && !env.contains(&("MCP_FASTMCP_MODE", "legacy"));
    let want = if auto && route.is_some() { "2026-07-28" } else { SERVER_VERSION };
    let at = route.map_or("direct".to_owned(), |r| r.to_string());
    assert_eq!(report["info"]["protocol"], want, "{kind} {at}: {report}");
}

/// The steps whose results differ between `direct` and `got`, each with both results.
fn differences(steps: &[&str], direct: &Value, got: &Value) -> Vec<String> {
    steps
        .iter()
        .filter(|step| **step != "info" && direct[**step] != got[**step])
        .map(|step| format!("  {step}:\n    direct:  {}\n    gateway: {}", direct[*step], got[*step]))
        .collect()
}

/// The report of `kind` (with `env`) direct to server-everything over Streamable HTTP.
async fn direct(kind: &str, env: &[(&str, &str)]) -> Value {
    let server = everything("streamableHttp", 0).await;
    let report = python_client(&server.url, kind, ALL, env).await;
    check_version(kind, env, None, &report);
    report
}

/// On every route, `kind` (with `env`) runs `steps` and gets what it got direct.
async fn same_as_direct_on_every_route(kind: &'static str, steps: &'static [&str], env: &'static [(&str, &str)]) {
    let direct = Arc::new(direct(kind, env).await);
    // Apart: each server-everything on an endpoint of its own, so that a resource URI (the same
    // on both) is the route's server's alone, and the subscription is made where the route goes.
    let m = Matrix::start(&format!("serve-python-{kind}"), json!({}), json!({}), true).await;
    on_routes(&m, &ROUTES, move |m, route| {
        let direct = direct.clone();
        async move {
            let (prefix, uris) = (route.prefix(), route.uri(""));
            let mut all = env.to_vec();
            all.push(("MCP_TOOL_PREFIX", &prefix));
            all.push(("MCP_URI_PREFIX", &uris));
            let got = python_client(&m.url(route), kind, steps, &all).await;
            check_version(kind, env, Some(route), &got);
            let diff = differences(steps, &comparable(route, (*direct).clone()), &comparable(route, got));
            assert!(diff.is_empty(), "{kind} on {route}: not as direct:\n{}\n{}", diff.join("\n"), m.output());
        }
    })
    .await;
}

/// The official SDK's `ClientSession` (the initialize handshake): the whole session.
#[tokio::test]
async fn the_python_sdk_client_gets_what_it_gets_direct_on_every_route() {
    same_as_direct_on_every_route("sdk", ALL, &[]).await;
}

/// FastMCP's `Client` pinned to the initialize handshake (mode "legacy", 2025-11-25 as direct): the
/// whole session.
#[tokio::test]
async fn fastmcps_client_on_the_handshake_gets_what_it_gets_direct_on_every_route() {
    same_as_direct_on_every_route("fastmcp", ALL, &[("MCP_FASTMCP_MODE", "legacy")]).await;
}

/// FastMCP's `Client` as it connects by default (mode "auto": 2026-07-28 through the gateway, see
/// [`check_version`]): the whole session, as direct on every route. What the gateway does for it:
/// - **subscribe**: direct (2025-11-25) with `resources/subscribe`, through the gateway with the
///   revision's `subscriptions/listen`, the stream the gateway feeds from the server's updates
///   (src/serve/listen.rs), following the caller across its upstream sessions;
/// - **tools**: direct, the client declares URL elicitation and server-everything offers
///   `trigger-url-elicitation`; through the gateway a remote server sees the session the gateway
///   opens for modern clients (src/serve/modern.rs, `modern_client`), which declares what any
///   client may answer (URL elicitation among it), so the tool is offered as direct;
/// - **roots**: direct, server-everything asks the client for its roots on its own once the
///   session opens; through the gateway the client has no stream to be asked on, so it is asked
///   before its call (input-required) and the call goes through a session of those roots, which
///   answers the server with them (`roots_of`). (A shared stdio child got the roots of the first
///   client that could answer: as direct here.)
#[tokio::test]
async fn fastmcps_default_client_gets_what_it_gets_direct_on_every_route() {
    same_as_direct_on_every_route("fastmcp", ALL, &[]).await;
}
