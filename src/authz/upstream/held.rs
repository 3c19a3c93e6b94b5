//! What the gateway keeps of a user's sign-in to a server, and of its own registrations there:
//! records sealed whole (AEAD, the record's key as associated data), so a copy of the state yields
//! no token, and a record altered or moved — a token endpoint pointed elsewhere, another user's
//! tokens under this key — opens nowhere.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::super::AuthorizationServer;
use super::super::records;
use super::super::state::{StateError, Table};
use crate::oauth_client::discovery::ServerMetadata;
use crate::oauth_client::token::AuthMethod;

/// A user's tokens for one server.
#[derive(Serialize, Deserialize)]
pub struct Held {
    pub access: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    pub client: Client,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Who the gateway is at the authorization server that issued a user's tokens.
#[derive(Serialize, Deserialize, Clone)]
pub struct Client {
    pub metadata: ServerMetadata,
    pub client_id: String,
    pub method: AuthMethod,
}

/// The gateway's registration at an authorization server, for one redirect URI.
#[derive(Serialize, Deserialize)]
pub struct Registration {
    pub client_id: String,
    pub method: AuthMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Sealed(String);

fn owner(table: Table, key: &str) -> String {
    format!("upstream:{table:?}:{key}")
}

/// The record of `table` under `key`, opened; `None` when absent, or not sealed for this place.
pub async fn read<T: DeserializeOwned>(
    authz: &AuthorizationServer,
    table: Table,
    key: &str,
) -> Result<Option<T>, StateError> {
    let Some(Sealed(sealed)) = records::read(&*authz.state, table, key).await? else { return Ok(None) };
    let Some(plain) = authz.sealer.open(&owner(table, key), &sealed) else {
        tracing::warn!("a sealed {table:?} record does not open in its place; ignored");
        return Ok(None);
    };
    Ok(serde_json::from_slice(&plain).ok())
}

/// Same, taking the record (single use).
pub async fn take<T: DeserializeOwned>(
    authz: &AuthorizationServer,
    table: Table,
    key: &str,
) -> Result<Option<T>, StateError> {
    let Some(Sealed(sealed)) = records::take(&*authz.state, table, key).await? else { return Ok(None) };
    Ok(authz.sealer.open(&owner(table, key), &sealed).and_then(|plain| serde_json::from_slice(&plain).ok()))
}

pub async fn write<T: Serialize>(
    authz: &AuthorizationServer,
    table: Table,
    key: &str,
    value: &T,
    ttl: Option<std::time::Duration>,
) -> Result<(), String> {
    let plain = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    let sealed = Sealed(authz.sealer.seal(&owner(table, key), &plain)?);
    records::write(&*authz.state, table, key, &sealed, ttl).await.map_err(|e| e.to_string())
}
