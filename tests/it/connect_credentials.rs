//! Credentials `mcpgate connect` fetches, refreshes and injects, against our fixture server in
//! token mode: it accepts only the token currently in a file (`--require-token-file`), answers
//! 401 with a `WWW-Authenticate` challenge otherwise, and logs every `Authorization` it sees.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;

const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

struct World {
    dir: PathBuf,
    upstream: Proc,
}

impl World {
    /// The fixture, accepting the token in `valid` (initially `initial`).
    async fn new(name: &str, initial: &str) -> World {
        let dir = tempdir(name);
        std::fs::write(dir.join("valid"), initial).unwrap();
        let valid = dir.join("valid");
        let log = dir.join("auth.log");
        let upstream =
            fixture(&["--require-token-file", valid.to_str().unwrap(), "--auth-log", log.to_str().unwrap()]).await;
        World { dir, upstream }
    }

    fn accept(&self, token: &str) {
        std::fs::write(self.dir.join("valid"), token).unwrap();
    }

    fn auth_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("auth.log")).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// A token command that prints `tok-N` (N = how many times it ran), as JSON with
    /// `expires_in` when given, and if `rotate`, makes the upstream accept only that token.
    fn token_command(&self, expires_in: Option<u32>, rotate: bool) -> String {
        let script = self.dir.join("get-token.sh");
        let d = self.dir.display();
        let rotate = if rotate { format!("echo \"tok-$n\" > {d}/valid") } else { String::new() };
        let print = match expires_in {
            Some(s) => format!(r#"printf '{{"access_token":"tok-%s","expires_in":{s}}}' "$n""#),
            None => r#"echo "tok-$n""#.to_owned(),
        };
        std::fs::write(&script, format!("date +%s.%N >> {d}/runs\nn=$(wc -l < {d}/runs)\n{rotate}\n{print}\n"))
            .unwrap();
        format!("sh {}", script.display())
    }

    fn runs(&self) -> Vec<f64> {
        read_runs(&self.dir)
    }
}

