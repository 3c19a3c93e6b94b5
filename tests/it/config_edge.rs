//! The configuration at its edges: secrets in bad URLs, headers and `env` values never printed
//! (by `check`, by `connect`/`stdio`/`login` on their command line, in a live reload's answer
//! and log); ports checked whole; other clients' files (their own top-level keys ignored, server
//! names as Claude accepts them, VS Code's `servers`) with `mcpgate` still strict; a 10 MB file
//! checked in linear time, and reloaded without delaying the calls in flight.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

/// The secret every row hides somewhere; no output may contain it.
const SECRET: &str = "s3cr3t-PASSWORD";

struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs mcpgate with `args` to its end (bounded), with the credential store in `dir`.
async fn mcpgate(args: &[&str], dir: &Path) -> Ran {
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(args).env("MCPGATE_STORE_DIR", dir.join("store")).kill_on_drop(true);
    for var in ["OIDC_ISSUER_URL", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_SCOPES", "OIDC_REDIRECT_URL"] {
        cmd.env_remove(var);
    }
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("mcpgate {args:?} did not finish within 60 s"))
        .expect("mcpgate runs");
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

async fn check(config: &Path, dir: &Path) -> Ran {
    mcpgate(&["check", "--config", config.to_str().expect("a UTF-8 path")], dir).await
}

/// Each row: one server's entry holding the secret where a problem is, and the path the
/// problem must be reported at.
#[tokio::test]
async fn check_names_the_path_of_a_bad_value_and_never_prints_the_secret() {
    let dir = tempdir("config-edge-secrets");
    let config = dir.join("mcpgate.json");
    let s = SECRET;
    let rows = [
        (
            json!({"url": format!("ftp://user:{s}@example.com/mcp")}),
            "mcpServers.x.url: ftp://example.com/mcp: the scheme",
        ),
        (
            json!({"url": format!("https://user:{s}@example.com/mcp?key={s}&v=${{UNCLOSED")}),
            "mcpServers.x.url: unclosed \"${\" at character",
        ),
        (
            json!({"url": format!("https://user:{s}@example.com:65616/mcp?key={s}")}),
            "mcpServers.x.url: https://example.com:65616/mcp: port 65616 is out of range",
        ),
        (
            json!({"url": format!("https://user:{s}@:8443/mcp")}),
            "mcpServers.x.url: https://:8443/mcp: the URL has no host",
        ),
        (json!({"url": format!("https://user:{s}/x@example.com/mcp")}), "mcpServers.x.url: the port must be a number"),
        (json!({"url": format!("https://user:{s} x@example.com/mcp")}), "mcpServers.x.url: not a valid URL"),
        (
            json!({"url": "https://example.com/mcp", "headers": {"Authorization": format!("Bearer {s}${{TOKEN")}}),
            "mcpServers.x.headers.Authorization: unclosed \"${\" at character",
        ),
        (
            json!({"url": "https://example.com/mcp", "headers": {"Cookie": format!("id={s}\u{1}")}}),
            "mcpServers.x.headers.Cookie: the value is not a valid header value",
        ),
        (
            json!({"url": "https://example.com/mcp", "headers": {"Proxy-Authorization": format!("${{{s} x}}")}}),
            "mcpServers.x.headers.Proxy-Authorization: the \"${…}\" at character 1",
        ),
        (
            json!({"command": "node", "env": {"API_KEY": format!("{s}${{")}}),
            "mcpServers.x.env.API_KEY: unclosed \"${\"",
        ),
        (json!({"command": "node", "args": [format!("--token={s}${{X")]}), "mcpServers.x.args[0]: unclosed \"${\""),
        (
            json!({"url": "https://example.com/mcp", "auth": {"oauth": {"clientId": "c", "clientSecret": format!("{s}${{")}}}),
            "mcpServers.x.auth.oauth.clientSecret: unclosed",
        ),
        (
            json!({"url": "https://example.com/mcp", "auth": {"oauth": {"issuer": format!("https://u:{s}@idp.example.com:0/")}}}),
            "mcpServers.x.auth.oauth.issuer: https://idp.example.com:0/: port 0",
        ),
        (
            json!({"url": "https://example.com/mcp", "auth": {"oauth": {"resource": format!("https://u:{s}@example.com:99999/mcp")}}}),
            "mcpServers.x.auth.oauth.resource: https://example.com:99999/mcp: port 99999 is out of range",
        ),
    ];
    for (server, says) in rows {
        std::fs::write(&config, json!({"mcpServers": {"x": server}}).to_string()).unwrap();
        let r = check(&config, &dir).await;
        assert!(!r.ok, "{server}: accepted:\n{}", r.stdout);
        assert!(r.stderr.contains(says), "{server}: expected {says:?} in:\n{}", r.stderr);
        assert!(
            !r.stderr.contains(SECRET) && !r.stdout.contains(SECRET),
            "{server}: the secret printed:\n{}",
            r.stderr
        );
    }

    // A valid file's summary: URLs without user info and query, commands by their first word,
    // no header or env value.
    std::fs::write(
        &config,
        json!({"mcpServers": {
            "remote": {"url": format!("https://user:{s}@example.com:8443/mcp?key={s}"), "headers": {"Authorization": format!("Bearer {s}")}},
            "local": {"command": format!("node --token={s}"), "env": {"KEY": s}},
        }})
        .to_string(),
    )
    .unwrap();
    let r = check(&config, &dir).await;
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stdout.contains("remote (Auto: https://example.com:8443/mcp)"), "{}", r.stdout);
    assert!(r.stdout.contains("local (stdio: node)"), "{}", r.stdout);
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET), "{}{}", r.stdout, r.stderr);
}

