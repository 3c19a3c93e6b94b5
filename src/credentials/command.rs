//! A token printed by a command (`az account get-access-token`, `gcloud auth print-access-token`,
//! a wrapper's own script). Run through `sh -c`, with a time limit; its stdout is the token and
//! is never logged, its stderr explains failures.

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use crate::token::{self, IssuedToken};

#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub command: String,
    pub timeout: Duration,
}

impl CommandSpec {
    /// The first word of the command: enough to name it in messages without echoing arguments
    /// that might hold secrets.
    pub fn program_name(&self) -> &str {
        self.command.split_whitespace().next().unwrap_or("")
    }

    pub(super) async fn run(&self, now: SystemTime) -> Result<IssuedToken, String> {
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("could not be started: {e}"))?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(format!("failed: {e}")),
            Err(_) => return Err(format!("did not finish within {:?}", self.timeout)),
        };
        if !output.status.success() {
            return Err(format!("failed ({}){}", output.status, stderr_tail(&output.stderr)));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        token::parse_command_output(&stdout, now).map_err(|e| e.to_string())
    }
}

/// The end of what the command said on stderr, for the user to act on (`Please run 'az login'`).
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let start = text.char_indices().rev().nth(499).map_or(0, |(i, _)| i);
    format!(": {}", &text[start..])
}
