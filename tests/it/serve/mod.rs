//! `mcpgate serve` with real servers behind it — npm's server-everything as a stdio child and over
//! Streamable HTTP, our conformance fixture, an OpenID provider's protected servers, a
//! modern-only server; npm's server-filesystem and server-memory and PyPI's mcp-server-time as
//! stdio children (bytes.rs) — driven by the official SDK clients and raw HTTP. One file per
//! behaviour.
//!
//! Each behaviour runs on every route a client can take to a server ([`Route`]): the server alone
//! on its own endpoint (`/servers/<name>/mcp`, unprefixed — where the gateway forwards messages
//! as they came) or merged with others on `/mcp` (`<name>__tool`), the server a stdio child or
//! remote over Streamable HTTP. [`Matrix`] is one gateway for the four, with a second stdio and
//! a second remote server so that merged is really merged; [`on_routes`] runs a test's body on
//! each route and names every route that failed. Where a behaviour cannot apply to a route, the
//! table says why:
//!
//! | behaviour | file | lone stdio | merged stdio | lone remote | merged remote |
//! |---|---|---|---|---|---|
//! | refusal with its challenge (401, `WWW-Authenticate`) | refusals.rs | n/a: a stdio child speaks no HTTP, so it has no status or challenge to refuse with | n/a: a stdio child speaks no HTTP, so it has no status or challenge to refuse with | `a_refusal_keeps_its_challenge_on_every_remote_route` | `a_refusal_keeps_its_challenge_on_every_remote_route` |
//! | upstream lost mid-call, and back | restart.rs | `a_server_lost_mid_call_fails_the_call_at_once_and_comes_back_on_every_route` | `a_server_lost_mid_call_fails_the_call_at_once_and_comes_back_on_every_route` | `a_server_lost_mid_call_fails_the_call_at_once_and_comes_back_on_every_route` | `a_server_lost_mid_call_fails_the_call_at_once_and_comes_back_on_every_route` |
//! | token refresh (a revoked token renewed, one retry) | tokens.rs | n/a: a stdio child has no credential | n/a: a stdio child has no credential | `a_revoked_token_is_renewed_unseen_on_every_remote_route` | `a_revoked_token_is_renewed_unseen_on_every_remote_route` |
//! | `forwardClientToken` (legacy and 2026-07-28 callers) | forward_token.rs | n/a: a stdio child has no HTTP request to carry the caller's token | n/a: a stdio child has no HTTP request to carry the caller's token | `the_callers_token_goes_only_where_allowed_on_every_remote_route` | `the_callers_token_goes_only_where_allowed_on_every_remote_route` |
//! | hidden tools (`tools` include/exclude) | hidden_tools.rs | `hidden_tools_are_neither_listed_nor_callable_on_every_route` | `hidden_tools_are_neither_listed_nor_callable_on_every_route` | `hidden_tools_are_neither_listed_nor_callable_on_every_route` | `hidden_tools_are_neither_listed_nor_callable_on_every_route` |
//! | tools offered to clients that can answer (elicitation, sampling) listed | listings.rs | `tools_for_clients_that_answer_requests_are_listed_on_every_route` | `tools_for_clients_that_answer_requests_are_listed_on_every_route` | `tools_for_clients_that_answer_requests_are_listed_on_every_route` | `tools_for_clients_that_answer_requests_are_listed_on_every_route` |
//! | progress | progress.rs | `progress_reaches_the_caller_on_every_route` | `progress_reaches_the_caller_on_every_route` | `progress_reaches_the_caller_on_every_route` | `progress_reaches_the_caller_on_every_route` |
//! | elicitation and sampling | elicitation.rs | `elicitation_and_sampling_reach_the_caller_on_every_route` | `elicitation_and_sampling_reach_the_caller_on_every_route` | `elicitation_and_sampling_reach_the_caller_on_every_route` | `elicitation_and_sampling_reach_the_caller_on_every_route` |
//! | cancellation | cancellation.rs | `a_cancelled_call_ends_at_once_on_every_route` | `a_cancelled_call_ends_at_once_on_every_route` | `a_cancelled_call_ends_at_once_on_every_route` | `a_cancelled_call_ends_at_once_on_every_route` |
//! | timeout | timeout.rs | `a_call_past_the_servers_timeout_ends_in_a_timeout_error_on_every_route` | `a_call_past_the_servers_timeout_ends_in_a_timeout_error_on_every_route` | `a_call_past_the_servers_timeout_ends_in_a_timeout_error_on_every_route` | `a_call_past_the_servers_timeout_ends_in_a_timeout_error_on_every_route` |
//! | timeout, the server keeping its stream alive with SSE comments | timeout.rs | n/a: keep-alive comments exist only on an HTTP stream | n/a: keep-alive comments exist only on an HTTP stream | `a_stream_kept_alive_by_comments_still_ends_at_the_timeout_on_every_remote_route` | `a_stream_kept_alive_by_comments_still_ends_at_the_timeout_on_every_remote_route` |
//! | `list_changed` (the client told) | list_changed.rs | `a_servers_list_change_reaches_the_client_and_its_next_listing_on_every_route` | `a_servers_list_change_reaches_the_client_and_its_next_listing_on_every_route` | `a_servers_list_change_reaches_the_client_and_its_next_listing_on_every_route` | `a_servers_list_change_reaches_the_client_and_its_next_listing_on_every_route` |
//! | `list_changed` (the client's next listing has what changed for its session, even after another client listed) | list_changed.rs | `a_servers_list_change_reaches_the_client_and_its_next_listing_on_every_route` | `a_servers_list_change_reaches_the_client_and_its_next_listing_on_every_route` | `a_servers_list_change_reaches_the_client_and_its_next_listing_on_every_route` | `a_servers_list_change_reaches_the_client_and_its_next_listing_on_every_route` |
//! | clients that declared different capabilities see what the server offers each | listings.rs | `clients_that_declared_different_capabilities_see_what_the_server_offers_each` (a `"stateful"` child; a shared child is told what any client may answer) | `clients_that_declared_different_capabilities_see_what_the_server_offers_each` | `clients_that_declared_different_capabilities_see_what_the_server_offers_each` | `clients_that_declared_different_capabilities_see_what_the_server_offers_each` |
//! | subscriptions | subscriptions.rs | `subscriptions_are_kept_per_client_on_every_route` | `subscriptions_are_kept_per_client_on_every_route` | `subscriptions_are_kept_per_client_on_every_route` | `subscriptions_are_kept_per_client_on_every_route` |
//! | resumption with `Last-Event-ID` (a lost stream) | resume.rs | `a_lost_stream_resumes_with_last_event_id_on_every_path` | `a_lost_stream_resumes_with_last_event_id_on_every_path` | `a_lost_stream_resumes_with_last_event_id_on_every_path` | `a_lost_stream_resumes_with_last_event_id_on_every_path` |
//! | resumption of a stream the server ends early | resume.rs | n/a: a stdio server has no stream of its own to end (the gateway writes the client's) | n/a: a stdio server has no stream of its own to end (the gateway writes the client's) | `a_stream_the_server_ends_early_still_brings_the_answer` | `a_stream_the_server_ends_early_still_brings_the_answer` |
//! | a client's roots and URL elicitation reach the server (the client seen as itself) | client_caps.rs | `a_clients_roots_reach_a_stdio_server_its_own_or_shared`, `a_url_elicitation_reaches_a_client_that_declared_it_and_no_other` | `a_url_elicitation_reaches_a_client_that_declared_it_and_no_other` | `a_remote_server_sees_the_clients_own_roots_and_url_elicitation` | `a_remote_server_sees_the_clients_own_roots_and_url_elicitation` |
//! | key order kept (schemas, results, forms; both eras), against the server direct | fidelity.rs | `schemas_and_results_keep_their_key_order_on_every_route` | `schemas_and_results_keep_their_key_order_on_every_route` | `schemas_and_results_keep_their_key_order_on_every_route` | `schemas_and_results_keep_their_key_order_on_every_route` |
//! | every method of five real servers (npm's server-everything, on stdio and Streamable HTTP, server-filesystem, server-memory; PyPI's mcp-server-time, mcp-server-fetch on a local site) answers as direct: alone byte for byte (ids aside), merged but for the documented prefixes, key order kept | bytes.rs | `real_servers_answer_through_the_gateway_what_they_answer_direct`, `initialize_on_a_lone_endpoint_is_the_servers_own_answer` | `real_servers_answer_through_the_gateway_what_they_answer_direct` | `real_servers_answer_through_the_gateway_what_they_answer_direct` (server-everything over Streamable HTTP, `evhttp`; four of the five speak stdio only) | `real_servers_answer_through_the_gateway_what_they_answer_direct` (`evhttp`) |
//! | the Python clients (the official `mcp` SDK's `ClientSession`, FastMCP's `Client`, on the handshake and by default): a scripted session (tools, prompts, resources, subscribe, progress, sampling, elicitation, roots) as direct | python_clients.rs | `the_python_sdk_client_gets_what_it_gets_direct_on_every_route`, `fastmcps_client_on_the_handshake_gets_what_it_gets_direct_on_every_route`, `fastmcps_default_client_gets_what_it_gets_direct_on_every_route` (2026-07-28 through the gateway: subscribe by `subscriptions/listen`, roots asked before the call) | as lone stdio | as lone stdio; `a_modern_callers_roots_reach_a_server_that_asks_on_its_own_on_every_remote_route` (modern_clients.rs) | as lone remote |
//! | `jwt` mode: no token or a bad one refused (401, challenge), a valid one served, sessions bound to their opener, the caller's token never sent on | auth_jwt.rs | `every_route_takes_only_valid_tokens_from_the_issuer` (both eras; POST, GET, DELETE) | `every_route_takes_only_valid_tokens_from_the_issuer` | `every_route_takes_only_valid_tokens_from_the_issuer` | `every_route_takes_only_valid_tokens_from_the_issuer` |
//! | users and rights: listings and calls agree per user (tools, prompts, resources), unknown users 403, audit lines | rights.rs | `each_user_sees_and_calls_only_what_is_granted_on_every_route` (both eras) | `each_user_sees_and_calls_only_what_is_granted_on_every_route` | `each_user_sees_and_calls_only_what_is_granted_on_every_route` (tools; prompts and resources: the stdio server has them) | `each_user_sees_and_calls_only_what_is_granted_on_every_route` |
//! | token exchange (RFC 8693): each caller reaches the server as themselves | token_exchange.rs | n/a: a stdio child has no HTTP request to carry a token | n/a: as lone stdio | `each_caller_reaches_the_server_as_themselves_on_every_route` | `each_caller_reaches_the_server_as_themselves_on_every_route` |
//! | a modern (2026-07-28) client | modern_clients.rs | `a_modern_client_reaches_legacy_servers_on_every_route` | `a_modern_client_reaches_legacy_servers_on_every_route` | `a_modern_client_reaches_legacy_servers_on_every_route` | `a_modern_client_reaches_legacy_servers_on_every_route` |
//! | a modern-only server, legacy client | modern_clients.rs | n/a: stdio children are spoken to in 2025 only (no modern-only stdio server) | n/a: stdio children are spoken to in 2025 only (no modern-only stdio server) | `a_legacy_client_reaches_a_modern_only_server_on_every_remote_route` | `a_legacy_client_reaches_a_modern_only_server_on_every_remote_route` |
//!
//! Also here, on the routes they concern: the front's guard, `/admin/reload` and `/metrics`
//! (front.rs); three upstreams of three kinds, legacy HTTP+SSE among them (routing.rs); two
//! clients' elicitations and progress kept apart (elicitation.rs); a lone stdio server spoken to as
//! it is (lone_stdio.rs); names left out of listings (listings.rs); other clients' files served
//! as they are, server names with dots and spaces (client_files.rs); live reload (reload.rs);
//! SIGTERM (shutdown.rs); the gateway at its limits (limits.rs).
//!
//! Nothing waits by sleeping: a test waits for the event it needs — a message on a stream
//! ([`Sse`]), a line in a log, `/readyz`, the bytes a stdio child has read ([`bytes_read`]).
//! Timeouts run on the real clock, kept short (a one-second `timeout`): the servers are other
//! processes, which tokio's paused clock cannot reach.