/// Server names as Claude accepts them are kept as written and `check` shows what they become: a
/// safe prefix for their tools on `/mcp`, their own endpoint percent-encoded; two names that
/// become one prefix are refused, both named; other clients' top-level keys are listed, ignored.
#[tokio::test]
async fn check_shows_each_names_prefix_and_refuses_two_names_with_one() {
    let dir = tempdir("config-edge-names");
    let config = dir.join("claude_desktop_config.json");
    std::fs::write(
        &config,
        r#"{
  "isUsingBuiltInNodeForMcp": true,
  "preferences": {"menuBarEnabled": false},
  "mcpServers": {
    "time.v2": {"command": "node", "args": ["time.js"]},
    "my memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]},
    "off": {"command": "node", "disabled": true}
  }
}"#,
    )
    .unwrap();
    let r = check(&config, &dir).await;
    assert!(r.ok, "{}", r.stderr);
    for line in [
        "  time.v2 (stdio: node): time_v2__<tool> on /mcp, alone on /servers/time.v2/mcp",
        "  my memory (stdio: npx): my_memory__<tool> on /mcp, alone on /servers/my%20memory/mcp",
        "  off [disabled] (stdio: node)",
        "  ignored (other clients' keys): isUsingBuiltInNodeForMcp, preferences",
    ] {
        assert!(r.stdout.lines().any(|l| l == line), "{line:?} in:\n{}", r.stdout);
    }
    // A lone server's tools are not prefixed.
    std::fs::write(&config, r#"{"mcpServers": {"time.v2": {"command": "node"}}}"#).unwrap();
    let r = check(&config, &dir).await;
    assert!(
        r.stdout.contains("  time.v2 (stdio: node): unprefixed on /mcp, alone on /servers/time.v2/mcp"),
        "{}",
        r.stdout
    );

    std::fs::write(
        &config,
        r#"{
  "mcpServers": {
    "time.v2": {"command": "node"},
    "time_v2": {"command": "node"}
  }
}"#,
    )
    .unwrap();
    let r = check(&config, &dir).await;
    assert!(!r.ok, "accepted:\n{}", r.stdout);
    assert!(
        r.stderr
            .contains(r#"4:5: mcpServers.time_v2: has the same name prefix ("time_v2__") as mcpServers["time.v2"]"#),
        "{}",
        r.stderr
    );
}

