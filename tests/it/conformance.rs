//! The official conformance suite's server scenarios against our fixture server directly, and through
//! `mcpgate connect` and `mcpgate serve`: `@modelcontextprotocol/conformance` 0.1.16 (`server --suite
//! all`), where the scores must be equal and every check must pass, and 0.2.0-alpha.12 at
//! `--requirements 2025-11-25`, where every scenario must score the same (passed, failed, warnings,
//! skipped, and the ids of the checks that failed or warned) and no check may fail — and at
//! `--requirements 2026-07-28`, against the 2026-07-28 fixture (on the v2 SDK) and, through `serve`,
//! against the 2025 one. And its client scenarios with `mcpgate stdio` as the client: 0.1.16's, and
//! 0.2.0-alpha.12's both at their own revisions and all at 2026-07-28, every one passing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::*;

/// Which suite tests/conformance/run-suite.sh runs.
#[derive(Clone, Copy)]
enum Suite {
    /// 0.1.16, `server --suite all`.
    Pinned,
    /// 0.2.0-alpha.12 (`conformance-next`), `server --requirements 2025-11-25`.
    Next,
    /// 0.2.0-alpha.12, `server --requirements 2026-07-28`.
    Next2026,
}

/// One run of the suite, as run-suite.sh summarizes it.
struct Score {
    passed: u32,
    failed: u32,
    /// Per scenario: "P passed, F failed, W warnings[, S skipped]" and, sorted, "STATUS check-id" for
    /// each check that failed or warned (without its message, which may name a port or a session).
    scenarios: BTreeMap<String, (String, Vec<String>)>,
    stdout: String,
}

/// Runs tests/conformance/run-suite.sh.
async fn run_suite(suite: Suite, url: &str) -> Score {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(repo().join("tests/conformance/run-suite.sh"));
    if let Suite::Next | Suite::Next2026 = suite {
        cmd.arg("--next");
    }
    if let Suite::Next2026 = suite {
        cmd.env("CONFORMANCE_REQUIREMENTS", "2026-07-28");
    }
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.arg(url).kill_on_drop(true).output())
        .await
        .expect("the conformance suite finished in time")
        .expect("the conformance suite ran");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout.lines().rev().find(|l| l.starts_with("conformance: ")).unwrap_or_else(|| {
        panic!("no score line; stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr))
    });
    let nums: Vec<u32> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
    let mut scenarios = BTreeMap::new();
    let mut current: Option<String> = None;
    for l in stdout.lines() {
        if let Some((name, counts)) =
            l.strip_prefix("✓ ").or_else(|| l.strip_prefix("✗ ")).and_then(|r| r.split_once(": "))
        {
            scenarios.insert(name.to_string(), (counts.to_string(), Vec::new()));
            current = Some(name.to_string());
        } else if let Some(check) =
            l.strip_prefix("    ").filter(|c| c.starts_with("FAILURE ") || c.starts_with("WARNING "))
        {
            let id = check.split_once(':').map_or(check, |(id, _)| id);
            let name = current.as_ref().expect("a check line follows its scenario's line");
            scenarios.get_mut(name).unwrap().1.push(id.to_string());
        } else {
            current = None;
        }
    }
    for (_, checks) in scenarios.values_mut() {
        checks.sort();
    }
    Score { passed: nums[0], failed: nums[1], scenarios, stdout }
}

/// Runs tests/conformance/run-suite.sh (0.1.16) and returns (passed, failed) checks.
async fn suite(url: &str) -> (u32, u32, String) {
    let score = run_suite(Suite::Pinned, url).await;
    (score.passed, score.failed, score.stdout)
}

/// The scenarios whose results differ between `a` and `b`, each with both sides, or "" when none do.
fn differences(a: &Score, b: &Score) -> String {
    let names: std::collections::BTreeSet<&String> = a.scenarios.keys().chain(b.scenarios.keys()).collect();
    let mut out = String::new();
    for name in names {
        let (x, y) = (a.scenarios.get(name), b.scenarios.get(name));
        if x != y {
            out += &format!("{name}:\n  direct:  {x:?}\n  through: {y:?}\n");
        }
    }
    out
}

/// 0.2.0-alpha.12 against the fixture directly: no check fails, and at least the 33 scenarios and 81
/// checks it ran when this test was written.
async fn next_direct(url: &str) -> Score {
    let direct = run_suite(Suite::Next, url).await;
    assert_eq!(direct.failed, 0, "the fixture itself fails checks:\n{}", direct.stdout);
    assert!(direct.passed >= 81, "expected at least 81 checks, got {}:\n{}", direct.passed, direct.stdout);
    assert!(direct.scenarios.len() >= 33, "expected at least 33 scenarios:\n{}", direct.stdout);
    direct
}