mod auth_jwt;
mod auth_oauth;
mod authz_edges;
mod bytes;
mod cancellation;
mod client_caps;
mod client_files;
mod elicitation;
mod fidelity;
mod forward_token;
mod front;
mod hidden_tools;
mod limits;
mod list_changed;
mod listings;
mod lone_stdio;
pub(crate) mod modern_clients;
mod progress;
mod python_clients;
mod refusals;
mod reload;
mod restart;
mod resume;
mod rights;
mod routing;
mod shutdown;
mod subscriptions;
mod timeout;
mod token_exchange;
mod tokens;
mod upstream_sign_in;

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ::bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::harness::*;
use crate::idp::until;

/// Three event loops, more than CI's cores: a session's connections (its POSTs, its GET stream)
/// land on different loops, so every test here also checks that nothing depends on sharing one.
/// `/readyz` answers 200 once every server is ready.
pub(crate) fn write_config(path: &FsPath, servers: Value) {
    let cfg = json!({"mcpgate": {"threads": 3, "ready": "all"}, "mcpServers": servers});
    std::fs::write(path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

pub(crate) async fn serve(config: &FsPath) -> Proc {
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(config).args(["--listen", "127.0.0.1:0", "-v"]);
    Proc::start("mcpgate serve", cmd).await
}

/// Waits until `/readyz` says 200.
async fn ready(gw: &Proc) {
    let ready = until(Duration::from_secs(30), || async {
        request("GET", &format!("{}/readyz", base(&gw.url)), &[], "").await.status == 200
    })
    .await;
    assert!(
        ready,
        "not ready: {}\n{}",
        request("GET", &format!("{}/readyz", base(&gw.url)), &[], "").await.body,
        gw.output()
    );
}

/// `mcpgate serve` with `servers` (its config file in `dir`), once every server is ready.
pub(crate) async fn serve_ready(dir: &FsPath, servers: Value) -> Proc {
    let config = dir.join("mcpgate.json");
    write_config(&config, servers);
    let gw = serve(&config).await;
    ready(&gw).await;
    gw
}

pub(crate) fn base(url: &str) -> String {
    url.trim_end_matches("/mcp").to_owned()
}

/// The tool names a session sees.
async fn tool_names(url: &str, sid: &str) -> Vec<String> {
    let r = call(url, sid, &[], r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#).await;
    r.message()["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn tool_call(id: Value, name: &str, args: Value) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":args}}).to_string()
}

pub(crate) async fn call_text(url: &str, sid: &str, name: &str, args: Value) -> Value {
    call(url, sid, &[], &tool_call(json!(5), name, args)).await.message()
}

/// The text of a tool's answer, or what came instead.
pub(crate) fn text_of(m: &Value) -> &str {
    m["result"]["content"][0]["text"].as_str().unwrap_or_default()
}

/// One `/metrics` sample (the line starting with `name`, labels included), if present.
async fn metric(url: &str, name: &str) -> Option<f64> {
    let body = request("GET", &format!("{}/metrics", base(url)), &[], "").await.body;
    body.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// An initialize that declares what the SDK client declares (elicitation, sampling, roots):
/// server-everything offers its elicitation and sampling tools only to such clients.
const INITIALIZE_ALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{},"sampling":{},"roots":{"listChanged":true}},"clientInfo":{"name":"raw-test","version":"1"}}}"#;

