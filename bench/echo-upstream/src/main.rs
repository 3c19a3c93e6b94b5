//! A minimal MCP server for the benchmarks, fast enough not to be the bottleneck. Two modes:
//!
//! - `echo-upstream 127.0.0.1:PORT`: Streamable HTTP on POST /mcp, JSON replies, any session id
//!   accepted, no logging. `initialize` → a result and an `Mcp-Session-Id`; notifications → 202;
//!   DELETE (a client ending its session) → 200; GET (a stream for server-initiated messages) → 405.
//! - `echo-upstream --stdio`: newline-delimited JSON-RPC on stdin/stdout (one message a line),
//!   answers written in order and flushed whenever no further input is already buffered, so a
//!   client that pipelines many requests gets them batched. Notifications and answers to
//!   requests of ours (there are none) are ignored. Exits at the end of stdin.
//!
//! Methods, both modes: `initialize`, `tools/list` → one tool `echo`, `tools/call` → the message
//! back, `ping`; anything else → -32601.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, BufWriter, Write};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The answer to one request (`None` for a notification, whose `id` is absent).
fn answer(msg: &Value) -> Option<Value> {
    let id = msg.get("id")?.clone();
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    let result = match method {
        "initialize" => json!({
            "protocolVersion": msg.pointer("/params/protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "echo-upstream", "version": "1.0.0"}
        }),
        "tools/list" => json!({"tools": [{"name": "echo", "description": "Echoes the message back",
            "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}}}]}),
        "tools/call" => {
            let text = msg.pointer("/params/arguments/message").and_then(Value::as_str).unwrap_or("");
            json!({"content": [{"type": "text", "text": text}]})
        }
        "ping" => json!({}),
        _ => return Some(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}})),
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // No server-initiated stream (GET → 405, as the spec allows); a client ending its session → 200.
    match *req.method() {
        Method::POST => {}
        Method::DELETE => return Ok(status(StatusCode::OK)),
        _ => {
            let mut r = status(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut().insert("allow", "POST, DELETE".parse().unwrap());
            return Ok(r);
        }
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else { return Ok(status(StatusCode::BAD_REQUEST)) };
    let init = msg.get("method").and_then(Value::as_str) == Some("initialize");
    match answer(&msg) {
        Some(v) => Ok(reply(v, init)),
        None => Ok(status(StatusCode::ACCEPTED)),
    }
}

fn reply(v: Value, with_session: bool) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    if with_session {
        r.headers_mut().insert("mcp-session-id", "echo-session-1".parse().unwrap());
    }
    r
}

fn status(s: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = s;
    r
}

/// Newline-delimited JSON-RPC on stdin/stdout, on this thread: no runtime, no locks per message.
fn stdio() {
    let mut input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut output = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.trim_ascii();
        if !text.is_empty() {
            // A line that is not JSON, or an answer/notification (no method or no id): nothing to say.
            if let Ok(msg) = serde_json::from_slice::<Value>(text) {
                if msg.get("method").is_some() {
                    if let Some(v) = answer(&msg) {
                        let _ = serde_json::to_writer(&mut output, &v);
                        let _ = output.write_all(b"\n");
                    }
                }
            }
        }
        // Flush when the client has nothing more queued: one write for a burst of requests.
        if input.buffer().is_empty() && output.flush().is_err() {
            break;
        }
    }
    let _ = output.flush();
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    if arg == "--stdio" {
        return stdio();
    }
    http(arg);
}

#[tokio::main]
async fn http(addr: String) {
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("listening on http://{}/mcp", listener.local_addr().expect("addr"));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(handle)).await;
        });
    }
}