/// Keys other clients keep at the top of the file are no cover for a mistake in mcpgate's own
/// section: it is checked as strictly as ever, by `check` and by `serve`, which does not start.
/// A key that looks like a typo of mcpgate's own is not taken for another client's.
#[tokio::test]
async fn an_unknown_top_level_key_does_not_hide_a_typo_in_the_mcpgate_section() {
    let dir = tempdir("config-edge-strict");
    let config = dir.join("claude_desktop_config.json");
    std::fs::write(
        &config,
        r#"{
  "preferences": {"menuBarEnabled": false},
  "mcpgate": {"listen": "127.0.0.1:0", "separatr": "."},
  "mcpServers": {"time.v2": {"command": "node"}}
}"#,
    )
    .unwrap();
    let said = r#"3:40: mcpgate.separatr: unknown key (did you mean "separator"?)"#;
    let r = check(&config, &dir).await;
    assert!(!r.ok && r.stderr.contains(said), "{}{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("preferences"), "{}", r.stderr);
    let config_arg = config.to_str().unwrap();
    let r = mcpgate(&["serve", "--config", config_arg, "--listen", "127.0.0.1:0"], &dir).await;
    assert!(!r.ok && r.stderr.contains(said), "{}{}", r.stdout, r.stderr);

    std::fs::write(&config, r#"{"preferences": {}, "mcpGate": {}, "mcpServers": {"a": {"command": "node"}}}"#).unwrap();
    let r = check(&config, &dir).await;
    assert!(!r.ok && r.stderr.contains(r#"mcpGate: unknown key (did you mean "mcpgate"?)"#), "{}", r.stderr);
}

/// VS Code's `.vscode/mcp.json` as it is (`servers`, `inputs`, `type`, `${env:…}`); a file with
/// both `mcpServers` and `servers` is refused, both named.
#[tokio::test]
async fn a_vs_code_file_is_read_as_it_is_and_one_with_both_server_keys_refused() {
    let dir = tempdir("config-edge-vscode");
    let config = dir.join("mcp.json");
    std::fs::write(
        &config,
        r#"{
  // VS Code writes JSONC.
  "inputs": [{"type": "promptString", "id": "token", "description": "Token", "password": true}],
  "servers": {
    "memory": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]},
    "context7": {"type": "http", "url": "https://mcp.context7.com/mcp", "headers": {"X-Home": "${env:HOME}"}},
  },
}"#,
    )
    .unwrap();
    let r = check(&config, &dir).await;
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stdout.contains("  memory (stdio: npx): memory__<tool> on /mcp"), "{}", r.stdout);
    assert!(r.stdout.contains("  ignored (other clients' keys): inputs"), "{}", r.stdout);

    std::fs::write(
        &config,
        r#"{
  "mcpServers": {"a": {"command": "node"}},
  "servers": {"b": {"command": "node"}}
}"#,
    )
    .unwrap();
    let r = check(&config, &dir).await;
    assert!(!r.ok, "accepted:\n{}", r.stdout);
    assert!(r.stderr.contains("3:3: servers: the servers are in mcpServers already (line 2)"), "{}", r.stderr);
}

