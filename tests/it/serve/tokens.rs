//! The gateway's own credential for a remote server, renewed when the server refuses it: one
//! refresh, one retry, unseen by the client. (A stdio child has no credential.)

use std::sync::Arc;

use serde_json::json;

use super::*;

/// A remote server alone (whose messages take the direct path) and merged: its token revoked,
/// the next call is refused once, the token command runs again, and the call is sent once more
/// with the new token — the client sees only the answer.
#[tokio::test]
async fn a_revoked_token_is_renewed_unseen_on_every_remote_route() {
    let dir = tempdir("serve-tokens");
    // The fixture accepts only the token in `valid`; the command prints tok-1, tok-2, …
    std::fs::write(dir.join("valid"), "tok-1").unwrap();
    let (valid, log) = (dir.join("valid"), dir.join("auth.log"));
    let fixture =
        fixture(&["--require-token-file", valid.to_str().unwrap(), "--auth-log", log.to_str().unwrap()]).await;
    let script = dir.join("token.sh");
    let d = dir.display();
    std::fs::write(&script, format!("echo x >> {d}/runs\necho \"tok-$(wc -l < {d}/runs)\"\n")).unwrap();
    let auth = json!({"tokenCommand": format!("sh {}", script.display())});
    let gw = serve_ready(&dir, json!({"remote": {"url": fixture.url, "auth": auth}, "local": echo_server(&dir)})).await;
    let ctx = Arc::new((gw, fixture, dir));
    on_routes(&ctx, &REMOTE, |ctx, route| async move {
        let (gw, dir) = (&ctx.0, &ctx.2);
        let (valid, log) = (dir.join("valid"), dir.join("auth.log"));
        let url = route.url(&gw.url);
        let sid = open_session(&url, &[]).await;
        let simple = |id: u32| tool_call(json!(id), &route.name("test_simple_text"), json!({}));
        let r = call(&url, &sid, &[], &simple(1)).await;
        assert_eq!(r.status, 200, "{route}: {}", r.body);
        assert!(r.message()["result"]["content"][0]["text"].is_string(), "{route}: {}", r.body);
        // The token in use is revoked: the server now wants the command's next one.
        let runs = std::fs::read_to_string(dir.join("runs")).unwrap().lines().count();
        let (old, new) = (format!("tok-{runs}"), format!("tok-{}", runs + 1));
        std::fs::write(&valid, &new).unwrap();
        let before = std::fs::read_to_string(&log).unwrap().lines().count();
        let r = call(&url, &sid, &[], &simple(2)).await;
        assert_eq!(r.status, 200, "{route}: {}\n{}", r.body, gw.output());
        assert!(r.message()["result"]["content"][0]["text"].is_string(), "{route}: {}", r.body);
        // (The gateway's GET streams reconnect with the renewed token meanwhile.)
        let seen: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .skip(before)
            .filter(|l| l.starts_with("POST"))
            .map(str::to_owned)
            .collect();
        assert_eq!(
            seen,
            [format!("POST Bearer {old}"), format!("POST Bearer {new}")],
            "{route}: one try, one retry with the renewed token"
        );
        if route.lone() {
            assert!(gw.output().contains("a direct request was refused"), "{route}: {}", gw.output());
        }
    })
    .await;
}
