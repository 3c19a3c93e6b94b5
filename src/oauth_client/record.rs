//! A stored credential: the tokens of one (authorization server, client, resource), with what
//! is needed to refresh them without discovery (the server's metadata, the client). The
//! public part is what `mcpgate status` shows; the tokens are sealed by the store.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use serde::{Deserialize, Serialize};

use super::discovery::{Found, ServerMetadata};
use super::dpop::Key;
use super::registration::Registered;
use super::token::Tokens;
use crate::store::Record;
use crate::token::Current;
use crate::token::IssuedToken;

/// No `Debug`: it holds tokens.
#[derive(Clone)]
pub struct TokenRecord {
    /// The MCP server's canonical URI: how a bridge finds its record at start.
    pub server: String,
    pub issuer: String,
    pub resource: Option<String>,
    pub client: Registered,
    pub metadata: ServerMetadata,
    pub scope: Option<String>,
    pub expires_at: Option<SystemTime>,
    pub saved_at: u64,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// The key a DPoP-bound token is bound to (its refresh token too, for a public client:
    /// RFC 9449 §5): sent with the token in every proof, and so stored with it, sealed alike.
    /// `None`: a Bearer token.
    pub dpop: Option<Arc<Key>>,
}

/// The public part on disk.
#[derive(Serialize, Deserialize)]
pub struct Public {
    pub server: String,
    pub issuer: String,
    pub resource: Option<String>,
    pub client: Registered,
    pub metadata: ServerMetadata,
    pub scope: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<u64>,
    pub saved_at: u64,
    pub has_refresh_token: bool,
}

#[derive(Serialize, Deserialize)]
struct Secret {
    access_token: String,
    refresh_token: Option<String>,
    /// The DPoP private key (PKCS#8, base64url), for a DPoP-bound token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_key: Option<String>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl TokenRecord {
    /// `dpop`: the key of the token request's proof, kept if the token is bound to it.
    pub fn new(
        server: &str,
        found: &Found,
        client: Registered,
        tokens: Tokens,
        scope: Option<String>,
        dpop: Option<Arc<Key>>,
    ) -> TokenRecord {
        TokenRecord {
            server: server.to_owned(),
            issuer: found.server.issuer.clone(),
            resource: Some(found.resource.clone()).filter(|r| !r.is_empty()),
            client,
            metadata: found.server.clone(),
            scope: tokens.scope.clone().or(scope),
            expires_at: tokens.expires_at,
            saved_at: unix(SystemTime::now()),
            dpop: dpop.filter(|_| tokens.dpop_bound),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        }
    }

    /// The record's id in the store: one per (authorization server, client, resource).
    pub fn id(&self) -> String {
        format!("{}\n{}\n{}", self.issuer, self.client.client_id, self.resource.as_deref().unwrap_or(&self.server))
    }

    /// After a refresh: the new access token, and the rotated refresh token if one came. The
    /// key stays only if the new token is bound to it too (a bound record's refresh that comes
    /// back Bearer never gets here: `OAuth::refresh` refuses it).
    pub fn update(&mut self, tokens: Tokens) {
        if !tokens.dpop_bound {
            self.dpop = None;
        }
        self.access_token = tokens.access_token;
        self.expires_at = tokens.expires_at;
        if tokens.refresh_token.is_some() {
            self.refresh_token = tokens.refresh_token;
        }
        if tokens.scope.is_some() {
            self.scope = tokens.scope;
        }
        self.saved_at = unix(SystemTime::now());
    }

    pub fn current(&self) -> Current {
        let token = IssuedToken { value: self.access_token.clone(), expires_at: self.expires_at };
        // The fetch time is unknown for a stored token: its lifetime is counted from the save.
        let saved = UNIX_EPOCH + Duration::from_secs(self.saved_at);
        Current::with_scheme(self.scheme(), &token, saved.min(SystemTime::now())).unwrap_or_else(|_| Current::invalid())
    }

    /// The `Authorization` scheme the token goes with (RFC 9449 §7.1 for a bound one).
    pub fn scheme(&self) -> &'static str {
        if self.dpop.is_some() { "DPoP" } else { "Bearer" }
    }

    /// Fresh enough to use now.
    pub fn usable(&self) -> bool {
        self.current().usable()
    }

    pub fn same_access_token(&self, header: &HeaderValue) -> bool {
        let sent = header.as_bytes();
        let token = sent.strip_prefix(b"Bearer ").or_else(|| sent.strip_prefix(b"DPoP "));
        token == Some(self.access_token.as_bytes())
    }

    pub fn to_store(&self) -> (serde_json::Value, serde_json::Value) {
        let public = Public {
            server: self.server.clone(),
            issuer: self.issuer.clone(),
            resource: self.resource.clone(),
            client: self.client.clone(),
            metadata: self.metadata.clone(),
            scope: self.scope.clone(),
            expires_at: self.expires_at.map(unix),
            saved_at: self.saved_at,
            has_refresh_token: self.refresh_token.is_some(),
        };
        let secret = Secret {
            access_token: self.access_token.clone(),
            refresh_token: self.refresh_token.clone(),
            dpop_key: self.dpop.as_ref().map(|k| k.to_stored()),
        };
        (serde_json::to_value(public).unwrap_or_default(), serde_json::to_value(secret).unwrap_or_default())
    }

    /// A record read from the store; `None` if damaged or its secrets do not open.
    pub fn from_store(r: Record) -> Option<TokenRecord> {
        let public: Public = serde_json::from_value(r.public).ok()?;
        let secret: Secret = serde_json::from_value(r.secret?).ok()?;
        // A bound token whose key does not open is no credential: dropped like a damaged record.
        let dpop = match &secret.dpop_key {
            Some(k) => Some(Arc::new(Key::from_stored(k).ok()?)),
            None => None,
        };
        Some(TokenRecord {
            server: public.server,
            issuer: public.issuer,
            resource: public.resource,
            client: public.client,
            metadata: public.metadata,
            scope: public.scope,
            expires_at: public.expires_at.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
            saved_at: public.saved_at,
            access_token: secret.access_token,
            refresh_token: secret.refresh_token,
            dpop,
        })
    }
}