/// The same rule on the command line: each row is an invocation with a secret in a bad URL or
/// header; the error names the argument or flag and never shows the secret.
#[tokio::test]
async fn command_line_errors_name_the_flag_and_never_print_the_secret() {
    let dir = tempdir("config-edge-cli");
    let s = SECRET;
    let bad_port = format!("http://user:{s}@127.0.0.1:65616/mcp?token={s}");
    let rows: Vec<(Vec<String>, &str)> = vec![
        (vec!["connect".into(), bad_port.clone()], "URL: http://127.0.0.1:65616/mcp: port 65616 is out of range"),
        (vec!["stdio".into(), bad_port.clone()], "URL: http://127.0.0.1:65616/mcp: port 65616 is out of range"),
        (vec!["login".into(), bad_port.clone()], "URL: http://127.0.0.1:65616/mcp: port 65616 is out of range"),
        (
            vec!["connect".into(), format!("ftp://user:{s}@127.0.0.1/mcp")],
            "URL: ftp://127.0.0.1/mcp: the scheme must be http or https",
        ),
        (vec!["connect".into(), format!("http://user:{s}@:8080/mcp")], "URL: http://:8080/mcp: the URL has no host"),
        (vec!["connect".into(), format!("http://user:{s}@127.0.0.1:0/mcp")], "URL: http://127.0.0.1:0/mcp: port 0"),
        (
            vec!["connect".into(), bad_port.clone(), "-H".into(), format!("Authorization: Bearer ${{{s}")],
            "URL: http://127.0.0.1:65616/mcp: port 65616",
        ),
        (
            vec!["connect".into(), "http://127.0.0.1:9/mcp".into(), "-H".into(), format!("Authorization Bearer {s}")],
            "--header #1: expected 'Name: value'",
        ),
        (
            vec![
                "connect".into(),
                "http://127.0.0.1:9/mcp".into(),
                "-H".into(),
                "X-A: 1".into(),
                "-H".into(),
                format!("Cookie: id={s}\u{1}"),
            ],
            "--header #2: cookie: the value is not a valid header value",
        ),
        (
            vec![
                "stdio".into(),
                "http://127.0.0.1:9/mcp".into(),
                "--issuer".into(),
                format!("https://u:{s}@idp.example.com:70000"),
            ],
            "--issuer: https://idp.example.com:70000/: port 70000 is out of range",
        ),
        (
            vec![
                "stdio".into(),
                "http://127.0.0.1:9/mcp".into(),
                "--redirect-url".into(),
                format!("http://u:{s}@127.0.0.1:65616/cb"),
            ],
            "--redirect-url: http://127.0.0.1:65616/cb: port 65616 is out of range",
        ),
        (
            vec![
                "stdio".into(),
                "http://127.0.0.1:9/mcp".into(),
                "--client-metadata-url".into(),
                format!("https://u:{s}@example.com:0/client.json"),
            ],
            "--client-metadata-url: https://example.com:0/client.json: port 0",
        ),
        (
            vec![
                "stdio".into(),
                "http://127.0.0.1:9/mcp".into(),
                "--resource".into(),
                format!("https://u:{s}@example.com:65616/mcp"),
            ],
            "--resource: https://example.com:65616/mcp: port 65616",
        ),
    ];
    for (args, says) in rows {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = mcpgate(&args, &dir).await;
        let shown = args.join(" ").replace(SECRET, "<secret>");
        assert!(!r.ok, "{shown}: accepted");
        assert!(r.stderr.contains(says), "{shown}: expected {says:?} in:\n{}", r.stderr);
        assert!(!r.stderr.contains(SECRET) && !r.stdout.contains(SECRET), "{shown}: the secret printed:\n{}", r.stderr);
    }
}

