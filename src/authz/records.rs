//! The records the authorization server keeps, as JSON in the state store. Codes and refresh
//! tokens are stored under their hashes (a copy of the store yields no usable token); secrets
//! that must be read back (signing keys, the provider's PKCE verifier) are sealed with an AEAD
//! whose associated data names their record, so a sealed value moved to another record opens
//! nowhere.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::state::{State, StateError, Table};

/// Who signed in, as the provider's ID token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The roles the provider's configured claim lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// A registered client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub auth_method: String,
    /// The secret's hash, for a confidential client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    pub application_type: String,
    pub issued_at: u64,
}

/// An authorization request waiting for the user (consent, then the provider's sign-in).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub client_id: String,
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub code_challenge: String,
    pub scope: String,
    pub resource: String,
    /// Set when no consent page was shown because this user (`sub`) consented before: the user
    /// who then signs in must be them, or have consented too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remembered_for: Option<String>,
    /// Whether the request named its redirect URI (the token request must then name it too).
    #[serde(default)]
    pub redirect_given: bool,
}

/// A sign-in at the provider in flight.
#[derive(Serialize, Deserialize)]
pub struct Login {
    /// The `Pending` request it completes.
    pub request: String,
    /// The PKCE verifier for the provider's code, sealed.
    pub verifier: String,
    pub nonce: String,
    /// The hash of the browser's id (its cookie) that started it.
    pub browser: String,
    /// Where the browser goes once signed in, when it is not a client's request (`request` is
    /// then empty): a path of the gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
}

/// An authorization code issued to a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Code {
    pub request: Pending,
    pub user: Identity,
}

/// A refresh token (by hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Refresh {
    pub family: String,
    pub client_id: String,
    pub scope: String,
    pub resource: String,
    pub user: Identity,
    /// When it was first exchanged (seconds since the epoch): a later use is allowed only
    /// within the grace window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<u64>,
}

/// A sign-in's refresh tokens, revoked together.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Family {
    pub client_id: String,
    pub sub: String,
    pub revoked: bool,
    /// When the sign-in ends (seconds since the epoch): refreshing does not extend it.
    pub expires: u64,
}

/// What is left of a sign-in ending at `expires` (seconds since the epoch): a record's lifetime.
pub fn left_until(expires: u64) -> Duration {
    Duration::from_secs(expires.saturating_sub(super::state::now_secs()).max(1))
}

/// A user's consent to a client (by `sub` and `client_id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Consent {
    pub scope: String,
}

fn broken(table: Table, e: serde_json::Error) -> StateError {
    StateError(format!("a {table:?} record cannot be read: {e}"))
}

fn decode<T: DeserializeOwned>(table: Table, raw: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(raw).map_err(|e| broken(table, e))
}

pub async fn read<T: DeserializeOwned>(state: &dyn State, table: Table, key: &str) -> Result<Option<T>, StateError> {
    state.get(table, key).await?.map(|raw| decode(table, &raw)).transpose()
}

pub async fn write<T: Serialize>(
    state: &dyn State,
    table: Table,
    key: &str,
    value: &T,
    ttl: Option<Duration>,
) -> Result<(), StateError> {
    let raw = serde_json::to_vec(value).map_err(|e| broken(table, e))?;
    state.put(table, key, &raw, ttl).await
}

pub async fn take<T: DeserializeOwned>(state: &dyn State, table: Table, key: &str) -> Result<Option<T>, StateError> {
    state.take(table, key).await?.map(|raw| decode(table, &raw)).transpose()
}

/// A record and its stored bytes, for a `replace` that compares what was read, not what it
/// would serialize to now.
pub async fn read_raw<T: DeserializeOwned>(
    state: &dyn State,
    table: Table,
    key: &str,
) -> Result<Option<(T, Vec<u8>)>, StateError> {
    state.get(table, key).await?.map(|raw| Ok((decode(table, &raw)?, raw))).transpose()
}

/// Replaces the record by `new` only if it still holds the bytes `old` (as `read_raw` gave
/// them): whether it did.
pub async fn replace<T: Serialize>(
    state: &dyn State,
    table: Table,
    key: &str,
    old: &[u8],
    new: &T,
    ttl: Option<Duration>,
) -> Result<bool, StateError> {
    let new = serde_json::to_vec(new).map_err(|e| broken(table, e))?;
    state.swap(table, key, Some(old), Some(&new), ttl).await
}

/// The key that signs browser-bound values, created on first run and kept (sealed), so a restart
/// does not void the consent pages open.
pub async fn cookie_key(state: &dyn State, sealer: &crate::store::Sealer) -> Result<ring::hmac::Key, String> {
    const ID: &str = "browser-hmac";
    let sealed = state.get(Table::Key, ID).await.map_err(|e| e.to_string())?;
    let secret = match sealed.and_then(|s| sealer.open(ID, std::str::from_utf8(&s).ok()?)) {
        Some(secret) => secret,
        None => {
            let mut secret = vec![0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| format!("the OS random generator failed: {e}"))?;
            let sealed = sealer.seal(ID, &secret)?;
            state.put(Table::Key, ID, sealed.as_bytes(), None).await.map_err(|e| e.to_string())?;
            secret
        }
    };
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret))
}
