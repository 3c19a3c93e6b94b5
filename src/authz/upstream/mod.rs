//! Users' own sign-ins to upstream servers (`"auth": {"oauth": {"perUser": true}}`): the gateway
//! is an OAuth client of such a server's authorization server, on each user's behalf. A user
//! without a token for it is sent (URL-mode elicitation, `-32042`) to the gateway's sign-in URL
//! for it; their browser is checked to be theirs (the gateway's own sign-in), sent on to the
//! server's authorization server, and comes back to the gateway, which keeps the tokens — sealed,
//! per server and user — and refreshes them. No client ever sees them, and no user's reaches
//! another's requests.
//!
//! | path                                 | file          |                                        |
//! |--------------------------------------|---------------|----------------------------------------|
//! | `/upstream/<server>/sign-in?ticket=` | `sign_in.rs`  | the link a client is given (`ticket.rs`) |
//! | `/oauth/upstream/callback`           | `callback.rs` | RFC 6749 §4.1.2, 7636, 9207            |
//!
//! Here: `UserTokens`, what a server's link asks for a user's token.

mod callback;
mod sign_in;
mod ticket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Uri};
use serde::{Deserialize, Serialize};

use super::AuthorizationServer;
use super::records;
use super::state::Table;
use crate::error::SignIn;
use crate::oauth_client::discovery::ServerMetadata;
use crate::oauth_client::token::{self, AuthMethod, Client, Grant};
use crate::oauth_client::{AuthError, AuthErrorKind};
use crate::token::{Current, IssuedToken};

pub use callback::CALLBACK;
pub(super) use callback::answer as callback;
pub(super) use sign_in::{PATH_PREFIX, answer as sign_in, is_sign_in_path};

/// How long a user's tokens are kept without use: a refresh token's usual life.
const KEPT_FOR: Duration = Duration::from_secs(90 * 86400);

/// How the gateway signs users in to one server (its `auth.oauth`).
#[derive(Clone, Default)]
pub struct Settings {
    /// The authorization server; default: discovered from the server (RFC 9728).
    pub issuer: Option<String>,
    /// The gateway's client there; default: registered on first use (RFC 7591).
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<String>,
    /// The resource indicator; default: the server's canonical URI.
    pub resource: Option<String>,
}

/// Why a user's token for a server cannot be had now.
pub enum Needed {
    /// They must sign in (none yet, or theirs died): `sign_in` gives the link.
    SignIn,
    /// The authorization server failed (try again later).
    Failed(String),
}

/// A user's tokens for one server, as kept (the tokens sealed for this record).
#[derive(Serialize, Deserialize)]
struct Held {
    access: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh: Option<String>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    metadata: ServerMetadata,
    client_id: String,
    method: AuthMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
}