/// A live reload of a file with secrets in bad values: refused, the answer and the log name
/// the paths, neither shows the secret, and the running configuration keeps serving.
#[tokio::test]
async fn a_refused_reload_names_the_paths_and_never_logs_the_secret() {
    let dir = tempdir("config-edge-reload-secrets");
    let config = dir.join("mcpgate.json");
    let local = stdio_everything(&dir);
    std::fs::write(&config, json!({"mcpgate": {"threads": 2}, "mcpServers": {"local": local}}).to_string()).unwrap();
    let gw = serve_ready(&config).await;
    let s = SECRET;
    std::fs::write(
        &config,
        json!({"mcpServers": {
            "local": local,
            "remote": {"url": format!("https://user:{s}@example.com:65616/mcp"), "headers": {"Authorization": format!("Bearer {s}${{T")}},
            "child": {"command": "node", "env": {"KEY": format!("{s}${{")}},
        }})
        .to_string(),
    )
    .unwrap();
    let r = request("POST", &format!("{}/admin/reload", base(&gw.url)), &[], "").await;
    assert_eq!(r.status, 400, "{}", r.body);
    for says in [
        "mcpServers.remote.url: https://example.com:65616/mcp: port 65616 is out of range",
        "mcpServers.remote.headers.Authorization: unclosed",
        "mcpServers.child.env.KEY: unclosed",
    ] {
        assert!(r.body.contains(says), "expected {says:?} in {}", r.body);
    }
    assert!(!r.body.contains(SECRET), "{}", r.body);
    // The file watcher sees the change too, and logs the refusal.
    let logged = eventually(Duration::from_secs(10), || gw.output().contains("the new configuration is refused")).await;
    assert!(logged, "{}", gw.output());
    let log = gw.output();
    assert!(log.contains("mcpServers.remote.headers.Authorization: unclosed"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
    // The old configuration serves on.
    let sid = open_session(&gw.url, &[]).await;
    assert_eq!(echo(&gw.url, &sid, "still here").await, "Echo: still here");
}

/// ~10 MB and 900,000 keys (9,000 disabled servers with 100 `env` entries each; one server with
/// 900,000), and 100,000 disabled servers: `check` answers each in under 2 s (the one large `env`
/// and the 100,000 servers took over 60 s and 46 s in a debug build when the checks for repeated
/// keys and prefixes compared every pair).
#[tokio::test]
async fn check_of_a_10_mb_config_and_of_100_000_servers_answers_in_under_2_s() {
    let dir = tempdir("config-edge-large");
    let big = dir.join("big.json");
    std::fs::write(&big, large_config(None)).unwrap();
    let size = std::fs::metadata(&big).unwrap().len();
    assert!(size > 9_000_000, "{size} bytes");
    let many = dir.join("many.json");
    let mut text = String::from("{\"mcpServers\": {");
    for i in 0..100_000 {
        let _ = write!(
            text,
            "{}\"s{i}\": {{\"command\": \"node\", \"args\": [\"server.js\"], \"disabled\": true}}",
            if i == 0 { "" } else { ",\n" }
        );
    }
    text.push_str("}}");
    std::fs::write(&many, text).unwrap();
    let one = dir.join("one.json");
    let mut text = String::from("{\"mcpServers\": {\"s\": {\"command\": \"node\", \"env\": {");
    for k in 0..900_000 {
        let _ = write!(text, "{}\"K{k}\":\"{}\"", if k == 0 { "" } else { "," }, k % 10);
    }
    text.push_str("}}}}");
    std::fs::write(&one, text).unwrap();
    for (file, what, servers) in [
        (&big, "10 MB, 900,000 keys in 9,000 servers", 9_000),
        (&one, "12 MB, 900,000 keys in one env", 1),
        (&many, "100,000 disabled servers", 100_000),
    ] {
        // The better of two runs: the machine is shared, and this measures the work, not a neighbour.
        let mut best = Duration::MAX;
        for _ in 0..2 {
            let r = check(file, &dir).await;
            assert!(r.ok, "{}", r.stderr.lines().take(5).collect::<Vec<_>>().join("\n"));
            assert!(
                r.stdout.starts_with(&format!("{}: valid; {servers} server(s)", file.display())),
                "{}",
                r.stdout.chars().take(200).collect::<String>()
            );
            best = best.min(r.took);
        }
        println!("mcpgate check, {what}: {best:?}");
        assert!(best < Duration::from_secs(2), "{what}: {best:?}");
    }
}

/// Calls keep flowing while a 10 MB configuration is written and reloaded: the file is read and
/// checked off the event loops. One event loop, so the reload request and the calls share it.
#[tokio::test]
async fn a_reload_of_a_10_mb_config_does_not_delay_calls_in_flight() {
    let dir = tempdir("config-edge-reload-large");
    let config = dir.join("mcpgate.json");
    let local = stdio_everything(&dir);
    std::fs::write(&config, json!({"mcpgate": {"threads": 1}, "mcpServers": {"local": local}}).to_string()).unwrap();
    let gw = serve_ready(&config).await;
    let sid = open_session(&gw.url, &[]).await;
    assert_eq!(echo(&gw.url, &sid, "warm").await, "Echo: warm");

    // The worst of a second of calls, before.
    let baseline = worst_call_while(&gw.url, &sid, async { tokio::time::sleep(Duration::from_secs(1)).await }).await;
    // The worst while the large file is written and reloaded (same `local`: nothing restarts).
    let admin = format!("{}/admin/reload", base(&gw.url));
    let text = large_config(Some(&local));
    let during = worst_call_while(&gw.url, &sid, async {
        std::fs::write(&config, &text).unwrap();
        let started = Instant::now();
        let r = request("POST", &admin, &[], "").await;
        assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(2000)]);
        println!("reload of {} bytes answered in {:?}: {}", text.len(), started.elapsed(), r.body.trim());
    })
    .await;
    println!("worst call: {baseline:?} before, {during:?} during the reload of a 10 MB configuration");
    assert!(during < baseline + Duration::from_millis(100), "{during:?} during vs {baseline:?} before");
    assert_eq!(echo(&gw.url, &sid, "after").await, "Echo: after");
}

