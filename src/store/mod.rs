//! The credential store of a desktop user: upstream tokens and client registrations, kept
//! across runs and shared by every mcpgate process of the user.
//!
//! One file per record under the store directory (`$MCPGATE_STORE_DIR`, else
//! `$XDG_CONFIG_HOME/mcpgate`, else `~/.config/mcpgate`), directory 0700, files 0600, written
//! atomically (temporary file, fsync, rename). A record has a public part (what `mcpgate
//! status` shows) and a sealed part (tokens, secrets) encrypted with an AEAD whose associated
//! data names the record, so a flipped byte or a ciphertext copied into another record yields
//! no credential. Processes serialize refreshes and logins with advisory file locks (`flock`).

mod crypto;
mod keychain;
mod lock;

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use lock::FileLock;

/// What kind of record: a folder each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Tokens for one (authorization server, client, resource).
    Token,
    /// A client registration at one authorization server, reused by later logins.
    Client,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Token => "tokens",
            Kind::Client => "clients",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("credential store {path}: {reason}")]
pub struct StoreError {
    pub path: String,
    pub reason: String,
}

/// A record as stored: `public` is plain JSON, `sealed` the encrypted secrets.
#[derive(Debug, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    id: String,
    public: Value,
    /// base64(nonce ‖ ciphertext ‖ tag)
    sealed: Option<String>,
}

/// A record read back: the public part, and the secrets if they could be opened.
pub struct Record {
    pub id: String,
    pub public: Value,
    /// `None` when the record has no secrets, or they fail to decrypt (damaged, moved).
    pub secret: Option<Value>,
}

#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
    /// The key, once read (a keychain lookup is a process spawn: done once).
    key: std::sync::Arc<std::sync::Mutex<Option<crypto::Key>>>,
    keychain: Option<keychain::Keychain>,
}

impl Store {
    /// The default directory for this user.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("MCPGATE_STORE_DIR").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(d));
        }
        if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(d).join("mcpgate"));
        }
        std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".config/mcpgate"))
    }

    /// Nothing is created until the first write: a bridge that only reads touches nothing.
    pub fn new(dir: PathBuf) -> Store {
        Store { dir, key: Default::default(), keychain: keychain::Keychain::detect() }
    }

    /// A store that keeps its key in its directory whatever the session offers (tests).
    pub fn without_keychain(dir: PathBuf) -> Store {
        Store { dir, key: Default::default(), keychain: None }
    }

    /// Where the key is kept, for `status`.
    pub fn key_location(&self) -> String {
        if self.dir.join("key").exists() {
            return format!("{}", self.dir.join("key").display());
        }
        match self.keychain {
            Some(k) => k.name().to_owned(),
            None => format!("{} (not created yet)", self.dir.join("key").display()),
        }
    }

    fn key(&self, create: bool) -> Result<Option<crypto::Key>, String> {
        let mut cached = self.key.lock().unwrap_or_else(|p| p.into_inner());
        if cached.is_none() {
            *cached = if create {
                // One process creates the key; the others wait and read it.
                let locks = self.dir.join("locks");
                self.ensure_dir(&locks).map_err(|e| e.to_string())?;
                let _lock = FileLock::acquire_blocking(&locks.join("key.lock")).map_err(|e| e.to_string())?;
                Some(crypto::Key::load_or_create(&self.dir, self.keychain)?)
            } else {
                crypto::Key::load(&self.dir, self.keychain).map_err(|e| e.to_string())?
            };
        }
        Ok(cached.clone())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn err(&self, path: &Path, reason: impl std::fmt::Display) -> StoreError {
        StoreError { path: path.display().to_string(), reason: reason.to_string() }
    }

    fn file(&self, kind: Kind, id: &str) -> PathBuf {
        self.dir.join(kind.dir()).join(format!("{}.json", crypto::file_name(id)))
    }

    /// Creates `dir` (and the store root) with mode 0700, tightening an existing one.
    fn ensure_dir(&self, dir: &Path) -> Result<(), StoreError> {
        for d in [self.dir.as_path(), dir] {
            if !d.exists() {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(d).map_err(|e| self.err(d, e))?;
            }
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700));
        }
        Ok(())
    }

    /// Reads one record; `Ok(None)` when there is none.
    pub fn load(&self, kind: Kind, id: &str) -> Result<Option<Record>, StoreError> {
        let path = self.file(kind, id);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(self.decode(&path, &bytes).filter(|r| r.id == id)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(&path, e)),
        }
    }

    /// Every record of a kind (damaged files are skipped with a warning).
    pub fn list(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        let dir = self.dir.join(kind.dir());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(&dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            if let Ok(bytes) = std::fs::read(&path)
                && let Some(r) = self.decode(&path, &bytes)
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn decode(&self, path: &Path, bytes: &[u8]) -> Option<Record> {
        let disk: OnDisk = match serde_json::from_slice(bytes) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("ignoring {}: not a credential record ({e})", path.display());
                return None;
            }
        };
        let secret = disk.sealed.as_deref().and_then(|sealed| {
            let key = self.key(false).ok().flatten()?;
            match key.open(&disk.id, sealed) {
                Some(plain) => serde_json::from_slice(&plain).ok(),
                None => {
                    tracing::warn!(
                        "the secrets in {} do not decrypt (damaged, or not written for this record); ignoring them",
                        path.display()
                    );
                    None
                }
            }
        });
        Some(Record { id: disk.id, public: disk.public, secret })
    }

    /// Writes one record atomically: a reader sees the old file or the new one, never a part.
    pub fn save(&self, kind: Kind, id: &str, public: Value, secret: Option<&Value>) -> Result<(), StoreError> {
        let dir = self.dir.join(kind.dir());
        self.ensure_dir(&dir)?;
        let sealed = match secret {
            Some(s) => {
                let key =
                    self.key(true).map_err(|e| self.err(&self.dir, e))?.ok_or_else(|| self.err(&self.dir, "no key"))?;
                let plain = serde_json::to_vec(s).map_err(|e| self.err(&dir, e))?;
                Some(key.seal(id, &plain).map_err(|e| self.err(&dir, e))?)
            }
            None => None,
        };
        let disk = OnDisk { version: 1, id: id.to_owned(), public, sealed };
        let bytes = serde_json::to_vec_pretty(&disk).map_err(|e| self.err(&dir, e))?;
        let path = self.file(kind, id);
        write_atomically(&path, &bytes).map_err(|e| self.err(&path, e))
    }

    pub fn delete(&self, kind: Kind, id: &str) -> Result<bool, StoreError> {
        let path = self.file(kind, id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(&path, e)),
        }
    }

    /// The cross-process lock named `name` (held until the guard drops). Waits up to `limit`.
    pub async fn lock(&self, name: &str, limit: std::time::Duration) -> Result<FileLock, StoreError> {
        let dir = self.dir.join("locks");
        self.ensure_dir(&dir)?;
        let path = dir.join(format!("{}.lock", crypto::file_name(name)));
        FileLock::acquire(&path, limit).await.map_err(|e| self.err(&path, e))
    }
}

