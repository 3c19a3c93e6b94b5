//! Time and room on both listeners: silent, slow and stalled connections are closed at their
//! timeouts; a slowloris crowd and a pile of idle sockets — even past the descriptors the
//! process may open — never keep a client with something to say from its answer. The crowd
//! comes from 127.0.0.2, the client from 127.0.0.1 (loopback takes any 127/8 source).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::*;

/// `connect` and `serve` with short timeouts (idle 2 s, head and body 1 s), in front of nothing:
/// these tests never reach an upstream. `prefix` runs the binary under `sh -c` (a ulimit).
async fn listeners(dir: &std::path::Path, prefix: Option<&str>) -> Vec<(&'static str, Proc)> {
    let dead = format!("http://127.0.0.1:{}/mcp", free_port());
    let config = dir.join("mcpgate.json");
    let cfg = serde_json::json!({
        "mcpgate": {"idleTimeout": "2s", "headTimeout": "1s", "bodyTimeout": "1s", "threads": 2},
        "mcpServers": {"gone": {"url": dead}}
    });
    std::fs::write(&config, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let connect_args =
        format!("connect {dead} --listen 127.0.0.1:0 --idle-timeout 2s --head-timeout 1s --body-timeout 1s");
    let serve_args = format!("serve --config {} --listen 127.0.0.1:0", config.display());
    let mut out = Vec::new();
    for (name, args) in [("connect", connect_args), ("serve", serve_args)] {
        let cmd = match prefix {
            Some(p) => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(format!("{p} && exec {} {args}", mcpgate_bin()));
                c
            }
            None => {
                let mut c = tokio::process::Command::new(mcpgate_bin());
                c.args(args.split(' '));
                c
            }
        };
        out.push((name, Proc::start(name, cmd).await));
    }
    out
}

fn addr_of(p: &Proc) -> String {
    p.url.trim_start_matches("http://").split('/').next().unwrap().to_owned()
}

/// A connection from 127.0.0.2 (the crowd's address).
async fn from_crowd(addr: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(addr.parse().unwrap()).await.unwrap()
}

/// Reads until the peer closes; what it sent and how long that took (`None`: still open at `limit`).
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), Some(started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), None),
        }
    }
}

/// One GET /healthz on a new connection from 127.0.0.1, answered within `limit`.
async fn healthz_within(addr: &str, limit: Duration) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut all = String::new();
        s.read_to_string(&mut all).await.ok()?;
        Some(all.starts_with("HTTP/1.1 200 "))
    };
    matches!(tokio::time::timeout(limit, attempt).await, Ok(Some(true)))
}

#[tokio::test]
async fn silent_slow_stalled_and_idle_connections_close_at_their_timeouts() {
    let dir = tempdir("edge-timeouts");
    for (name, p) in listeners(&dir, None).await {
        let addr = addr_of(&p);
        let post = |len: usize| {
            format!(
                "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
            )
        };
        // Each case: what is sent, then the connection is left alone; how it must end.
        let cases: Vec<(&str, Vec<u8>, Option<&str>, Duration)> = vec![
            ("sends nothing", vec![], None, Duration::from_secs(1)),
            (
                "a head never finished",
                format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n").into_bytes(),
                None,
                Duration::from_secs(1),
            ),
            (
                "a small body stalled",
                (post(100) + "{\"jsonrpc\"").into_bytes(),
                Some("HTTP/1.1 408 "),
                Duration::from_secs(1),
            ),
            (
                "a large body stalled",
                {
                    let mut b = post(4 * 1024 * 1024 - 1).into_bytes();
                    b.extend(std::iter::repeat_n(b' ', 256 * 1024));
                    b
                },
                Some("HTTP/1.1 408 "),
                Duration::from_secs(1),
            ),
            (
                "idle after a request",
                format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n").into_bytes(),
                Some("HTTP/1.1 200 "),
                Duration::from_secs(2),
            ),
            (
                "HTTP/1.0 keep-alive, then a head never finished",
                format!(
                    "GET /healthz HTTP/1.0\r\nhost: {addr}\r\nconnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n"
                )
                .into_bytes(),
                Some("HTTP/1.1 200 "),
                Duration::from_secs(1),
            ),
        ];
        let runs = cases.into_iter().map(|(case, wire, answer, timeout)| {
            let addr = addr.clone();
            async move {
                let mut s = TcpStream::connect(&addr).await.unwrap();
                s.write_all(&wire).await.unwrap();
                let (got, closed_after) = until_closed(&mut s, Duration::from_secs(10)).await;
                (case, answer, timeout, got, closed_after)
            }
        });
        let mut results = Vec::new();
        for r in runs.collect::<Vec<_>>() {
            results.push(tokio::spawn(r));
        }
        for r in results {
            let (case, answer, timeout, got, closed_after) = r.await.unwrap();
            let closed_after = closed_after.unwrap_or_else(|| panic!("{name}: {case}: still open after 10 s: {got:?}"));
            // Closed at the timeout, not long after it (the slack covers a loaded machine).
            assert!(
                closed_after >= timeout.mul_f32(0.8) && closed_after < timeout + Duration::from_secs(3),
                "{name}: {case}: closed after {closed_after:?}, the timeout is {timeout:?}"
            );
            match answer {
                Some(a) => assert!(got.starts_with(a), "{name}: {case}: {got:?}"),
                None => assert!(got.is_empty(), "{name}: {case}: {got:?}"),
            }
        }
        assert!(!p.output().contains("panicked"), "{}", p.output());
    }
}