/// initialize (with [`INITIALIZE_ALL`]) + notifications/initialized; returns the session id.
pub(crate) async fn session(url: &str) -> String {
    let r = request("POST", url, MCP_HEADERS, INITIALIZE_ALL).await;
    assert_eq!(r.status, 200, "initialize at {url} failed: {}", r.body);
    let sid = r.header("mcp-session-id").expect("a session id").to_owned();
    let r = call(url, &sid, &[], r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    assert_eq!(r.status, 202, "initialized at {url} failed: {}", r.body);
    sid
}

/// A response being read message by message: an event stream, or one JSON body.
pub(crate) struct Sse {
    pub status: u16,
    body: hyper::body::Incoming,
    buf: String,
    json: bool,
}

/// What [`Sse::next`] found.
#[derive(Debug)]
pub(crate) enum Next {
    Message(Value),
    End,
    Quiet,
}

impl Sse {
    pub async fn open(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Sse {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = tokio::time::timeout(
            Duration::from_secs(30),
            client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()),
        )
        .await
        .unwrap_or_else(|_| panic!("{method} {url}: no answer within 30 s"))
        .expect("request sent");
        let json = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("application/json"));
        Sse { status: resp.status().as_u16(), body: resp.into_body(), buf: String::new(), json }
    }

    /// A POST in session `sid`, its answer read as it comes.
    pub async fn post(url: &str, sid: &str, body: &str) -> Sse {
        let mut h = MCP_HEADERS.to_vec();
        h.push(("mcp-session-id", sid));
        h.push(("mcp-protocol-version", "2025-06-18"));
        Sse::open("POST", url, &h, body).await
    }

    /// The session's GET stream.
    pub async fn get(url: &str, sid: &str) -> Sse {
        let h = [("accept", "text/event-stream"), ("mcp-session-id", sid), ("mcp-protocol-version", "2025-06-18")];
        let s = Sse::open("GET", url, &h, "").await;
        assert_eq!(s.status, 200, "GET stream at {url}");
        s
    }

    /// The next message within `limit` (events without data, such as priming, are skipped).
    pub async fn next(&mut self, limit: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if !self.json
                && let Some(end) = self.buf.find("\n\n")
            {
                let raw: String = self.buf.drain(..end + 2).collect();
                let data: String =
                    raw.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.trim_start()).collect();
                if data.trim().is_empty() {
                    continue;
                }
                return Next::Message(serde_json::from_str(&data).unwrap_or_else(|_| panic!("not JSON: {data}")));
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return Next::Quiet,
                Ok(None) | Ok(Some(Err(_))) => {
                    // A JSON answer is one message, the whole body.
                    let body = std::mem::take(&mut self.buf);
                    if self.json && !body.trim().is_empty() {
                        return Next::Message(
                            serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")),
                        );
                    }
                    return Next::End;
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&data).replace("\r\n", "\n"));
                    }
                }
            }
        }
    }

    /// Reads until a message satisfies `pred` (returned), or the stream ends or stays quiet for
    /// `limit` (then `Err` with everything that came).
    pub async fn until(&mut self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value, Vec<Value>> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            match self.next(deadline.saturating_duration_since(tokio::time::Instant::now())).await {
                Next::Message(m) if pred(&m) => return Ok(m),
                Next::Message(m) => seen.push(m),
                Next::End | Next::Quiet => return Err(seen),
            }
        }
    }

    /// Reads to the response (a message with an id and no method).
    pub async fn answer(&mut self, limit: Duration) -> Result<Value, Vec<Value>> {
        self.until(limit, |m| m.get("id").is_some() && m.get("method").is_none()).await
    }
}

