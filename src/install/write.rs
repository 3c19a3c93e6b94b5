//! Writing a client's file: atomically (a temporary file beside it, synced, renamed over it), the
//! old one kept as `<file>.mcpgate-backup` first, its permissions kept (a new file is 0600), a
//! symbolic link followed (a dotfile manager's link stays a link).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Replaces `path`'s contents with `text`; the backup's path, when there was an old file.
pub fn replace(path: &Path, text: &str) -> Result<Option<PathBuf>, String> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let old_mode = std::fs::metadata(&path).ok().map(|m| m.permissions().mode() & 0o7777);
    let backup = match old_mode {
        Some(mode) => {
            let backup = with_suffix(&path, ".mcpgate-backup");
            let old = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            write_new(&backup, &old, mode)?;
            Some(backup)
        }
        None => None,
    };
    let tmp = with_suffix(&path, &format!(".mcpgate-{}.tmp", std::process::id()));
    write_new(&tmp, text.as_bytes(), old_mode.unwrap_or(0o600))?;
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", path.display())
    })?;
    // The rename itself made durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(backup)
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