/// `mcpgate serve` fronting `upstream` as its one server "fixture".
async fn serve_fixture(upstream: &str) -> Proc {
    let dir = tempdir("conformance-serve");
    let config = dir.join("mcpgate.json");
    std::fs::write(&config, serde_json::json!({"mcpServers": {"fixture": {"url": upstream}}}).to_string()).unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", "127.0.0.1:0"]);
    Proc::start("mcpgate serve", cmd).await
}

#[tokio::test]
async fn conformance_suite_scores_the_same_through_connect_as_direct() {
    let upstream = fixture(&[]).await;
    let (direct_pass, direct_fail, direct_out) = suite(&upstream.url).await;
    assert_eq!(direct_fail, 0, "the fixture itself fails checks:\n{direct_out}");
    assert!(direct_pass >= 44, "expected at least 44 checks, got {direct_pass}:\n{direct_out}");

    let gw = connect(&upstream.url, &[]).await;
    let (pass, fail, out) = suite(&gw.url).await;
    assert_eq!((pass, fail), (direct_pass, 0), "through mcpgate connect:\n{out}\nmcpgate log:\n{}", gw.output());
}

/// One run of tests/conformance/run-client-suite.sh with `args`: the scenarios that passed and
/// those that failed, by name, and its output.
struct ClientScore {
    passed: Vec<String>,
    failed: Vec<String>,
    stdout: String,
}

async fn client_suite(args: &[&str]) -> ClientScore {
    client_suite_via("stdio", args).await
}