/// Whether `m` is the notification `method`.
fn is(method: &'static str) -> impl Fn(&Value) -> bool {
    move |m| m["method"] == method
}

/// The four ways a client reaches a server through the gateway: the server alone on its own
/// endpoint (`/servers/<name>/mcp`, unprefixed, as it is) or merged with others on `/mcp`
/// (`<name>__tool`); the server a stdio child or remote over Streamable HTTP. The stdio server
/// is named `local`, the remote one `remote`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    LoneStdio,
    MergedStdio,
    LoneRemote,
    MergedRemote,
}

pub(crate) use Route::*;

pub(crate) const ROUTES: [Route; 4] = [LoneStdio, MergedStdio, LoneRemote, MergedRemote];
pub(crate) const REMOTE: [Route; 2] = [LoneRemote, MergedRemote];

impl Route {
    pub fn stdio(self) -> bool {
        matches!(self, LoneStdio | MergedStdio)
    }

    pub fn lone(self) -> bool {
        matches!(self, LoneStdio | LoneRemote)
    }

    /// The server's name in the configuration.
    pub fn server(self) -> &'static str {
        if self.stdio() { "local" } else { "remote" }
    }

    /// The endpoint of this route on the gateway at `gw_url` (its `/mcp`).
    pub fn url(self, gw_url: &str) -> String {
        if self.lone() { format!("{}/servers/{}/mcp", base(gw_url), self.server()) } else { gw_url.to_owned() }
    }

    /// What the client prefixes the server's names with.
    pub fn prefix(self) -> String {
        if self.lone() { String::new() } else { format!("{}__", self.server()) }
    }

    /// A name of the server's as the client sees it.
    pub fn name(self, name: &str) -> String {
        format!("{}{name}", self.prefix())
    }

    /// A resource URI of the server's as the client sees it (merged: naming its server).
    pub fn uri(self, uri: &str) -> String {
        if self.lone() { uri.to_owned() } else { format!("mcpgate://{}/{uri}", self.server()) }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, at) = match self {
            LoneStdio => ("a lone stdio server", "/servers/local/mcp"),
            MergedStdio => ("a stdio server merged", "/mcp, local__"),
            LoneRemote => ("a lone remote server", "/servers/remote/mcp"),
            MergedRemote => ("a remote server merged", "/mcp, remote__"),
        };
        write!(f, "{what} ({at})")
    }
}

