//! The OS keychain, where one is available, holding the store's encryption key: the Secret
//! Service (GNOME Keyring, KWallet) through `secret-tool` on Linux, the login keychain through
//! `security` on macOS. The key never appears in a command line: both tools read it from stdin.
//! `MCPGATE_KEYCHAIN=off` keeps the key in the store directory instead (as when no keychain runs).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A keychain that answered, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keychain {
    SecretService,
    MacOs,
}

/// How long a keychain may take (a locked one may wait for a prompt nobody answers).
const LIMIT: Duration = Duration::from_secs(3);
const SERVICE: &str = "mcpgate";

impl Keychain {
    /// The keychain of this session, if any.
    pub fn detect() -> Option<Keychain> {
        match std::env::var("MCPGATE_KEYCHAIN").ok().as_deref() {
            Some("off" | "none" | "file") => return None,
            Some("secret-service") => return Some(Keychain::SecretService),
            Some("macos") => return Some(Keychain::MacOs),
            _ => {}
        }
        if cfg!(target_os = "macos") {
            return on_path("security").then_some(Keychain::MacOs);
        }
        let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty());
        (bus && on_path("secret-tool")).then_some(Keychain::SecretService)
    }

    pub fn name(self) -> &'static str {
        match self {
            Keychain::SecretService => "the Secret Service",
            Keychain::MacOs => "the macOS keychain",
        }
    }

    /// The secret stored for `account`, if any.
    pub fn get(self, account: &str) -> Result<Option<String>, String> {
        let (program, args): (&str, Vec<&str>) = match self {
            Keychain::SecretService => ("secret-tool", vec!["lookup", "service", SERVICE, "store", account]),
            Keychain::MacOs => ("security", vec!["find-generic-password", "-s", SERVICE, "-a", account, "-w"]),
        };
        let out = run(program, &args, None)?;
        match out {
            (true, stdout) if !stdout.trim().is_empty() => Ok(Some(stdout.trim().to_owned())),
            // Both tools exit non-zero when nothing is stored.
            _ => Ok(None),
        }
    }

    /// Stores `secret` for `account`, replacing what was there.
    pub fn set(self, account: &str, secret: &str) -> Result<(), String> {
        let label = format!("mcpgate credential store key ({account})");
        let ok = match self {
            Keychain::SecretService => {
                run("secret-tool", &["store", "--label", &label, "service", SERVICE, "store", account], Some(secret))?.0
            }
            // `security -i` reads its commands from stdin, so the secret stays out of argv.
            Keychain::MacOs => {
                let cmd = format!(
                    "add-generic-password -U -s {SERVICE} -a {} -l {} -w {secret}\n",
                    quote(account),
                    quote(&label)
                );
                run("security", &["-i"], Some(&cmd))?.0
            }
        };
        if ok { Ok(()) } else { Err(format!("{} refused to store the key", self.name())) }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Runs a keychain tool with `input` on stdin, within `LIMIT`; (success, stdout).
fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<(bool, String), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program} could not be started: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(text.as_bytes());
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut s) = child.stdout.take() {
                    let _ = s.read_to_string(&mut out);
                }
                return Ok((status.success(), out));
            }
            Ok(None) if started.elapsed() < LIMIT => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not answer within {LIMIT:?} (a locked keychain?)"));
            }
            Err(e) => return Err(format!("{program} failed: {e}")),
        }
    }
}
