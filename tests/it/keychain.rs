//! The store's key in a real OS keychain: a private D-Bus session with GNOME Keyring's Secret
//! Service (Debian's gnome-keyring and libsecret-tools, installed by scripts/test). With a keychain
//! running, no key file is written; the key is found there by the next process.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::harness::*;
use crate::idp::*;

/// A session bus and an unlocked keyring, for this test's processes only; killed on drop.
struct SecretService {
    _bus: Child,
    _keyring: Child,
    env: Vec<(String, String)>,
}

async fn secret_service(home: &Path) -> SecretService {
    for tool in ["dbus-daemon", "gnome-keyring-daemon", "secret-tool"] {
        assert!(
            Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().await.unwrap().status.success(),
            "{tool} is missing: scripts/test installs gnome-keyring, libsecret-tools and dbus"
        );
    }
    // A bus that starts nothing on demand: with the session bus's service files, a probe made
    // before our keyring has claimed its name starts a second, locked one ("another secret
    // service is running"), and the probe waits on it until the test times out.
    let config = home.join("bus.conf");
    std::fs::write(
        &config,
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
    )
    .unwrap();
    let mut bus = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(bus.stdout.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().unwrap();
    let env = vec![
        ("DBUS_SESSION_BUS_ADDRESS".to_owned(), address.trim().to_owned()),
        ("HOME".to_owned(), home.display().to_string()),
        ("XDG_RUNTIME_DIR".to_owned(), home.display().to_string()),
    ];
    let mut keyring = Command::new("gnome-keyring-daemon");
    keyring.args(["--foreground", "--unlock", "--components=secrets"]).envs(env.iter().cloned());
    let log = home.join("keyring.log");
    let mut keyring = keyring
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = keyring.stdin.take().unwrap();
    stdin.write_all(b"test-keyring-password\n").await.unwrap();
    drop(stdin);
    // Ready once the Secret Service answers a lookup (nothing found: exit 1, but an answer).
    let ready = until(Duration::from_secs(30), || {
        let env = env.clone();
        async move {
            let mut c = Command::new("secret-tool");
            c.args(["store", "--label", "probe", "service", "mcpgate-probe"]).envs(env).stdin(Stdio::piped());
            let mut child = c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
            let mut i = child.stdin.take().unwrap();
            let _ = i.write_all(b"x").await;
            drop(i);
            child.wait().await.is_ok_and(|s| s.success())
        }
    })
    .await;
    assert!(ready, "the Secret Service did not come up:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    SecretService { _bus: bus, _keyring: keyring, env }
}

#[tokio::test]
async fn with_a_secret_service_the_store_key_lives_in_the_keychain() {
    let provider = idp(&[], 3600).await;
    let server = protected(&provider.url, &[]).await;
    let (store, count) = store("keychain");
    let home = store.parent().unwrap().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let keychain = secret_service(&home).await;
    let run = |args: Vec<String>, browser: String| {
        let env = keychain.env.clone();
        let store = store.clone();
        async move {
            let out = tokio::time::timeout(
                Duration::from_secs(90),
                Command::new(mcpgate_bin())
                    .args(&args)
                    .envs(env)
                    .env("MCPGATE_STORE_DIR", &store)
                    .env("MCPGATE_BROWSER", browser)
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .unwrap()
            .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
            )
        }
    };
    let (ok, out) = run(vec!["login".into(), server.url.clone()], browser(&count, true)).await;
    assert!(ok, "{out}");
    assert!(!store.join("key").exists(), "no key file beside the records when a keychain runs");
    let mut lookup = Command::new("secret-tool");
    lookup.args(["lookup", "service", "mcpgate", "store", store.to_str().unwrap()]).envs(keychain.env.clone());
    let key = lookup.output().await.unwrap();
    assert!(key.status.success(), "the key is in the Secret Service");
    let decoded =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, String::from_utf8_lossy(&key.stdout).trim())
            .unwrap();
    assert_eq!(decoded.len(), 32);

    // Another process opens the records with the keychain's key: no browser.
    let (ok, out) = run(vec!["status".into()], "false".into()).await;
    assert!(
        ok && out.contains("key: the Secret Service") && out.contains("refreshable") && !out.contains("damaged"),
        "{out}"
    );
    let mut cmd = tokio::process::Command::new(mcpgate_bin());
    cmd.args(["stdio", &server.url])
        .envs(keychain.env.clone())
        .env("MCPGATE_STORE_DIR", &store)
        .env("MCPGATE_BROWSER", "false");
    let mut bridge =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut stdin = bridge.stdin.take().unwrap();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    stdin.write_all(format!("{init}\n").as_bytes()).await.unwrap();
    let mut lines = BufReader::new(bridge.stdout.take().unwrap()).lines();
    let answer = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(answer.contains("\"result\""), "{answer}");
    assert_eq!(opened(&count), 1, "the stored credential was used");
}