/// `client_suite` with the client's mcpgate mode: `stdio`, or `connect` (`mcpgate connect --oauth`
/// on a loopback port, the SDK's Streamable HTTP client in front of it).
async fn client_suite_via(via: &str, args: &[&str]) -> ClientScore {
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new("bash")
            .arg(repo().join("tests/conformance/run-client-suite.sh"))
            .args(args)
            .env("MCPGATE_BIN", mcpgate_bin())
            .env("MCPGATE_VIA", via)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client scenarios finished in time")
    .expect("the client scenarios ran");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout.lines().rev().find(|l| l.starts_with("conformance client: ")).unwrap_or_else(|| {
        panic!("no score line; stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr))
    });
    let nums: Vec<usize> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
    let scenario =
        |l: &str, mark: &str| l.strip_prefix(mark).and_then(|r| r.split_once(':')).map(|(n, _)| n.to_owned());
    let passed: Vec<String> = stdout.lines().filter_map(|l| scenario(l, "✓ ")).collect();
    let failed: Vec<String> = stdout.lines().filter_map(|l| scenario(l, "✗ ")).collect();
    assert_eq!((passed.len(), failed.len()), (nums[0], nums[1]), "{stdout}");
    ClientScore { passed, failed, stdout }
}

/// The suite's 26 client scenarios (initialize, tools_call, elicitation defaults, sse-retry and
/// every `auth/*` one) with `mcpgate stdio` as the client, launched by our SDK driver
/// (tests/conformance/client-driver.mjs): every scenario must pass.
#[tokio::test]
async fn conformance_client_scenarios_all_pass_through_the_stdio_bridge() {
    let score = client_suite(&[]).await;
    assert_eq!((score.passed.len(), score.failed.len()), (26, 0), "{}", score.stdout);
}

/// 0.2.0-alpha.12's 48 client scenarios, each at the revision it was introduced in (2026-07-28 for
/// the new ones: request `_meta`, standard and `x-mcp-header` headers, input-required rounds,
/// issuer checks, re-registration with a new authorization server, workload identity…) and the
/// extensions' (DPoP-bound tokens, with and without nonces, SEP-1932): every one passes.
#[tokio::test]
async fn conformance_next_client_scenarios_pass_through_the_stdio_bridge() {
    let score = client_suite(&["--next"]).await;
    assert!(score.failed.is_empty(), "failed: {:?}\n{}", score.failed, score.stdout);
    assert!(score.passed.len() >= 48, "expected at least 48 scenarios to pass:\n{}", score.stdout);
}

/// The client scenarios with `mcpgate connect --oauth` as the client's proxy (the SDK's Streamable
/// HTTP client in front of it): 0.1.16's 26, 0.2.0-alpha.12's 48, and its 33 at
/// `--spec-version 2026-07-28` — every one passes, as through `stdio`. (A legacy client's first
/// `initialize` is sent as the bridge sends it, so that a 2026-07-28-only server says what it is.)
#[tokio::test]
async fn conformance_client_scenarios_pass_through_connect_oauth() {
    for (args, least) in [(&[][..], 26), (&["--next"][..], 48), (&["--next", "--spec-version", "2026-07-28"][..], 33)] {
        let score = client_suite_via("connect", args).await;
        assert!(score.failed.is_empty(), "{args:?}: failed: {:?}\n{}", score.failed, score.stdout);
        assert!(
            score.passed.len() >= least,
            "{args:?}: expected at least {least} scenarios to pass:\n{}",
            score.stdout
        );
    }
}

/// The same suite at `--spec-version 2026-07-28`: its 33 scenarios, all against servers that speak
/// only that revision (the older scenarios too), every one passing.
#[tokio::test]
async fn conformance_next_client_scenarios_at_2026_all_pass_through_the_stdio_bridge() {
    let score = client_suite(&["--next", "--spec-version", "2026-07-28"]).await;
    assert!(score.failed.is_empty(), "{}", score.stdout);
    assert!(score.passed.len() >= 33, "expected at least 33 scenarios to pass:\n{}", score.stdout);
}

/// `mcpgate serve` fronting the fixture: the merged endpoint (one server, so no prefix) and the
/// server's own endpoint `/servers/<name>/mcp` score what the fixture scores directly.
#[tokio::test]
async fn conformance_suite_scores_the_same_through_serve_merged_and_per_server() {
    let upstream = fixture(&[]).await;
    let (direct_pass, direct_fail, direct_out) = suite(&upstream.url).await;
    assert_eq!(direct_fail, 0, "the fixture itself fails checks:\n{direct_out}");
    assert!(direct_pass >= 44, "expected at least 44 checks, got {direct_pass}:\n{direct_out}");
    let gw = serve_fixture(&upstream.url).await;
    let per_server = gw.url.replace("/mcp", "/servers/fixture/mcp");
    for url in [gw.url.clone(), per_server] {
        let (pass, fail, out) = suite(&url).await;
        assert_eq!(
            (pass, fail),
            (direct_pass, 0),
            "through mcpgate serve at {url}:\n{out}\nmcpgate log:\n{}",
            gw.output()
        );
    }
}

/// 0.2.0-alpha.12 at `--requirements 2025-11-25` through `mcpgate connect`: every scenario scores what
/// it scores directly, and no check fails.
#[tokio::test]
async fn conformance_next_scores_the_same_through_connect_as_direct() {
    let upstream = fixture(&[]).await;
    let direct = next_direct(&upstream.url).await;
    let gw = connect(&upstream.url, &[]).await;
    let through = run_suite(Suite::Next, &gw.url).await;
    let diff = differences(&direct, &through);
    assert!(
        diff.is_empty() && through.failed == 0,
        "through mcpgate connect, differences:\n{diff}\n{}\nmcpgate log:\n{}",
        through.stdout,
        gw.output()
    );
}

/// 0.2.0-alpha.12 at `--requirements 2025-11-25` through `mcpgate serve`, the merged endpoint and
/// `/servers/fixture/mcp`: every scenario scores what it scores directly, and no check fails.
#[tokio::test]
async fn conformance_next_scores_the_same_through_serve_merged_and_per_server() {
    let upstream = fixture(&[]).await;
    let direct = next_direct(&upstream.url).await;
    let gw = serve_fixture(&upstream.url).await;
    let per_server = gw.url.replace("/mcp", "/servers/fixture/mcp");
    for url in [gw.url.clone(), per_server] {
        let through = run_suite(Suite::Next, &url).await;
        let diff = differences(&direct, &through);
        assert!(
            diff.is_empty() && through.failed == 0,
            "through mcpgate serve at {url}, differences:\n{diff}\n{}\nmcpgate log:\n{}",
            through.stdout,
            gw.output()
        );
    }
}

/// The 2026-07-28 fixture (tests/fixtures/conformance-server-2026.mjs, the v2 SDK's server).
async fn fixture_2026() -> Proc {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(repo().join("tests/fixtures/conformance-server-2026.mjs"));
    Proc::start("2026-07-28 conformance fixture", cmd).await
}

/// The one check `serve` fails by choice at 2026-07-28 in front of a 2025 server: it answers
/// `ping` (the server has it; clients send it, though the revision dropped it; the suite expects
/// a server without it).
const PING_ANSWERED: &str = "FAILURE sep-2575-http-server-method-not-found-404-ping";

/// 0.2.0-alpha.12 at `--requirements 2026-07-28` against a server that speaks only that revision:
/// directly no check fails; through `mcpgate connect` and both of `serve`'s endpoints every
/// scenario scores what it scores directly (the merged endpoint with the fixture as its one
/// server relays its `ping`, which the fixture refuses).
#[tokio::test]
async fn conformance_2026_scores_the_same_through_connect_and_serve_as_direct() {
    let upstream = fixture_2026().await;
    let direct = run_suite(Suite::Next2026, &upstream.url).await;
    assert_eq!(direct.failed, 0, "the 2026-07-28 fixture itself fails checks:\n{}", direct.stdout);
    assert!(direct.passed >= 196, "expected at least 196 checks, got {}:\n{}", direct.passed, direct.stdout);
    let via_connect = connect(&upstream.url, &[]).await;
    let gw = serve_fixture(&upstream.url).await;
    let per_server = gw.url.replace("/mcp", "/servers/fixture/mcp");
    let targets = [(via_connect.url.clone(), &via_connect), (per_server, &gw), (gw.url.clone(), &gw)];
    for (url, proc) in targets {
        let through = run_suite(Suite::Next2026, &url).await;
        let diff = differences(&direct, &through);
        assert!(
            diff.is_empty() && through.failed == 0,
            "through {url}, differences:\n{diff}\n{}\nlog:\n{}",
            through.stdout,
            proc.output()
        );
    }
}

/// The same set through `connect` and `serve` (both endpoints) in front of the 2025-11-25 fixture
/// (translated: the fixture speaks no 2026-07-28): what fails is
/// only what needs a server of the new revision — the input-required results' keys and state (a
/// 2025 server's question has neither: the gateway asks under a key of its own), the tasks
/// extension, `x-mcp-header` tools — and the `ping` the gateway answers (docs/conformance.md).
#[tokio::test]
async fn conformance_2026_through_connect_and_serve_in_front_of_a_2025_server_fails_only_what_needs_a_2026_server() {
    let upstream = fixture(&[]).await;
    let via_connect = connect(&upstream.url, &[]).await;
    let gw = serve_fixture(&upstream.url).await;
    let per_server = gw.url.replace("/mcp", "/servers/fixture/mcp");
    for url in [via_connect.url.clone(), gw.url.clone(), per_server] {
        let through = run_suite(Suite::Next2026, &url).await;
        for (name, (counts, checks)) in &through.scenarios {
            let needs_2026 = name.starts_with("input-required-result-")
                || name.starts_with("tasks-")
                || name == "http-custom-header-server-validation";
            let fine = checks.is_empty()
                || needs_2026
                || (name == "server-stateless" && checks == &[PING_ANSWERED.to_owned()]);
            assert!(fine, "{url}: {name}: {counts}: {checks:?}\n{}\n{}", through.stdout, gw.output());
        }
        assert!(through.passed >= 139, "{url}: expected at least 139 checks passed:\n{}", through.stdout);
    }
}

/// 0.2.0-alpha.12 at `--requirements 2025-11-25` through `connect` and both of `serve`'s endpoints
/// in front of the 2026-07-28-only fixture: every scenario scores what it scores directly against
/// the 2025 fixture — the translation loses nothing (resource subscriptions included) — but for
/// `server-sse-polling`'s two warnings: a 2026 server's response stream is never ended mid-call
/// for the client to resume, so no `retry` field is sent and nothing is resumed.
#[tokio::test]
async fn conformance_2025_through_connect_and_serve_in_front_of_a_2026_server_scores_as_a_2025_server() {
    let legacy = fixture(&[]).await;
    let direct = run_suite(Suite::Next, &legacy.url).await;
    assert_eq!(direct.failed, 0, "{}", direct.stdout);
    let upstream = fixture_2026().await;
    let via_connect = connect(&upstream.url, &[]).await;
    let gw = serve_fixture(&upstream.url).await;
    let per_server = gw.url.replace("/mcp", "/servers/fixture/mcp");
    let polling = ["WARNING server-sse-disconnect-resume".to_owned(), "WARNING server-sse-retry-field".to_owned()];
    let targets = [(via_connect.url.clone(), &via_connect), (per_server, &gw), (gw.url.clone(), &gw)];
    for (url, proc) in targets {
        let through = run_suite(Suite::Next, &url).await;
        let log = proc.output();
        assert_eq!(through.failed, 0, "through {url}:\n{}\n{log}", through.stdout);
        assert_eq!(
            through.scenarios.keys().collect::<Vec<_>>(),
            direct.scenarios.keys().collect::<Vec<_>>(),
            "through {url}"
        );
        for (name, score) in &through.scenarios {
            if name == "server-sse-polling" {
                assert_eq!(score.1, polling, "through {url}: {name}: {score:?}");
            } else {
                assert_eq!(Some(score), direct.scenarios.get(name), "through {url}: {name}\n{log}");
            }
        }
    }
}
