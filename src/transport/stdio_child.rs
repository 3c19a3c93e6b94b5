//! A local MCP server as a child process: newline-delimited JSON-RPC on its stdin/stdout, its
//! stderr into mcpgate's log. The child leads its own process group, so stopping it stops what
//! it started too (`npx` and `uvx` run the real server as a grandchild).
//!
//! What the child writes is bounded on the way in: a message line up to `MAX_LINE`, at most
//! `STDOUT_AHEAD` lines read ahead of the gateway (then the child waits, as a pipe makes it), and
//! stderr in lines of at most `STDERR_LINE` bytes, the rest of a longer line discarded as it
//! streams, never held whole.
//!
//! What goes to the child is bounded too: messages wait for it to read its stdin within
//! `STDIN_AHEAD` bytes, and one that does not fit is refused at once (`Stdin::send`). Refusing
//! rather than waiting for room: a child that stopped reading is stuck for every client sharing
//! it, and a caller waiting for room would only learn so at its timeout, its connection and body
//! held meanwhile; refused, it gets an error it can act on now. A healthy child never sees the
//! limit: a megabyte is thousands of ordinary calls.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};

/// Largest line read from a child (a message); a longer one ends the child.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// Lines read from a child's stdout ahead of the gateway taking them.
const STDOUT_AHEAD: usize = 64;
/// Longest stderr line logged; the rest of a longer one is discarded.
pub const STDERR_LINE: usize = 8 * 1024;
/// A read buffer that grew past this for one long message is given back afterwards.
const KEEP_BUFFER: usize = 64 * 1024;

/// Bytes of messages waiting for a child to read its stdin, at most (a larger message waits
/// alone).
pub const STDIN_AHEAD: usize = 1024 * 1024;

/// Stderr lines cut at `STDERR_LINE` (process-wide, for `/metrics`).
pub static STDERR_TRUNCATED: AtomicU64 = AtomicU64::new(0);
/// Messages refused because a child was `STDIN_AHEAD` bytes behind (process-wide, for `/metrics`).
pub static STDIN_REFUSED: AtomicU64 = AtomicU64::new(0);

/// A child's stdin: messages (lines without their newline) queued for the writer, each holding
/// its bytes' worth of room until it is written.
#[derive(Clone)]
pub struct Stdin {
    tx: mpsc::UnboundedSender<(Bytes, OwnedSemaphorePermit)>,
    room: Arc<Semaphore>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StdinError {
    #[error("its input is closed")]
    Closed,
    #[error("it is not reading its input ({} KiB wait for it); not sent", STDIN_AHEAD / 1024)]
    Behind,
}

impl Stdin {
    /// Queues one message, or refuses it at once when the child is `STDIN_AHEAD` bytes behind.
    pub fn send(&self, line: Bytes) -> Result<(), StdinError> {
        // Clamped: a message larger than the whole room waits alone rather than never.
        let need = u32::try_from(line.len().clamp(1, STDIN_AHEAD)).unwrap_or(u32::MAX);
        let permit = self.room.clone().try_acquire_many_owned(need).map_err(|e| match e {
            TryAcquireError::Closed => StdinError::Closed,
            TryAcquireError::NoPermits => {
                STDIN_REFUSED.fetch_add(1, Ordering::Relaxed);
                StdinError::Behind
            }
        })?;
        self.tx.send((line, permit)).map_err(|_| StdinError::Closed)
    }