/// The gateway's registration at an authorization server (its secret sealed).
#[derive(Serialize, Deserialize)]
struct Registration {
    client_id: String,
    method: AuthMethod,
    redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

/// One server's users and their tokens.
pub struct UserTokens {
    name: String,
    server: Uri,
    settings: Settings,
    authz: Arc<AuthorizationServer>,
    http: crate::oauth_client::http::Http,
    /// Usable tokens by user (`sub`): what every request of theirs reads.
    cache: Mutex<HashMap<String, Current>>,
    /// One refresh at a time (a rotating refresh token used twice would die).
    flight: tokio::sync::Mutex<()>,
    /// Client sessions sent to sign in, and under which elicitation: told when their user has
    /// (`notifications/elicitation/complete`). The latest `TOLD` only.
    told: Mutex<std::collections::VecDeque<Told>>,
    /// How a client session is told something (set by the server's link).
    tell: std::sync::OnceLock<Tell>,
}

/// Sends a message to a client session (by its id).
pub type Tell = Box<dyn Fn(&str, serde_json::Value) + Send + Sync>;

/// Sessions sent to sign in that are remembered, to be told when it is done.
const TOLD: usize = 256;

struct Told {
    sub: String,
    session: String,
    elicitation: String,
}

impl UserTokens {
    /// The tokens of server `name` at `server`, known to the sign-in endpoints from now on.
    pub fn new(authz: &Arc<AuthorizationServer>, name: &str, server: &Uri, settings: Settings) -> Arc<UserTokens> {
        let tokens = Arc::new(UserTokens {
            name: name.to_owned(),
            server: server.clone(),
            settings,
            authz: authz.clone(),
            http: crate::oauth_client::http::Http::for_server(server, Duration::from_secs(10)),
            cache: Mutex::default(),
            flight: tokio::sync::Mutex::new(()),
            told: Mutex::default(),
            tell: std::sync::OnceLock::new(),
        });
        authz.upstreams.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), Arc::downgrade(&tokens));
        tokens
    }

    /// The `Authorization` for `sub`'s requests, when a usable token is at hand.
    pub fn cached(&self, sub: &str) -> Option<HeaderValue> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(sub).filter(|c| c.usable()).map(|c| c.header.clone())
    }

    /// Makes sure `sub` has a usable token (`cached` then gives it): kept, or refreshed.
    pub async fn ready(&self, sub: &str) -> Result<(), Needed> {
        if self.cached(sub).is_some() {
            return Ok(());
        }
        let _one = self.flight.lock().await;
        if self.cached(sub).is_some() {
            return Ok(());
        }
        let key = record_key(&self.name, sub);
        let state = &*self.authz.state;
        let held: Option<Held> = records::read(state, Table::UpstreamToken, &key).await.map_err(failed)?;
        let Some(held) = held else { return Err(Needed::SignIn) };
        let now = SystemTime::now();
        let access = self.authz.sealer.open(&owner(&key, "access"), &held.access).map(String::from_utf8);
        if let Some(Ok(value)) = access {
            let current = Current::new(&IssuedToken { value, expires_at: held.expires_at.map(at) }, now)
                .map_err(Needed::Failed)?;
            if current.usable() {
                self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(sub.to_owned(), current);
                return Ok(());
            }
        }
        let refresh = held.refresh.as_deref().and_then(|r| self.authz.sealer.open(&owner(&key, "refresh"), r));
        let Some(Ok(refresh)) = refresh.map(String::from_utf8) else {
            return Err(Needed::SignIn);
        };
        let client = self.client(&held.metadata.issuer, &held.client_id, held.method).await;
        let grant = Grant::Refresh { refresh_token: &refresh };
        match token::request(&self.http, &held.metadata, &client, grant, None, held.resource.as_deref()).await {
            Ok(tokens) => {
                tracing::info!(server = %self.name, "a user's upstream token refreshed");
                let keep = Keep { metadata: held.metadata, client_id: held.client_id, method: held.method };
                let refresh = tokens.refresh_token.clone().or(Some(refresh));
                self.keep(sub, tokens, refresh, keep, held.resource).await.map_err(Needed::Failed)
            }
            Err(e) if matches!(e.kind, AuthErrorKind::InvalidGrant | AuthErrorKind::InvalidClient) => {
                tracing::info!(server = %self.name, "a user's upstream sign-in ended ({e}); they sign in again");
                self.forget(sub).await;
                Err(Needed::SignIn)
            }
            Err(e) => Err(Needed::Failed(format!("refreshing the token failed: {e}"))),
        }
    }

    /// The server refused `sub`'s token: it is dropped (they sign in again).
    pub async fn forget(&self, sub: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(sub);
        if let Err(e) = self.authz.state.take(Table::UpstreamToken, &record_key(&self.name, sub)).await {
            tracing::warn!(server = %self.name, "{e}");
        }
    }

    /// How the client sessions sent to sign in are told it is done (once).
    pub fn on_signed_in(&self, tell: Tell) {
        let _ = self.tell.set(tell);
    }

    /// A new link for `sub` to sign in to this server with, for the client session `session`
    /// (which is told when they have).
    pub fn sign_in(&self, sub: &str, session: Option<&str>) -> SignIn {
        let elicitation_id = super::wire::random();
        if let Some(session) = session.filter(|s| !s.is_empty()) {
            let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
            if told.len() == TOLD {
                told.pop_front();
            }
            let elicitation = elicitation_id.clone();
            told.push_back(Told { sub: sub.to_owned(), session: session.to_owned(), elicitation });
        }
        let ticket = ticket::Ticket::new(&self.name, sub).seal(&self.authz.sealer);
        let url = format!(
            "{}{PATH_PREFIX}{}/sign-in?ticket={}",
            self.authz.settings.public_url,
            crate::url::encode_segment(&self.name),
            ticket
        );
        SignIn { server: self.name.clone(), url, elicitation_id }
    }

    /// The gateway as the token endpoint sees it, for a client id it uses at `issuer`.
    async fn client(&self, issuer: &str, client_id: &str, method: AuthMethod) -> Client {
        let secret = match &self.settings.client_secret {
            Some(s) if self.settings.client_id.as_deref() == Some(client_id) => Some(s.clone()),
            _ => self.registration(issuer).await.and_then(|r| r.secret),
        };
        Client { id: client_id.to_owned(), secret, method, key: None }
    }

    /// The gateway's stored registration at `issuer` (its secret opened).
    async fn registration(&self, issuer: &str) -> Option<Registration> {
        let key = super::wire::digest(issuer);
        let r: Registration = records::read(&*self.authz.state, Table::UpstreamClient, &key).await.ok()??;
        let secret = match &r.secret {
            Some(sealed) => Some(String::from_utf8(self.authz.sealer.open(&owner(&key, "secret"), sealed)?).ok()?),
            None => None,
        };
        Some(Registration { secret, ..r })
    }

    /// Keeps `sub`'s new tokens (sealed) and puts them to use.
    async fn keep(
        &self,
        sub: &str,
        tokens: token::Tokens,
        refresh: Option<String>,
        keep: Keep,
        resource: Option<String>,
    ) -> Result<(), String> {
        let key = record_key(&self.name, sub);
        let sealer = &self.authz.sealer;
        let now = SystemTime::now();
        let issued = IssuedToken { value: tokens.access_token.clone(), expires_at: tokens.expires_at };
        let current = Current::new(&issued, now)?;
        let held = Held {
            access: sealer.seal(&owner(&key, "access"), tokens.access_token.as_bytes())?,
            refresh: refresh.map(|r| sealer.seal(&owner(&key, "refresh"), r.as_bytes())).transpose()?,
            expires_at: tokens.expires_at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()),
            metadata: keep.metadata,
            client_id: keep.client_id,
            method: keep.method,
            resource,
        };
        records::write(&*self.authz.state, Table::UpstreamToken, &key, &held, Some(KEPT_FOR))
            .await
            .map_err(|e| e.to_string())?;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(sub.to_owned(), current);
        Ok(())
    }

    /// `sub` signed in: each client session sent to do so is told, under the elicitation it was
    /// given (any of them is done: the token is the user's, whichever link they used).
    fn signed_in(&self, sub: &str) {
        let done: std::collections::VecDeque<Told> = {
            let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
            let (done, left) = std::mem::take(&mut *told).into_iter().partition(|t| t.sub == sub);
            *told = left;
            done
        };
        let Some(tell) = self.tell.get() else { return };
        for t in done {
            let params = serde_json::json!({"elicitationId": t.elicitation});
            tell(
                &t.session,
                serde_json::json!({"jsonrpc": "2.0", "method": "notifications/elicitation/complete", "params": params}),
            );
        }
    }
}

/// Who the gateway is at an authorization server, for a token it keeps.
struct Keep {
    metadata: ServerMetadata,
    client_id: String,
    method: AuthMethod,
}

/// The record of `sub`'s tokens for server `name` (hashed: the store names no user).
fn record_key(name: &str, sub: &str) -> String {
    super::wire::digest(&format!("{name}\0{sub}"))
}

/// What a sealed value of record `key` is sealed for.
fn owner(key: &str, what: &str) -> String {
    format!("upstream:{key}:{what}")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn failed(e: super::state::StateError) -> Needed {
    Needed::Failed(e.to_string())
}

impl From<AuthError> for Needed {
    fn from(e: AuthError) -> Needed {
        Needed::Failed(e.message)
    }
}