/// Temporary file (0600) in the same directory, fsync, rename over the target, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("record");
    let tmp = dir.join(format!(".{name}.{}.tmp", crate::oauth_client::pkce::random_token(6).unwrap_or_default()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Sealing for another holder of secrets (the authorization server's state): the same AEAD and
/// key-file rules as the store's records, a key file in `dir` (0600), never the keychain (a
/// server has none).
pub struct Sealer(crypto::Key);

impl Sealer {
    pub fn load_or_create(dir: &Path) -> Result<Sealer, String> {
        crypto::Key::load_or_create(dir, None).map(Sealer)
    }

    /// `plain` sealed for the record `owner` names.
    pub fn seal(&self, owner: &str, plain: &[u8]) -> Result<String, String> {
        self.0.seal(owner, plain)
    }

    /// What was sealed for `owner`; `None` if it was sealed for another, or altered.
    pub fn open(&self, owner: &str, sealed: &str) -> Option<Vec<u8>> {
        self.0.open(owner, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn temp(name: &str) -> Store {
        let dir = std::env::temp_dir().join(format!("mcpgate-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Store::without_keychain(dir)
    }

    #[test]
    fn round_trip_with_modes() {
        let s = temp("rt");
        assert!(s.load(Kind::Token, "a").unwrap().is_none());
        assert!(s.list(Kind::Token).unwrap().is_empty());
        let secret = serde_json::json!({"access_token": "s3cret"});
        s.save(Kind::Token, "a", serde_json::json!({"server": "x"}), Some(&secret)).unwrap();
        let r = s.load(Kind::Token, "a").unwrap().unwrap();
        assert_eq!((r.public["server"].as_str(), r.secret.as_ref()), (Some("x"), Some(&secret)));
        let file = s.file(Kind::Token, "a");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("s3cret"), "the secret is encrypted at rest");
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(s.dir.join("key")).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&s.dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(s.list(Kind::Token).unwrap().len(), 1);
        assert!(s.delete(Kind::Token, "a").unwrap());
        assert!(!s.delete(Kind::Token, "a").unwrap());
    }

    #[test]
    fn a_flipped_byte_or_a_moved_ciphertext_yields_no_credential() {
        let s = temp("tamper");
        let secret = serde_json::json!({"refresh_token": "r"});
        s.save(Kind::Token, "owner-a", serde_json::json!({}), Some(&secret)).unwrap();
        s.save(Kind::Token, "owner-b", serde_json::json!({}), Some(&secret)).unwrap();
        // A ciphertext copied into another owner's record does not open there.
        let a: OnDisk = serde_json::from_slice(&std::fs::read(s.file(Kind::Token, "owner-a")).unwrap()).unwrap();
        let b_path = s.file(Kind::Token, "owner-b");
        let mut b: OnDisk = serde_json::from_slice(&std::fs::read(&b_path).unwrap()).unwrap();
        b.sealed = a.sealed.clone();
        std::fs::write(&b_path, serde_json::to_vec(&b).unwrap()).unwrap();
        assert!(s.load(Kind::Token, "owner-b").unwrap().unwrap().secret.is_none());
        // One flipped byte of the ciphertext: nothing.
        let a_path = s.file(Kind::Token, "owner-a");
        let mut a2 = a;
        let mut raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, a2.sealed.unwrap()).unwrap();
        let last = raw.len() - 5;
        raw[last] ^= 1;
        a2.sealed = Some(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw));
        std::fs::write(&a_path, serde_json::to_vec(&a2).unwrap()).unwrap();
        assert!(s.load(Kind::Token, "owner-a").unwrap().unwrap().secret.is_none());
        // A file that is not a record at all is skipped, not fatal.
        std::fs::write(s.dir.join("tokens/junk.json"), b"\x00not json").unwrap();
        assert_eq!(s.list(Kind::Token).unwrap().len(), 2);
    }
}
