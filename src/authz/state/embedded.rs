//! The embedded backend: one redb file in the state directory (created on first run, 0600),
//! every record in one table under `<table>/<key>`, its value prefixed with its deadline. Each
//! operation is one transaction on a blocking thread (a commit waits for the disk).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Fut, State, StateError, Table, deadline, now_secs};

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");

/// Expired records are swept once per this many writes (and at start).
const SWEEP_EVERY: u32 = 512;

pub struct Embedded {
    db: Arc<Database>,
    writes: AtomicU32,
}

fn failed(e: impl std::fmt::Display) -> StateError {
    StateError(e.to_string())
}

/// A stored value's payload, if it has not expired.
fn live(raw: &[u8], now: u64) -> Option<&[u8]> {
    let (deadline, payload) = raw.split_first_chunk::<8>()?;
    let deadline = u64::from_be_bytes(*deadline);
    (deadline == 0 || deadline > now).then_some(payload)
}

impl Embedded {
    /// Opens (or creates) `dir/state.redb`; the directory is created 0700.
    pub fn open(dir: &Path) -> Result<Embedded, StateError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StateError(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("state.redb");
        // Created 0600 before the database writes anything into it (an empty file is a new database).
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StateError(format!("cannot create {}: {e}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
        let db = Database::create(&path).map_err(|e| StateError(format!("cannot open {}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(failed)?;
        tx.open_table(RECORDS).map_err(failed)?;
        tx.commit().map_err(failed)?;
        let state = Embedded { db: Arc::new(db), writes: AtomicU32::new(0) };
        sweep(&state.db)?;
        Ok(state)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db)).await.map_err(failed)?
    }
}

/// Deletes every expired record.
fn sweep(db: &Database) -> Result<(), StateError> {
    let now = now_secs();
    let tx = db.begin_write().map_err(failed)?;
    tx.open_table(RECORDS).map_err(failed)?.retain(|_, v| live(v, now).is_some()).map_err(failed)?;
    tx.commit().map_err(failed)
}

impl State for Embedded {
    fn get<'a>(&'a self, table: Table, key: &'a str) -> Fut<'a, Option<Vec<u8>>> {
        let full = format!("{}{key}", table.prefix());
        Box::pin(self.blocking(move |db| {
            let tx = db.begin_read().map_err(failed)?;
            let t = tx.open_table(RECORDS).map_err(failed)?;
            let value = t.get(full.as_str()).map_err(failed)?;
            Ok(value.and_then(|v| live(v.value(), now_secs()).map(<[u8]>::to_vec)))
        }))
    }

    fn swap<'a>(
        &'a self,
        table: Table,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<&'a [u8]>,
        ttl: Option<Duration>,
    ) -> Fut<'a, bool> {
        let full = format!("{}{key}", table.prefix());
        let expected = expected.map(<[u8]>::to_vec);
        let new = new.map(|v| {
            let mut raw = deadline(ttl).to_be_bytes().to_vec();
            raw.extend_from_slice(v);
            raw
        });
        let sweep_now = self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1;
        Box::pin(self.blocking(move |db| {
            let tx = db.begin_write().map_err(failed)?;
            {
                let mut t = tx.open_table(RECORDS).map_err(failed)?;
                let current =
                    t.get(full.as_str()).map_err(failed)?.and_then(|v| live(v.value(), now_secs()).map(<[u8]>::to_vec));
                if current != expected {
                    return Ok(false);
                }
                match &new {
                    Some(raw) => t.insert(full.as_str(), raw.as_slice()).map(drop).map_err(failed)?,
                    None => t.remove(full.as_str()).map(drop).map_err(failed)?,
                }
            }
            tx.commit().map_err(failed)?;
            if sweep_now {
                sweep(db)?;
            }
            Ok(true)
        }))
    }

    fn all<'a>(&'a self, table: Table) -> Fut<'a, Vec<(String, Vec<u8>)>> {
        let prefix = table.prefix();
        Box::pin(self.blocking(move |db| {
            let tx = db.begin_read().map_err(failed)?;
            let t = tx.open_table(RECORDS).map_err(failed)?;
            let now = now_secs();
            let mut out = Vec::new();
            for entry in t.range(prefix..).map_err(failed)? {
                let (k, v) = entry.map_err(failed)?;
                let Some(key) = k.value().strip_prefix(prefix) else { break };
                if let Some(payload) = live(v.value(), now) {
                    out.push((key.to_owned(), payload.to_vec()));
                }
            }
            Ok(out)
        }))
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_embedded_backend_passes_the_suite() {
        let dir = std::env::temp_dir().join(format!("mcpgate-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state: std::sync::Arc<dyn super::State> = std::sync::Arc::new(super::Embedded::open(&dir).unwrap());
        super::super::suite::run(state.clone()).await;
        // What was written survives a restart.
        drop(state);
        let reopened: std::sync::Arc<dyn super::State> = std::sync::Arc::new(super::Embedded::open(&dir).unwrap());
        super::super::suite::survives(reopened).await;
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join("state.redb")).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
