//! A stored credential: the tokens of one (authorization server, client, resource), with what
//! is needed to refresh them without discovery (the server's metadata, the client). The
//! public part is what `mcpgate status` shows; the tokens are sealed by the store.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use serde::{Deserialize, Serialize};

use super::discovery::{Found, ServerMetadata};
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
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl TokenRecord {
    pub fn new(server: &str, found: &Found, client: Registered, tokens: Tokens, scope: Option<String>) -> TokenRecord {
        TokenRecord {
            server: server.to_owned(),
            issuer: found.server.issuer.clone(),
            resource: Some(found.resource.clone()).filter(|r| !r.is_empty()),
            client,
            metadata: found.server.clone(),
            scope: tokens.scope.clone().or(scope),
            expires_at: tokens.expires_at,
            saved_at: unix(SystemTime::now()),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        }
    }

    /// The record's id in the store: one per (authorization server, client, resource).
    pub fn id(&self) -> String {
        format!("{}\n{}\n{}", self.issuer, self.client.client_id, self.resource.as_deref().unwrap_or(&self.server))
    }

    /// After a refresh: the new access token, and the rotated refresh token if one came.
    pub fn update(&mut self, tokens: Tokens) {
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
        Current::new(&token, saved.min(SystemTime::now())).unwrap_or_else(|_| Current::invalid())
    }

    /// Fresh enough to use now.
    pub fn usable(&self) -> bool {
        self.current().usable()
    }

    pub fn same_access_token(&self, header: &HeaderValue) -> bool {
        header.as_bytes().strip_prefix(b"Bearer ") == Some(self.access_token.as_bytes())
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
        let secret = Secret { access_token: self.access_token.clone(), refresh_token: self.refresh_token.clone() };
        (serde_json::to_value(public).unwrap_or_default(), serde_json::to_value(secret).unwrap_or_default())
    }

    /// A record read from the store; `None` if damaged or its secrets do not open.
    pub fn from_store(r: Record) -> Option<TokenRecord> {
        let public: Public = serde_json::from_value(r.public).ok()?;
        let secret: Secret = serde_json::from_value(r.secret?).ok()?;
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
        })
    }
}
