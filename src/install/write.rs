//! Writing a client's file: atomically (a temporary file beside it, synced, renamed over it) and
//! only if nobody changed it since it was read; the file as it was before mcpgate first wrote it
//! kept as `<file>.mcpgate-backup` (never overwritten: later writes keep that first one); its
//! mode, owner and group kept (a new file is 0600); a symbolic link followed (a dotfile
//! manager's link stays a link).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub enum Outcome {
    /// Written; the backup, when there was an old file.
    Written(Option<PathBuf>),
    /// The file is no longer `expected`: read it again.
    Changed,
}

/// Replaces `path`'s contents (`expected`, or none) with `text`.
pub fn replace(path: &Path, text: &str, expected: Option<&str>) -> Result<Outcome, String> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let old = std::fs::metadata(&path).ok();
    let mode = old.as_ref().map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let backup = with_suffix(&path, ".mcpgate-backup");
    let tmp = with_suffix(&path, &format!(".mcpgate-{}.tmp", std::process::id()));
    write_new(&tmp, text.as_bytes(), mode)?;
    if let Some(m) = &old {
        // Root writing a user's file leaves it theirs.
        let _ = std::os::unix::fs::chown(&tmp, Some(m.uid()), Some(m.gid()));
    }
    // The file as read, still? (What a client wrote meanwhile is never overwritten.)
    let now = std::fs::read_to_string(&path).ok();
    if now.as_deref() != expected {
        let _ = std::fs::remove_file(&tmp);
        return Ok(Outcome::Changed);
    }
    let kept = match (&now, backup.exists()) {
        (Some(first), false) => {
            write_new(&backup, first.as_bytes(), mode)?;
            Some(backup)
        }
        (Some(_), true) => Some(backup),
        (None, _) => None,
    };
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", path.display())
    })?;
    // The rename itself made durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Outcome::Written(kept))
}

/// Writes `bytes` to a new file at `path` (an old one replaced) with `mode`, synced.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    // The mode asked for, whatever the umask.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