/// Runs `f` on each route in turn, each in a task of its own so that one route's failure does
/// not hide the next one's; fails at the end naming every route that failed, and why.
pub(crate) async fn on_routes<T, F, Fut>(ctx: &Arc<T>, routes: &[Route], f: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>, Route) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut failed = Vec::new();
    for &route in routes {
        if let Err(e) = tokio::spawn(f(ctx.clone(), route)).await {
            let why = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            failed.push(format!("— on {route}:\n{why}"));
        }
    }
    assert!(failed.is_empty(), "failed on {} of {} routes:\n{}", failed.len(), routes.len(), failed.join("\n"));
}

/// A stdio MCP server in a few lines of Node with one tool, `echo`: the second stdio server of a
/// merged view (small, quick to start, and with no resources to mix with server-everything's).
const ECHO_SERVER: &str = r#"
const out = (m) => process.stdout.write(JSON.stringify(m) + "\n");
let buf = "";
process.stdin.on("data", (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    if (!line.trim()) continue;
    const m = JSON.parse(line);
    if (m.method === "initialize") {
      out({jsonrpc: "2.0", id: m.id, result: {protocolVersion: "2025-06-18", capabilities: {tools: {}},
        serverInfo: {name: "echo", version: "1"}}});
    } else if (m.method === "tools/list") {
      out({jsonrpc: "2.0", id: m.id, result: {tools: [{name: "echo", inputSchema: {type: "object"}}]}});
    } else if (m.method === "tools/call") {
      out({jsonrpc: "2.0", id: m.id, result: {content: [{type: "text", text: "Echo: " + m.params.arguments.message}]}});
    } else if (m.method === "ping") {
      out({jsonrpc: "2.0", id: m.id, result: {}});
    } else if (m.id !== undefined && m.method) {
      out({jsonrpc: "2.0", id: m.id, error: {code: -32601, message: "no " + m.method}});
    }
  }
});
"#;

