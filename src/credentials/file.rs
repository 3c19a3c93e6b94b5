//! A token kept in a file that something else rotates: re-read whenever its identity (inode,
//! size, modification time) changes, so a rotated token is used from the next request on.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::token::{self, IssuedToken};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp { ino: m.ino(), size: m.size(), mtime: m.mtime(), mtime_nsec: m.mtime_nsec() })
}

pub(super) fn read(path: &Path) -> Result<IssuedToken, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
    let mut token = token::from_plain(&text).map_err(|e| format!("holds no usable token: {e}"))?;
    // A file token has no expiry we can trust; its rotation is what matters.
    token.expires_at = None;
    Ok(token)
}

pub(super) struct Watch {
    path: PathBuf,
    last: Mutex<Option<Stamp>>,
}

impl Watch {
    pub(super) fn open(path: &Path) -> Result<(IssuedToken, Watch), String> {
        let before = stamp(path);
        let token = read(path)?;
        Ok((token, Watch { path: path.to_owned(), last: Mutex::new(before) }))
    }

    /// The new token if the file changed since the last look. A file that is briefly missing
    /// or empty mid-rotation keeps the previous token.
    pub(super) fn reload_if_changed(&self) -> Option<IssuedToken> {
        let now = stamp(&self.path);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_none() || now == *last {
            return None;
        }
        match read(&self.path) {
            Ok(token) => {
                *last = now;
                tracing::debug!(path = %self.path.display(), "token file changed; using the new token");
                Some(token)
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "token file changed but {e}; keeping the previous token");
                None
            }
        }
    }
}
