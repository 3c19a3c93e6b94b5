//! Encryption at rest for the store: ChaCha20-Poly1305 (ring) with a 256-bit key, a random
//! 96-bit nonce per write, and the record's id as associated data (a ciphertext only opens in
//! the record it was written for). The key lives in the OS keychain where one is available,
//! else in the store directory (mode 0600); a key file already there keeps being used.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::keychain::Keychain;

#[derive(Clone)]
pub(super) struct Key([u8; 32]);

const KEY_FILE: &str = "key";

impl Key {
    fn from_bytes(bytes: &[u8]) -> Option<Key> {
        <[u8; 32]>::try_from(bytes).ok().map(Key)
    }

    fn aead(&self) -> Option<LessSafeKey> {
        UnboundKey::new(&CHACHA20_POLY1305, &self.0).ok().map(LessSafeKey::new)
    }

    /// The keychain account naming this store.
    fn account(dir: &Path) -> String {
        std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()).display().to_string()
    }

    /// The store's key, if it exists: the key file, else the keychain's.
    pub(super) fn load(dir: &Path, keychain: Option<Keychain>) -> std::io::Result<Option<Key>> {
        match std::fs::read(dir.join(KEY_FILE)) {
            Ok(bytes) => return Ok(Key::from_bytes(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let Some(keychain) = keychain else { return Ok(None) };
        match keychain.get(&Key::account(dir)) {
            Ok(Some(b64)) => Ok(STANDARD.decode(b64.trim()).ok().and_then(|b| Key::from_bytes(&b))),
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::warn!("{} did not give the credential store key: {e}", keychain.name());
                Ok(None)
            }
        }
    }

    /// The key, created on first use: in the keychain if there is one, else in a file. Two
    /// processes creating the file at once: `create_new` lets one win, and the other reads the
    /// winner's key.
    pub(super) fn load_or_create(dir: &Path, keychain: Option<Keychain>) -> Result<Key, String> {
        if let Some(k) = Key::load(dir, keychain).map_err(|e| e.to_string())? {
            return Ok(k);
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("the OS random generator failed: {e}"))?;
        if let Some(keychain) = keychain {
            match keychain.set(&Key::account(dir), &STANDARD.encode(bytes)) {
                Ok(()) => {
                    tracing::debug!("the credential store key is kept in {}", keychain.name());
                    return Ok(Key(bytes));
                }
                Err(e) => tracing::warn!("{e}; keeping the credential store key in the store directory"),
            }
        }
        let path = dir.join(KEY_FILE);
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(mut f) => {
                f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| e.to_string())?;
                Key::from_bytes(&bytes).ok_or_else(|| "bad key length".to_owned())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Lost the race: wait for the winner's 32 bytes.
                for _ in 0..50 {
                    if let Ok(Some(k)) = Key::load(dir, None) {
                        return Ok(k);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err("the key file exists but cannot be read".to_owned())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    pub(super) fn seal(&self, id: &str, plain: &[u8]) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("the OS random generator failed: {e}"))?;
        let mut buf = plain.to_vec();
        self.aead()
            .ok_or("bad key")?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(id.as_bytes()), &mut buf)
            .map_err(|_| "encryption failed".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(STANDARD.encode(out))
    }

    pub(super) fn open(&self, id: &str, sealed: &str) -> Option<Vec<u8>> {
        let raw = STANDARD.decode(sealed).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ct.to_vec();
        let plain = self.aead()?.open_in_place(nonce, Aad::from(id.as_bytes()), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

/// A record's file name: a hash of its id, so ids (URLs) need no escaping and reveal nothing.
pub(super) fn file_name(id: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    d.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}