#[tokio::test]
async fn a_slowloris_of_200_connections_does_not_stop_a_client() {
    let dir = tempdir("edge-slowloris");
    for (name, p) in listeners(&dir, None).await {
        let addr = addr_of(&p);
        let started = Instant::now();
        // 200 connections, each dribbling an endless head: a byte every 200 ms.
        let mut crowd = Vec::new();
        for _ in 0..200 {
            let addr = addr.clone();
            crowd.push(tokio::spawn(async move {
                let mut s = from_crowd(&addr).await;
                let line = b"GET /healthz HTTP/1.1\r\nx-a: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
                for b in line.iter().cycle().take(100) {
                    if s.write_all(&[*b]).await.is_err() {
                        return started.elapsed();
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                until_closed(&mut s, Duration::from_secs(5)).await.1.map_or(Duration::MAX, |_| started.elapsed())
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Meanwhile a client is served, every time, promptly.
        for i in 0..10 {
            assert!(healthz_within(&addr, Duration::from_secs(2)).await, "{name}: request {i} during the slowloris");
        }
        // Every slow connection was closed at the head timeout (1 s), not left to dribble on.
        for c in crowd {
            let ended = c.await.unwrap();
            assert!(ended < Duration::from_secs(5), "{name}: a slowloris connection lived {ended:?}");
        }
        assert!(!p.output().contains("panicked"), "{}", p.output());
    }
}

#[tokio::test]
async fn three_hundred_idle_sockets_under_256_descriptors_never_keep_a_client_out() {
    let dir = tempdir("edge-descriptors");
    for (name, p) in listeners(&dir, Some("ulimit -n 256")).await {
        let addr = addr_of(&p);
        // 300 connections that never send a byte (each stays until the head timeout, 1 s, or
        // until the gateway needs its place).
        let mut idle = Vec::new();
        for _ in 0..300 {
            idle.push(from_crowd(&addr).await);
        }
        assert!(healthz_within(&addr, Duration::from_secs(3)).await, "{name}: the client was kept out\n{}", p.output());
        drop(idle);
        // The flood is reported, not logged line by line.
        let out = p.output();
        let lines = out.lines().filter(|l| l.contains("accept failed") || l.contains("refused: Gateway")).count();
        assert!(lines <= 10, "{name}: {lines} lines about the flood:\n{out}");
        assert!(!out.contains("panicked"), "{out}");
    }
}

/// (VmRSS, VmHWM) of a process, in MiB.
fn memory_mb(p: &Proc) -> (f64, f64) {
    let (rss, hwm) = memory_of(p.child.id().expect("the process runs"));
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    (mib(rss), mib(hwm))
}

/// 32 connections each declaring a 4 MiB body, sending 1 MiB of it and stalling: before, each
/// held a buffer of its declared size (RSS +124–141 MB). Now a buffer grows with what arrives,
/// bodies in memory are bounded by `maxBufferedBodies` (the rest are refused with 503), and the
/// stalled ones end at the body timeout.
#[tokio::test]
async fn stalled_large_bodies_hold_no_more_than_the_budget() {
    let dir = tempdir("edge-stalled-bodies");
    for (name, p) in listeners(&dir, None).await {
        let addr = addr_of(&p);
        let (before, _) = memory_mb(&p);
        let mut conns = Vec::new();
        for _ in 0..32 {
            let mut s = from_crowd(&addr).await;
            let head = format!(
                "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                4 * 1024 * 1024 - 1
            );
            s.write_all(head.as_bytes()).await.unwrap();
            // A refused connection may close mid-write: that is the point.
            let _ = s.write_all(&vec![b' '; 1024 * 1024]).await;
            conns.push(s);
        }
        // Every one of them ends: refused at once (503), or at the body timeout (408).
        let mut refused = 0;
        for mut s in conns {
            let (got, closed) = until_closed(&mut s, Duration::from_secs(10)).await;
            assert!(closed.is_some(), "{name}: a stalled body was kept open");
            assert!(
                got.starts_with("HTTP/1.1 503 ") || got.starts_with("HTTP/1.1 408 ") || got.is_empty(),
                "{name}: {got:?}"
            );
            refused += usize::from(got.starts_with("HTTP/1.1 503 "));
        }
        let (after, peak) = memory_mb(&p);
        println!(
            "{name}: RSS {before:.1} MiB before, peak {peak:.1} MiB, {after:.1} MiB after; {refused} of 32 refused"
        );
        // 64 MiB of declared bodies at most are read into (16 of 4 MiB); each holds what it was
        // sent (1 MiB), in a buffer at most twice that.
        assert!(refused >= 16, "{name}: only {refused} refused: the budget for bodies did not hold");
        assert!(peak - before < 48.0, "{name}: peak RSS grew by {:.1} MiB", peak - before);
    }
}

/// A chunked body (no length to refuse up front) is refused with 413 as soon as it passes the
/// limit (4 MiB), while the client is still sending, not after it ends — and not by the body
/// timeout: the client stalls right after crossing it.
#[tokio::test]
async fn a_chunked_body_past_the_limit_is_refused_while_it_streams() {
    let dir = tempdir("edge-chunked-413");
    for (name, p) in listeners(&dir, None).await {
        let addr = addr_of(&p);
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        let started = Instant::now();
        for _ in 0..65 {
            if s.write_all(chunk.as_bytes()).await.is_err() {
                break; // refused already: the server stopped reading
            }
        }
        // No last chunk: the body never ends on its own.
        let (got, closed) = until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(got.starts_with("HTTP/1.1 413 "), "{name}: {got:?}");
        let took = closed.map(|_| started.elapsed());
        assert!(
            took.is_some_and(|t| t < Duration::from_millis(900)),
            "{name}: answered after {took:?} (the body timeout is 1 s)"
        );
    }
}
