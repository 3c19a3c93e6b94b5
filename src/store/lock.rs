//! A cross-process advisory lock (`flock`) on a file: held while one process refreshes or logs
//! in, so several bridges of one user never race each other's rotating refresh tokens. Taken
//! by polling with `LOCK_NB`, so waiting never blocks the async runtime and stays bounded.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct FileLock {
    // Closing the file releases the lock.
    _file: std::fs::File,
}

impl FileLock {
    pub(super) async fn acquire(path: &Path, limit: Duration) -> std::io::Result<FileLock> {
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
        let started = Instant::now();
        let mut wait = Duration::from_millis(5);
        loop {
            // SAFETY: flock on a file descriptor we own, for as long as `file` lives.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) && err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
            if started.elapsed() >= limit {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("another mcpgate process held the lock for more than {limit:?}"),
                ));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(100));
        }
    }
}

impl FileLock {
    /// Waits for the lock, blocking the thread: only for locks held a few milliseconds (the
    /// store key's creation).
    pub(super) fn acquire_blocking(path: &Path) -> std::io::Result<FileLock> {
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
        loop {
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time() {
        let path = std::env::temp_dir().join(format!("mcpgate-lock-{}", std::process::id()));
        let first = FileLock::acquire(&path, Duration::from_secs(1)).await.unwrap();
        // flock locks belong to the open file description, so a second open conflicts even in-process.
        let err = FileLock::acquire(&path, Duration::from_millis(50)).await.err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        drop(first);
        FileLock::acquire(&path, Duration::from_secs(1)).await.unwrap();
    }
}