fn echo_server(dir: &FsPath) -> Value {
    let path = dir.join("echo-server.js");
    std::fs::write(&path, ECHO_SERVER).unwrap();
    json!({"command": node(), "args": [path]})
}

/// A gateway for every route: `local` (server-everything, stdio) and `remote` (server-everything
/// over Streamable HTTP, on a port of its own so a test can restart it), each with `extra` in its
/// configuration, and a second of each — `local2` (a small stdio echo server) and `remote2` (our
/// fixture) — so that the merged endpoint really merges. With `apart`, the stdio routes get one
/// gateway and the remote ones another (each with `local2` and `remote2`), for behaviours where
/// two server-everythings on one endpoint would be told apart by nothing but their order: they
/// offer the same resource URIs, and a URI goes to the first server by name that lists it.
pub(crate) struct Matrix {
    gws: Vec<Proc>,
    pub dir: PathBuf,
    pub remote: tokio::sync::Mutex<Proc>,
    pub remote_port: u16,
    _remote2: Proc,
}

impl Matrix {
    /// A 20-second call (`trigger-long-running-operation`, id and progress token `id`) sent to
    /// `route` in session `sid`, once it runs at its server: its first progress is here (nothing
    /// less says so: a stdio child may read files of its own meanwhile). Its stream, to read on.
    pub async fn slow_call_running(&self, route: Route, sid: &str, id: &str) -> Sse {
        let name = route.name("trigger-long-running-operation");
        let mut body: Value =
            serde_json::from_str(&tool_call(json!(id), &name, json!({"duration": 20, "steps": 20}))).unwrap();
        body["params"]["_meta"] = json!({"progressToken": id});
        let mut slow = Sse::post(&self.url(route), sid, &body.to_string()).await;
        let running = slow.until(Duration::from_secs(10), |m| m["method"] == "notifications/progress").await;
        assert!(running.is_ok(), "{route}: the call never reached the server: {running:?}\n{}", self.output());
        slow
    }

