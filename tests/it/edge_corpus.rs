//! The smuggling and bad-input corpus, sent as raw bytes to both listeners (`connect` and
//! `serve`) and, where nginx is installed, to nginx as the reference. Each row says what must
//! come back (a status, or a connection closed without a word) and whether the connection must
//! close after it. The table of what each of the three answered is written to
//! `target/edge-corpus.md` (docs/SECURITY.md carries it, with each difference from nginx
//! explained).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

/// Which listeners a row applies to.
#[derive(Clone, Copy, PartialEq)]
enum On {
    Both,
    /// The gateway's own routes (`/admin/reload`, `/metrics`).
    Serve,
}

struct Row {
    case: &'static str,
    /// The request; `{host}` stands for the listener's `host:port`.
    wire: &'static [u8],
    /// The status, or 0: closed without an answer.
    status: u16,
    must_close: bool,
    on: On,
}

const fn row(case: &'static str, wire: &'static [u8], status: u16, must_close: bool) -> Row {
    Row { case, wire, status, must_close, on: On::Both }
}

fn corpus() -> Vec<Row> {
    let mut rows = vec![
        // A control: served, and the connection stays open.
        row("GET /healthz", b"GET /healthz HTTP/1.1\r\nhost: {host}\r\n\r\n", 200, false),
        row("bare LF line ends", b"GET /healthz HTTP/1.1\nhost: {host}\n\n", 200, false),
        // On a loopback listener the Host check wants a loopback name (DNS rebinding).
        row("HTTP/1.0 without Host", b"GET /healthz HTTP/1.0\r\n\r\n", 403, true),
        // Content-Length: ASCII digits, one of them.
        row("CL with a sign (+5)", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: +5\r\n\r\nhello", 400, true),
        row("CL with a minus (-1)", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: -1\r\n\r\n", 400, true),
        row("CL padded with NBSP", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: \xc2\xa05\r\n\r\nhello", 400, true),
        row("CL padded with U+3000", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: 5\xe3\x80\x80\r\n\r\nhello", 400, true),
        row("CL padded with NEL", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: \xc2\x855\r\n\r\nhello", 400, true),
        row("CL in hex (0x5)", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: 0x5\r\n\r\nhello", 400, true),
        row("two different CLs", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!", 400, true),
        row("two equal CLs", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello", 400, true),
        row("CL as a list (5, 5)", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: 5, 5\r\n\r\nhello", 400, true),
        // CL.TE, TE.CL, TE.TE.
        row("CL.TE", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nG", 400, true),
        row("TE.CL", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n", 400, true),
        row("TE xchunked", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: xchunked\r\n\r\n0\r\n\r\n", 501, true),
        row("TE chunked, identity", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n", 501, true),
        row("TE gzip, chunked", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, true),
        row("TE twice", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\ntransfer-encoding: identity\r\n\r\n0\r\n\r\n", 400, true),
        row("TE with a space before the colon", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding : chunked\r\n\r\n0\r\n\r\n", 400, true),
        row("TE with a vertical tab", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400, true),
        row("TE in HTTP/1.0", b"POST /mcp HTTP/1.0\r\nhost: {host}\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 400, true),
        row("chunk size with a sign", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n+2\r\n{}\r\n0\r\n\r\n", 400, true),
        row("chunk size empty", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\r\n{}\r\n0\r\n\r\n", 400, true),
        row("chunk size too long", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n10000000000000000\r\n", 400, true),
        // Host and target.
        row("two Hosts", b"GET /healthz HTTP/1.1\r\nhost: {host}\r\nhost: evil.example\r\n\r\n", 400, true),
        row("no Host (HTTP/1.1)", b"GET /healthz HTTP/1.1\r\n\r\n", 400, true),
        row("absolute target, another host", b"GET http://evil.example/healthz HTTP/1.1\r\nhost: {host}\r\n\r\n", 400, true),
        row("absolute target, same host", b"GET http://{host}/healthz HTTP/1.1\r\nhost: {host}\r\n\r\n", 200, false),
        row("target without a slash", b"GET healthz HTTP/1.1\r\nhost: {host}\r\n\r\n", 400, true),
        row("asterisk target (GET)", b"GET * HTTP/1.1\r\nhost: {host}\r\n\r\n", 400, true),
        row("NUL in the target", b"GET /heal\0thz HTTP/1.1\r\nhost: {host}\r\n\r\n", 400, true),
        row("malformed percent-encoding", b"GET /%zz HTTP/1.1\r\nhost: {host}\r\n\r\n", 404, false),
        row("method with a bad character", b"G@T /healthz HTTP/1.1\r\nhost: {host}\r\n\r\n", 400, true),
        row("HTTP/2.0 in a request line", b"GET /healthz HTTP/2.0\r\nhost: {host}\r\n\r\n", 505, true),
        // Header syntax.
        row("obs-fold", b"GET /healthz HTTP/1.1\r\nhost: {host}\r\nx-a: 1\r\n folded\r\n\r\n", 400, true),
        row("NUL in a header value", b"GET /healthz HTTP/1.1\r\nhost: {host}\r\nx-a: a\0b\r\n\r\n", 400, true),
        row("space in a header name", b"GET /healthz HTTP/1.1\r\nhost: {host}\r\nx a: 1\r\n\r\n", 400, true),
        row("Expect other than 100-continue", b"GET /healthz HTTP/1.1\r\nhost: {host}\r\nexpect: 200-ok\r\n\r\n", 417, true),
        // Browser rules on the MCP endpoint.
        row("a foreign Host", b"GET /healthz HTTP/1.1\r\nhost: evil.example\r\n\r\n", 403, false),
        row("two Origins, one foreign", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\norigin: http://localhost\r\norigin: https://evil.example\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}", 403, false),
        row("text/plain POST (no preflight)", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\n{}", 415, false),
        row("POST without Content-Type", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-length: 2\r\n\r\n{}", 415, false),
        row("POST accepting only text/html", b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\naccept: text/html\r\ncontent-length: 2\r\n\r\n{}", 406, false),
    ];
    // Sizes: a body over the limit is refused without being read, a head over 64 KiB too.
    rows.push(row(
        "body over maxBody (CL 5 MiB)",
        b"POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: 5242880\r\n\r\n{",
        413,
        true,
    ));
    rows.push(row("head over 64 KiB", b"{big}", 431, true));
    // The gateway's own routes: not for browser pages, not for other hosts.
    for (case, wire, status) in [
        ("reload with a foreign Origin", &b"POST /admin/reload HTTP/1.1\r\nhost: {host}\r\norigin: https://evil.example\r\ncontent-length: 0\r\n\r\n"[..], 403),
        ("reload with a loopback Origin", b"POST /admin/reload HTTP/1.1\r\nhost: {host}\r\norigin: http://localhost\r\ncontent-length: 0\r\n\r\n", 403),
        ("reload with a foreign Host", b"POST /admin/reload HTTP/1.1\r\nhost: evil.example\r\ncontent-length: 0\r\n\r\n", 403),
        ("metrics with a foreign Host", b"GET /metrics HTTP/1.1\r\nhost: evil.example\r\n\r\n", 403),
        ("readyz with a foreign Host", b"GET /readyz HTTP/1.1\r\nhost: evil.example\r\n\r\n", 403),
    ] {
        rows.push(Row { case, wire, status, must_close: false, on: On::Serve });
    }
    rows
}

/// What came back: the status (0 when the connection closed without an answer) and whether the
/// connection closed after it.
async fn send(addr: &str, wire: &[u8]) -> (u16, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let bytes: Vec<u8> = if wire == b"{big}" {
        let mut b = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n").into_bytes();
        for i in 0..2000 {
            b.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(40)).as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b
    } else {
        // Byte for byte: some rows are not UTF-8 on purpose.
        replace_bytes(wire, b"{host}", addr.as_bytes())
    };
    let _ = s.write_all(&bytes).await;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut closed = false;
    loop {
        if let Some((status, _)) = one_response(&got) {
            // Does the connection close after it? Wait a moment for the end.
            let mut rest = [0u8; 1024];
            let closed = match tokio::time::timeout(Duration::from_millis(300), s.read(&mut rest)).await {
                Ok(Ok(0)) | Ok(Err(_)) => true,
                Ok(Ok(_)) => false,
                Err(_) => false,
            };
            return (status, closed);
        }
        let mut buf = [0u8; 65536];
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    (one_response(&got).map_or(0, |r| r.0), closed)
}

/// The first whole response in `got` (skipping a `100 Continue`): its status and length.
fn one_response(got: &[u8]) -> Option<(u16, usize)> {
    let text = String::from_utf8_lossy(got);
    let end = text.find("\r\n\r\n")?;
    let head = text[..end].to_ascii_lowercase();
    let status: u16 = head.get(9..12)?.parse().ok()?;
    if status == 100 {
        return one_response(&got[end + 4..]);
    }
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    (got.len() >= end + 4 + len).then_some((status, end + 4 + len))
}

fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// nginx in front of nothing (a dead port) with `/healthz` answered, as the reference.
async fn nginx(dir: &std::path::Path) -> Option<(tokio::process::Child, String)> {
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).exists())?;
    let port = free_port();
    let dead = free_port();
    std::fs::create_dir_all(dir.join("logs")).ok()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
             client_max_body_size 4m;\n\
             server {{ listen 127.0.0.1:{port}; server_name localhost;\n\
             location = /healthz {{ return 200 \"ok\\n\"; }}\n\
             location / {{ proxy_pass http://127.0.0.1:{dead}; }} }} }}\n",
            d = dir.display()
        ),
    )
    .ok()?;
    let child = tokio::process::Command::new(bin)
        .args(["-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if TcpStream::connect(&addr).await.is_ok() {
            return Some((child, addr));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn the_smuggling_and_bad_input_corpus_holds_on_both_listeners() {
    let dir = tempdir("edge-corpus");
    // `connect` in front of nothing (a dead port): no row may reach an upstream anyway.
    let dead = format!("http://127.0.0.1:{}/mcp", free_port());
    let connect = connect(&dead, &[]).await;
    let config = dir.join("mcpgate.json");
    std::fs::write(&config, serde_json::to_vec(&serde_json::json!({"mcpServers": {"gone": {"url": dead}}})).unwrap())
        .unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", "127.0.0.1:0"]);
    let serve = Proc::start("mcpgate serve", cmd).await;
    let host = |url: &str| url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let (connect_addr, serve_addr) = (host(&connect.url), host(&serve.url));
    let reference = nginx(&dir.join("nginx")).await;

    let mut table = String::from("| case | expected | `connect` | `serve` | nginx |\n|---|---|---|---|---|\n");
    let mut failures = Vec::new();
    let show = |(status, closed): (u16, bool)| {
        let s = if status == 0 { "no answer".to_owned() } else { status.to_string() };
        if closed { format!("{s}, closed") } else { s }
    };
    for row in corpus() {
        let want = (row.status, row.must_close);
        let mut cells = Vec::new();
        for (name, addr) in [("connect", &connect_addr), ("serve", &serve_addr)] {
            if row.on == On::Serve && name == "connect" {
                cells.push("—".to_owned());
                continue;
            }
            let got = send(addr, row.wire).await;
            if got.0 != want.0 || (want.1 && !got.1) {
                failures.push(format!("{name}: {}: expected {}, got {}", row.case, show(want), show(got)));
            }
            cells.push(show(got));
        }
        let nginx_cell = match (&reference, row.on) {
            (Some((_, addr)), On::Both) => show(send(addr, row.wire).await),
            (None, _) => "not installed".to_owned(),
            (_, On::Serve) => "—".to_owned(),
        };
        let expected = show(want).replace(", closed", ", must close");
        table.push_str(&format!("| {} | {expected} | {} | {} | {nginx_cell} |\n", row.case, cells[0], cells[1]));
    }
    let out = repo().join("target/edge-corpus.md");
    let _ = std::fs::write(&out, &table);
    println!("{table}");
    assert!(failures.is_empty(), "{} row(s) failed:\n{}\n\n{table}", failures.len(), failures.join("\n"));
    // Nothing crashed on the way.
    for p in [&connect, &serve] {
        assert!(!p.output().contains("panicked"), "{}", p.output());
    }
}

/// A message that is not JSON-RPC 2.0 is refused at once (-32600), on every path: `connect`,
/// and through `serve` to a lone stdio server on the merged endpoint and on its own — before,
/// the child dropped it and the client waited out the server's whole timeout.
#[tokio::test]
async fn a_message_that_is_not_json_rpc_2_is_refused_at_once_on_every_path() {
    let dir = tempdir("edge-jsonrpc");
    let upstream = everything("streamableHttp", 0).await;
    let connect = connect(&upstream.url, &[]).await;
    let config = dir.join("mcpgate.json");
    let everything_stdio = serde_json::json!({
        "command": node(),
        "args": [repo().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"), "stdio"],
        "timeout": "20s"
    });
    std::fs::write(
        &config,
        serde_json::to_vec(&serde_json::json!({"mcpServers": {"local": everything_stdio}})).unwrap(),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", "127.0.0.1:0"]);
    let serve = Proc::start("mcpgate serve", cmd).await;
    let base = serve.url.trim_end_matches("/mcp").to_owned();
    let ready = crate::idp::until(Duration::from_secs(30), || async {
        request("GET", &format!("{base}/readyz"), &[], "").await.status == 200
    })
    .await;
    assert!(ready, "{}", serve.output());
    for url in [connect.url.clone(), serve.url.clone(), format!("{base}/servers/local/mcp")] {
        let sid = open_session(&url, &[]).await;
        for body in [r#"{"id":5,"method":"tools/list"}"#, r#"{"jsonrpc":"1.0","id":5,"method":"tools/list"}"#] {
            let started = std::time::Instant::now();
            let r = call(&url, &sid, &[], body).await;
            assert_eq!(r.status, 400, "{url}: {body}: {}", r.body);
            let answer = r.json();
            assert_eq!(answer["error"]["code"], -32600, "{url}: {body}: {answer}");
            assert_eq!(answer["id"], 5, "{url}: {body}: {answer}");
            assert!(started.elapsed() < Duration::from_secs(2), "{url}: took {:?}", started.elapsed());
        }
        // The session still works.
        let r = call(&url, &sid, &[], r#"{"jsonrpc":"2.0","id":6,"method":"tools/list"}"#).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
    }
}