    /// A stdin whose messages go to `rx` (tests, and `spawn`).
    fn new() -> (Stdin, mpsc::UnboundedReceiver<(Bytes, OwnedSemaphorePermit)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Stdin { tx, room: Arc::new(Semaphore::new(STDIN_AHEAD)) }, rx)
    }
}

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
    pub stdin: Stdin,
    pub stdout: mpsc::Receiver<Bytes>,
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
    let (stdin_tx, mut stdin_rx) = Stdin::new();
    let (stdout_tx, stdout_rx) = mpsc::channel::<Bytes>(STDOUT_AHEAD);
    let (exit_tx, exit_rx) = oneshot::channel();
    let mut stdin = child.stdin.take();
    tokio::spawn(async move {
        let mut framed = Vec::new();
        let mut held = Vec::new();
        while let Some((line, permit)) = stdin_rx.recv().await {
            let Some(w) = stdin.as_mut() else { break };
            // Whatever else is queued goes in the same write: one syscall for many messages
            // when clients are busy, none held back when they are not.
            framed.clear();
            framed.extend_from_slice(&line);
            framed.push(b'\n');
            held.push(permit);
            while let Ok((more, permit)) = stdin_rx.try_recv() {
                framed.extend_from_slice(&more);
                framed.push(b'\n');
                held.push(permit);
            }
            if w.write_all(&framed).await.is_err() || w.flush().await.is_err() {
                break;
            }
            // Written: their room is free again.
            held.clear();
            if framed.capacity() > KEEP_BUFFER {
                framed = Vec::new();
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
                        if !trimmed.is_empty() && stdout_tx.send(Bytes::copy_from_slice(trimmed)).await.is_err() {
                            break;
                        }
                    }
                }
                if line.capacity() > KEEP_BUFFER {
                    line = Vec::new();
                }
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        let name = spec.name.clone();
        tokio::spawn(async move {
            stderr_lines(BufReader::new(err), |line, cut| {
                let text = String::from_utf8_lossy(line);
                if cut {
                    STDERR_TRUNCATED.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(server = %name, "stderr: {text}… (cut at {STDERR_LINE} bytes)");
                } else {
                    tracing::debug!(server = %name, "stderr: {text}");
                }
            })
            .await;
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

/// Calls `each` with every line of `reader` (without its newline) and whether it was cut: at
/// most `STDERR_LINE` bytes of a line are kept, the rest skipped as it arrives.
async fn stderr_lines(mut reader: impl AsyncBufRead + Unpin, mut each: impl FnMut(&[u8], bool)) {
    let mut line = Vec::new();
    let mut cut = false;
    loop {
        let buf = match reader.fill_buf().await {
            Ok(b) if !b.is_empty() => b,
            _ => break,
        };
        let end = buf.iter().position(|b| *b == b'\n');
        let chunk = &buf[..end.unwrap_or(buf.len())];
        let room = STDERR_LINE - line.len();
        cut |= chunk.len() > room;
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = end.map_or(buf.len(), |i| i + 1);
        reader.consume(used);
        if end.is_some() {
            each(&line, cut);
            line.clear();
            cut = false;
        }
    }
    if !line.is_empty() || cut {
        each(&line, cut);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_refuses_what_does_not_fit_and_takes_it_once_written() {
        let (stdin, mut rx) = Stdin::new();
        let line = Bytes::from(vec![b'x'; 100 * 1024]);
        for _ in 0..10 {
            stdin.send(line.clone()).unwrap();
        }
        assert_eq!(stdin.send(line.clone()), Err(StdinError::Behind));
        // One written (its permit dropped): room for one more.
        drop(rx.try_recv().unwrap());
        stdin.send(line.clone()).unwrap();
        // A message larger than the whole room waits alone.
        while rx.try_recv().is_ok() {}
        stdin.send(Bytes::from(vec![b'x'; 3 * STDIN_AHEAD])).unwrap();
        assert_eq!(stdin.send(Bytes::from_static(b"{}")), Err(StdinError::Behind));
        // The writer gone (the child exited): what waited is freed, and nothing more goes in.
        drop(rx);
        assert_eq!(stdin.send(Bytes::from_static(b"{}")), Err(StdinError::Closed));
    }

    #[tokio::test]
    async fn stderr_lines_are_cut_at_the_limit_and_the_rest_skipped() {
        let long = vec![b'x'; STDERR_LINE * 3 + 5];
        let mut input = b"first\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nlast");
        // A small buffer: the long line arrives in many pieces, as from a pipe.
        let reader = BufReader::with_capacity(1000, &input[..]);
        let mut seen = Vec::new();
        stderr_lines(reader, |l, cut| seen.push((l.len(), cut))).await;
        assert_eq!(seen, [(5, false), (STDERR_LINE, true), (4, false)]);
    }

    /// A line a server writes in pieces (Python's logging to an unbuffered stderr, say) is
    /// logged once, whole.
    #[tokio::test]
    async fn a_line_written_in_pieces_is_logged_whole() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in [&b"INFO:server:"[..], b"listening on", b" stdio\nnext", b" line\n"] {
                tx.write_all(piece).await.unwrap();
                tx.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut seen = Vec::new();
        stderr_lines(BufReader::new(rx), |l, _| seen.push(String::from_utf8_lossy(l).into_owned())).await;
        writer.await.unwrap();
        assert_eq!(seen, ["INFO:server:listening on stdio", "next line"]);
    }
}
