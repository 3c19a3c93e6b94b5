//! The official conformance suite (`@modelcontextprotocol/conformance` 0.1.16, `server --suite all`)
//! against our fixture server directly, and through `mcpgate connect`: the scores must be equal
//! and every check must pass.

use std::time::Duration;

use crate::harness::*;

/// Runs tests/conformance/run-suite.sh and returns (passed, failed) checks.
async fn suite(url: &str) -> (u32, u32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new("bash")
            .arg(repo().join("tests/conformance/run-suite.sh"))
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the conformance suite finished in time")
    .expect("the conformance suite ran");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout.lines().rev().find(|l| l.starts_with("conformance: ")).unwrap_or_else(|| {
        panic!("no score line; stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr))
    });
    let nums: Vec<u32> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
    (nums[0], nums[1], stdout)
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

/// The suite's 26 client scenarios (initialize, tools_call, elicitation defaults, sse-retry and
/// every `auth/*` one) with `mcpgate stdio` as the client, launched by our SDK driver
/// (tests/conformance/client-driver.mjs): every scenario must pass.
#[tokio::test]
async fn conformance_client_scenarios_all_pass_through_the_stdio_bridge() {
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new("bash")
            .arg(repo().join("tests/conformance/run-client-suite.sh"))
            .env("MCPGATE_BIN", mcpgate_bin())
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
    let nums: Vec<u32> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
    assert_eq!((nums[0], nums[1]), (26, 0), "{stdout}");
    assert!(out.status.success(), "{stdout}");
}

/// `mcpgate serve` fronting the fixture: the merged endpoint (one server, so no prefix) and the
/// server's own endpoint `/servers/<name>/mcp` score what the fixture scores directly.
#[tokio::test]
async fn conformance_suite_scores_the_same_through_serve_merged_and_per_server() {
    let upstream = fixture(&[]).await;
    let (direct_pass, direct_fail, direct_out) = suite(&upstream.url).await;
    assert_eq!(direct_fail, 0, "the fixture itself fails checks:\n{direct_out}");
    assert!(direct_pass >= 44, "expected at least 44 checks, got {direct_pass}:\n{direct_out}");
    let dir = tempdir("conformance-serve");
    let config = dir.join("mcpgate.json");
    std::fs::write(&config, serde_json::json!({"mcpServers": {"fixture": {"url": upstream.url}}}).to_string()).unwrap();
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["serve", "--config"]).arg(&config).args(["--listen", "127.0.0.1:0"]);
    let gw = Proc::start("mcpgate serve", cmd).await;
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