fn read_runs(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn a_command_token_is_refreshed_before_it_expires() {
    let w = World::new("refresh-ahead", "none").await;
    let cmd = w.token_command(Some(3), true);
    let gw = connect(&w.upstream.url, &["--token-command", &cmd]).await;
    let sid = open_session(&gw.url, &[]).await;
    // Nobody asks: the refresh happens by itself, before 75 % of the 3 s lifetime.
    assert!(eventually(Duration::from_secs(5), || w.runs().len() >= 2).await, "no refresh ahead of expiry");
    let runs = w.runs();
    let gap = runs[1] - runs[0];
    assert!(gap < 2.25, "refreshed {gap:.2}s after the first fetch, past 75% of a 3 s lifetime");
    // The rotated token is used at once: the upstream accepts only tok-2 by now.
    let r = call(&gw.url, &sid, &[], LIST).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(w.auth_log().last().unwrap().contains("Bearer tok-"), "{:?}", w.auth_log());
}

#[tokio::test]
async fn fifty_concurrent_rejected_requests_share_one_refresh() {
    let w = World::new("single-flight", "tok-1").await;
    let cmd = w.token_command(None, false);
    let gw = connect(&w.upstream.url, &["--token-command", &cmd]).await;
    let sid = open_session(&gw.url, &[]).await;
    assert_eq!(w.runs().len(), 1);
    // The upstream revokes tok-1; the next command run yields tok-2.
    w.accept("tok-2");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (url, sid) = (gw.url.clone(), sid.clone());
        tasks.push(tokio::spawn(async move { call(&url, &sid, &[], LIST).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(w.runs().len(), 2, "the token command ran more than once for 50 concurrent 401s");
}

#[tokio::test]
async fn a_401_gets_one_refresh_and_one_retry_then_reaches_the_client_intact() {
    let w = World::new("persistent-401", "never-issued").await;
    let cmd = w.token_command(None, false);
    let gw = connect(&w.upstream.url, &["--token-command", &cmd]).await;
    let r = request("POST", &gw.url, MCP_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer realm="fixture", error="invalid_token""#));
    assert_eq!(w.runs().len(), 2, "one refresh");
    let posts: Vec<String> = w.auth_log().into_iter().filter(|l| l.starts_with("POST")).collect();
    assert_eq!(posts, ["POST Bearer tok-1", "POST Bearer tok-2"], "one try, one retry");

    // Once the upstream accepts the current token, the same proxy works.
    w.accept("tok-3");
    let r = request("POST", &gw.url, MCP_HEADERS, INITIALIZE).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn a_rewritten_bearer_file_is_used_without_reconnecting() {
    let w = World::new("bearer-file", "file-a").await;
    let token = w.dir.join("token");
    std::fs::write(&token, "file-a\n").unwrap();
    let gw = connect(&w.upstream.url, &["--bearer-file", token.to_str().unwrap()]).await;
    let sid = open_session(&gw.url, &[]).await;
    assert_eq!(call(&gw.url, &sid, &[], LIST).await.status, 200);

    // Rotation by rename (how most tools write), then in place.
    std::fs::write(w.dir.join("token.new"), "file-b").unwrap();
    std::fs::rename(w.dir.join("token.new"), &token).unwrap();
    w.accept("file-b");
    assert_eq!(call(&gw.url, &sid, &[], LIST).await.status, 200);
    assert_eq!(w.auth_log().last().unwrap(), "POST Bearer file-b");

    std::fs::write(&token, "file-c").unwrap();
    w.accept("file-c");
    assert_eq!(call(&gw.url, &sid, &[], LIST).await.status, 200);
    assert_eq!(w.auth_log().last().unwrap(), "POST Bearer file-c");
    assert!(!gw.output().contains("session not found"));
}

#[tokio::test]
async fn the_clients_own_authorization_never_reaches_the_upstream() {
    let w = World::new("no-passthrough", "env-token").await;
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["connect", &w.upstream.url, "--listen", "127.0.0.1:0", "--bearer-env", "UPSTREAM_TOKEN"])
        .env("UPSTREAM_TOKEN", "env-token");
    let gw = Proc::start("mcpgate connect", cmd).await;
    let client_auth = [("authorization", "Bearer client-secret"), ("Authorization", "Bearer client-secret")];
    let sid = open_session(&gw.url, &client_auth[..1]).await;
    assert_eq!(call(&gw.url, &sid, &client_auth[..1], LIST).await.status, 200);
    let log = w.auth_log();
    assert!(!log.is_empty());
    assert!(log.iter().all(|l| l.ends_with("Bearer env-token")), "{log:?}");
}

#[tokio::test]
async fn without_a_credential_of_its_own_the_proxy_passes_the_clients() {
    let dir = tempdir("passthrough");
    let log = dir.join("auth.log");
    let upstream = fixture(&["--auth-log", log.to_str().unwrap()]).await;
    let gw = connect(&upstream.url, &[]).await;
    open_session(&gw.url, &[("authorization", "Bearer client-own")]).await;
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(lines.lines().all(|l| l.ends_with("Bearer client-own")), "{lines}");
}

#[tokio::test]
async fn a_failing_token_command_stops_start_up_with_a_clear_message() {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(mcpgate_bin())
            .args(["connect", "http://127.0.0.1:9/mcp", "--listen", "127.0.0.1:0"])
            .args(["--token-command", "echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1"])
            .output(),
    )
    .await
    .expect("start-up failed fast")
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("token command `echo`") && stderr.contains("Please run 'az login'"), "{stderr}");

    for (args, says) in [
        (&["connect", "not a url"][..], "not a valid URL"),
        (&["connect", "ftp://x/mcp"][..], "scheme must be http or https"),
        (
            &["connect", "http://x/mcp", "--bearer-env", "MCPGATE_TEST_UNSET_VAR"][..],
            "MCPGATE_TEST_UNSET_VAR is not set",
        ),
        (&["connect", "http://x/mcp", "--bearer-file", "/nonexistent/token"][..], "/nonexistent/token cannot be read"),
    ] {
        let out =
            std::process::Command::new(mcpgate_bin()).args(args).args(["--listen", "127.0.0.1:0"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn no_token_reaches_the_logs_even_at_debug_level() {
    for level in ["-v", "-vv"] {
        let w = World::new(&format!("no-leak{level}"), "none").await;
        let script = w.dir.join("secret-token.sh");
        std::fs::write(
            &script,
            format!("date +%s.%N >> {d}/runs\nn=$(wc -l < {d}/runs)\necho \"SeCrEt-$n\" > {d}/valid\nprintf '{{\"access_token\":\"SeCrEt-%s\",\"expires_in\":2}}' \"$n\"\n", d = w.dir.display()),
        )
        .unwrap();
        let gw = connect(&w.upstream.url, &[level, "--token-command", &format!("sh {}", script.display())]).await;
        let sid = open_session(&gw.url, &[("authorization", "Bearer SeCrEt-client")]).await;
        assert_eq!(call(&gw.url, &sid, &[], LIST).await.status, 200);
        // A refresh ahead of expiry, and a 401 → refresh → retry, both logged at debug.
        assert!(eventually(Duration::from_secs(4), || w.runs().len() >= 2).await);
        w.accept("revoked");
        let _ = call(&gw.url, &sid, &[], LIST).await;
        let out = gw.output();
        assert!(out.contains("DEBUG") || out.contains("TRACE"), "{level} logs nothing at debug");
        assert!(!out.contains("SeCrEt"), "a token reached the logs at {level}:\n{out}");
    }
}