/// Four clients calling `echo` in a loop until `work` is done; the slowest call.
async fn worst_call_while(url: &str, sid: &str, work: impl std::future::Future<Output = ()>) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = tokio::task::JoinSet::new();
    for c in 0..4 {
        let (url, sid, stop) = (url.to_owned(), sid.to_owned(), stop.clone());
        callers.spawn(async move {
            let mut worst = Duration::ZERO;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 100_000 {
                let started = Instant::now();
                assert_eq!(echo(&url, &sid, &format!("c{c}-{n}")).await, format!("Echo: c{c}-{n}"));
                worst = worst.max(started.elapsed());
                n += 1;
            }
            worst
        });
    }
    work.await;
    stop.store(true, Ordering::Relaxed);
    let mut worst = Duration::ZERO;
    while let Some(w) = callers.join_next().await {
        worst = worst.max(w.expect("a caller"));
    }
    worst
}

async fn echo(url: &str, sid: &str, message: &str) -> String {
    let body =
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":message}}});
    let m = call(url, sid, &[], &body.to_string()).await.message();
    m["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{m}")).to_owned()
}

/// 9,000 disabled servers with 100 `env` entries each (~10 MB, 900,000 keys), and `local` if given.
fn large_config(local: Option<&serde_json::Value>) -> String {
    let mut text = String::with_capacity(10_500_000);
    text.push_str("{\"mcpgate\": {\"threads\": 1}, \"mcpServers\": {\n");
    if let Some(local) = local {
        let _ = writeln!(text, "\"local\": {local},");
    }
    for i in 0..9_000 {
        let _ = write!(
            text,
            "{}\"s{i}\": {{\"command\": \"node\", \"disabled\": true, \"env\": {{",
            if i == 0 { "" } else { ",\n" }
        );
        for k in 0..100 {
            let _ = write!(text, "{}\"K{k}\":\"{}\"", if k == 0 { "" } else { "," }, k % 10);
        }
        text.push_str("}}");
    }
    text.push_str("\n}}\n");
    text
}

async fn serve_ready(config: &Path) -> Proc {
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(config).args(["--listen", "127.0.0.1:0"]);
    let gw = Proc::start("mcpgate serve", cmd).await;
    let ready = crate::idp::until(Duration::from_secs(30), || async {
        request("GET", &format!("{}/readyz", base(&gw.url)), &[], "").await.status == 200
    })
    .await;
    assert!(ready, "not ready:\n{}", gw.output());
    gw
}

fn base(url: &str) -> String {
    url.trim_end_matches("/mcp").to_owned()
}
