//! A local MCP server as a child process: newline-delimited JSON-RPC on its stdin/stdout, its
//! stderr into mcpgate's log. The child leads its own process group, so stopping it stops what
//! it started too (`npx` and `uvx` run the real server as a grandchild).

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// Largest line read from a child (a message); a longer one ends the child.
const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// For logs.
    pub name: String,
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<std::path::PathBuf>,
}

/// A started child: send lines in, receive lines out, learn when it exits.
pub struct Running {
    pub pid: i32,
    pub stdin: mpsc::UnboundedSender<Bytes>,
    pub stdout: mpsc::UnboundedReceiver<Bytes>,
    pub exited: oneshot::Receiver<String>,
}

pub fn spawn(spec: &Spec) -> std::io::Result<Running> {
    let mut cmd = tokio::process::Command::new(&spec.command);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    let (stdin_tx, mut stdin_rx) = mpsc::unbounded_channel::<Bytes>();
    let (stdout_tx, stdout_rx) = mpsc::unbounded_channel::<Bytes>();
    let (exit_tx, exit_rx) = oneshot::channel();
    let mut stdin = child.stdin.take();
    tokio::spawn(async move {
        let mut framed = Vec::new();
        while let Some(line) = stdin_rx.recv().await {
            let Some(w) = stdin.as_mut() else { break };
            // Whatever else is queued goes in the same write: one syscall for many messages
            // when clients are busy, none held back when they are not.
            framed.clear();
            framed.extend_from_slice(&line);
            framed.push(b'\n');
            while let Ok(more) = stdin_rx.try_recv() {
                framed.extend_from_slice(&more);
                framed.push(b'\n');
            }
            if w.write_all(&framed).await.is_err() || w.flush().await.is_err() {
                break;
            }
        }
        // Dropping stdin closes it: the child's signal to stop.
    });
    if let Some(out) = child.stdout.take() {
        let name = spec.name.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(out);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.len() > MAX_LINE => {
                        tracing::warn!(server = %name, "a message over {MAX_LINE} bytes; dropping the child's output");
                        break;
                    }
                    Ok(_) => {
                        let trimmed = line.trim_ascii();
                        if !trimmed.is_empty() && stdout_tx.send(Bytes::copy_from_slice(trimmed)).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        let name = spec.name.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(server = %name, "stderr: {}", line.chars().take(2000).collect::<String>());
            }
        });
    }
    tokio::spawn(async move {
        let how = match child.wait().await {
            Ok(status) => describe(status),
            Err(e) => format!("could not be waited for: {e}"),
        };
        let _ = exit_tx.send(how);
    });
    Ok(Running { pid, stdin: stdin_tx, stdout: stdout_rx, exited: exit_rx })
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "exited".to_owned(),
    }
}

/// Stops a child's whole process group: SIGTERM, then SIGKILL after `grace`.
pub async fn stop_group(pid: i32, grace: Duration) {
    if pid <= 0 {
        return;
    }
    // SAFETY: signals to a process group we created (the child leads it).
    unsafe { libc::killpg(pid, libc::SIGTERM) };
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        // SAFETY: signal 0 only checks whether the group still has members.
        if unsafe { libc::killpg(pid, 0) } != 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SAFETY: as above.
    unsafe { libc::killpg(pid, libc::SIGKILL) };
}
