//! Resuming a call's event stream through `serve` (SEP-1699): a client that loses the stream
//! midway sends `GET` with `Last-Event-ID` and gets the rest, its answer included; a server that
//! ends a stream on purpose before answering is resumed by the gateway (merged endpoint) or by
//! the client through it (a server seen alone, as it is). On every path: a stdio server and a
//! remote one, seen alone (`/servers/<name>/mcp`) and merged with another (`/mcp`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::harness::*;
use crate::serve::{base, serve_ready};

/// The revision whose clients get a priming event on every stream.
const VERSION: &str = "2025-11-25";

/// An event stream being read, event by event.
struct Events {
    body: hyper::body::Incoming,
    buf: String,
}

/// One SSE event: its id and data (empty for a priming event).
#[derive(Debug)]
struct Event {
    id: Option<String>,
    data: String,
}

impl Events {
    /// The next event, or `None` when the stream ends (within 20 s).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut ev = Event { id: None, data: String::new() };
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        ev.data.push_str(v);
                    }
                }
                return Some(ev);
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.body.frame())
                .await
                .expect("the stream stalled for 20 s")?
                .ok()?;
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// Events up to the response with `id` (or the stream's end); the last event id seen.
    async fn until_response(&mut self, id: i64) -> (Vec<Value>, Option<String>) {
        let (mut messages, mut last) = (Vec::new(), None);
        while let Some(ev) = self.next().await {
            last = ev.id.or(last);
            if ev.data.trim().is_empty() {
                continue;
            }
            let m: Value = serde_json::from_str(&ev.data).unwrap_or_else(|_| panic!("not JSON: {}", ev.data));
            let done = m["id"] == id && m.get("method").is_none();
            messages.push(m);
            if done {
                break;
            }
        }
        (messages, last)
    }
}

/// Sends a request whose answer is an event stream, in session `sid`.
async fn open(method: &str, url: &str, sid: &str, extra: &[(&str, &str)], body: &str) -> Events {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", VERSION);
    if method == "POST" {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()),
    )
    .await
    .expect("no answer within 30 s")
    .expect("request sent");
    assert_eq!(resp.status(), 200, "{method} {url}: {:?}", resp.headers());
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(ct.starts_with("text/event-stream"), "{method} {url}: {ct}");
    Events { body: resp.into_body(), buf: String::new() }
}

async fn session(url: &str) -> String {
    let mut h = MCP_HEADERS.to_vec();
    h.push(("mcp-protocol-version", VERSION));
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":VERSION,
        "capabilities":{},"clientInfo":{"name":"resume-test","version":"1"}}});
    let r = request("POST", url, &h, &init.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r.header("mcp-session-id").unwrap().to_owned();
    h.push(("mcp-session-id", &sid));
    let r = request("POST", url, &h, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    assert_eq!(r.status, 202, "{}", r.body);
    sid
}

/// A call that reports progress four times over about two seconds: server-everything's tool,
/// or our fixture's (server-everything's own store of events does not resume a stream).
fn slow_call(tool: &str) -> String {
    let args = if tool.ends_with("slow_progress") {
        json!({"steps": 4, "delayMs": 500})
    } else {
        json!({"duration": 2, "steps": 4})
    };
    json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":tool,"arguments":args,
        "_meta":{"progressToken":"resume"}}})
    .to_string()
}

/// The client reads the priming event and the first progress, drops the connection, and
/// resumes from the last event it got: the rest of the progress and the answer arrive.
async fn lose_and_resume(url: &str, tool: &str) {
    let sid = session(url).await;
    let mut first = open("POST", url, &sid, &[], &slow_call(tool)).await;
    let priming = first.next().await.expect("a priming event");
    assert!(priming.id.is_some() && priming.data.trim().is_empty(), "{priming:?}");
    let progress = first.next().await.expect("a progress notification");
    assert!(progress.data.contains("notifications/progress"), "{progress:?}");
    let last = progress.id.expect("events carry ids");
    drop(first);

    let mut rest = open("GET", url, &sid, &[("last-event-id", &last)], "").await;
    let (messages, _) = rest.until_response(7).await;
    let answer = messages.last().unwrap_or_else(|| panic!("nothing after {last}"));
    assert_eq!(answer["id"], 7, "{messages:?}");
    let text = answer["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("completed"), "{tool} at {url}: {answer}");
    // The session's own stream: the newest GET takes it over, and the one open before ends
    // (its client may have left it without the gateway knowing yet).
    let mut own = open("GET", url, &sid, &[], "").await;
    let _newer = open("GET", url, &sid, &[], "").await;
    // What was queued for it may still come first (a server's request, a log); then it ends.
    let ended = tokio::time::timeout(Duration::from_secs(5), async { while own.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the older stream ends when a newer one opens");
    let steps: Vec<f64> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_f64().unwrap())
        .collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "progress after {last}: {steps:?}");
    assert!(!steps.contains(&1.0), "the event before the resumption point came again: {steps:?}");
}

/// A stdio server and a Streamable HTTP one, each reachable alone and merged. Seen alone, the
/// remote server's stream is its own (relayed as it came): the resumption goes to it; every
/// other stream is the gateway's, and the gateway replays it.
#[tokio::test]
async fn a_lost_stream_resumes_with_last_event_id_on_every_path() {
    let dir = tempdir("serve-resume-lost");
    let remote = fixture(&[]).await;
    let gw = serve_ready(&dir, json!({"local": stdio_everything(&dir), "remote": {"url": remote.url}})).await;
    let root = base(&gw.url);
    lose_and_resume(&format!("{root}/servers/local/mcp"), "trigger-long-running-operation").await;
    lose_and_resume(&gw.url, "local__trigger-long-running-operation").await;
    lose_and_resume(&format!("{root}/servers/remote/mcp"), "slow_progress").await;
    lose_and_resume(&gw.url, "remote__slow_progress").await;
}

/// Our fixture's `test_reconnection` ends its stream before it answers. Seen alone, the client
/// resumes the server's own stream through the gateway; merged, the gateway resumes it and the
/// client's stream simply goes on to the answer.
#[tokio::test]
async fn a_stream_the_server_ends_early_still_brings_the_answer() {
    let dir = tempdir("serve-resume-server");
    let fixture = fixture(&[]).await;
    let gw = serve_ready(&dir, json!({"local": stdio_everything(&dir), "fixture": {"url": fixture.url}})).await;
    let call = |name: &str| {
        json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":name,"arguments":{}}}).to_string()
    };
    let done = |m: &Value| {
        m["result"]["content"][0]["text"].as_str().is_some_and(|t| t.contains("Reconnection test completed"))
    };

    let alone = format!("{}/servers/fixture/mcp", base(&gw.url));
    let sid = session(&alone).await;
    let mut stream = open("POST", &alone, &sid, &[], &call("test_reconnection")).await;
    let (before, last) = stream.until_response(7).await;
    assert!(before.is_empty(), "the server ends the stream before answering: {before:?}");
    let last = last.expect("the server's priming event has an id");
    let mut rest = open("GET", &alone, &sid, &[("last-event-id", &last)], "").await;
    let (after, _) = rest.until_response(7).await;
    assert!(after.last().is_some_and(done), "{after:?}\n{}", gw.output());

    let sid = session(&gw.url).await;
    let mut stream = open("POST", &gw.url, &sid, &[], &call("fixture__test_reconnection")).await;
    let (messages, _) = stream.until_response(7).await;
    assert!(messages.last().is_some_and(done), "{messages:?}\n{}", gw.output());
}