    pub async fn start(name: &str, local: Value, remote: Value, apart: bool) -> Arc<Matrix> {
        let dir = tempdir(name);
        let remote_port = free_port();
        let (upstream, remote2) = tokio::join!(everything("streamableHttp", remote_port), fixture(&[]));
        let with = |mut server: Value, extra: &Value| {
            for (k, v) in extra.as_object().unwrap() {
                server[k] = v.clone();
            }
            server
        };
        let local = with(stdio_everything(&dir), &local);
        let remote = with(json!({"url": upstream.url}), &remote);
        let local2 = echo_server(&dir);
        let others = json!({"local2": local2, "remote2": {"url": remote2.url}});
        let mut all = others.clone();
        all["local"] = local.clone();
        all["remote"] = remote.clone();
        let gws = if apart {
            let (s, r) = (tempdir(&format!("{name}-stdio")), tempdir(&format!("{name}-remote")));
            let mut stdio = others.clone();
            stdio["local"] = local;
            let mut remote_only = others;
            remote_only["remote"] = remote;
            let (a, b) = tokio::join!(serve_ready(&s, stdio), serve_ready(&r, remote_only));
            vec![a, b]
        } else {
            vec![serve_ready(&dir, all).await]
        };
        Arc::new(Matrix { gws, dir, remote: tokio::sync::Mutex::new(upstream), remote_port, _remote2: remote2 })
    }

    /// The gateway serving `route`.
    pub fn gw(&self, route: Route) -> &Proc {
        if route.stdio() { &self.gws[0] } else { self.gws.last().unwrap() }
    }

    /// The gateway's endpoint for `route`.
    pub fn url(&self, route: Route) -> String {
        route.url(&self.gw(route).url)
    }

    /// The last lines of the gateway's log (of both, with `apart`), for a failure's message.
    pub fn output(&self) -> String {
        let all = self.gws.iter().map(Proc::output).collect::<Vec<_>>().join("\n");
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The path that tells the stdio child `local` from every other process.
    pub fn marker(&self) -> PathBuf {
        self.dir.join("everything-stdio.js")
    }
}

/// The bytes the process running `marker` has read so far (/proc/PID/io): a stdio server reads
/// nothing but its stdin once it is up, so this grows when a call reaches it.
pub(crate) fn bytes_read(marker: &FsPath) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{}/io", child_pid(marker))).unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Waits until the stdio server running `marker` has read past `before` (see [`bytes_read`]).
pub(crate) async fn read_past(marker: &FsPath, before: u64) {
    let got = crate::harness::eventually(Duration::from_secs(10), || bytes_read(marker) > before).await;
    assert!(got, "the stdio server never read the call");
}

/// The pid of the one process whose command line holds `marker`.
pub(crate) fn child_pid(marker: &FsPath) -> u32 {
    let out = std::process::Command::new("pgrep").arg("-f").arg(marker).output().unwrap();
    let pids: Vec<u32> =
        String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect();
    assert_eq!(pids.len(), 1, "one process runs {}: {pids:?}", marker.display());
    pids[0]
}

/// Three upstreams of three kinds: server-everything as a stdio child (`local`), our fixture over
/// Streamable HTTP (`fixture`), server-everything over legacy HTTP+SSE (`legacy`).
struct Three {
    _fixture: Proc,
    _legacy: Proc,
    gw: Proc,
    dir: PathBuf,
}

async fn three(name: &str, extra: Value) -> Three {
    let dir = tempdir(name);
    let fixture = fixture(&[]).await;
    let legacy = everything("sse", 0).await;
    let mut servers = json!({
        "local": stdio_everything(&dir),
        "fixture": {"url": fixture.url},
        "legacy": {"url": legacy.url, "type": "sse"},
    });
    for (k, v) in extra.as_object().unwrap() {
        servers[k] = v.clone();
    }
    let gw = serve_ready(&dir, servers).await;
    Three { _fixture: fixture, _legacy: legacy, gw, dir }
}
