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
//! | `/upstream/<server>/callback`        | `callback.rs` | RFC 6749 §4.1.2, 7636, 9207; one per server (RFC 9700 §4.4.2, mix-up) |
//!
//! Here: `UserTokens`, what a server's link asks for a user's token; `held.rs`, what is kept
//! (sealed); `told.rs`, the client sessions to tell when their user has signed in.

mod callback;
mod held;
mod sign_in;
mod ticket;
mod told;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Uri};

use super::AuthorizationServer;
use super::state::Table;
use crate::error::SignIn;
use crate::oauth_client::AuthErrorKind;
use crate::oauth_client::token::{self, Client, Grant};
use crate::token::{Current, IssuedToken};
use held::Held;

pub(super) use sign_in::{answer, is_upstream_path};

/// How long a user's tokens are kept without use: a refresh token's usual life.
const KEPT_FOR: Duration = Duration::from_secs(90 * 86400);
/// Users whose sign-ins are renewed at once (a lock each, of so many).
const STRIPES: usize = 64;
/// Users whose tokens are held in memory before the expired ones are swept.
const CACHED: usize = 4096;

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

/// One server's users and their tokens.
pub struct UserTokens {
    name: String,
    server: Uri,
    settings: Settings,
    authz: Arc<AuthorizationServer>,
    http: crate::oauth_client::http::Http,
    /// Usable tokens by user (`sub`): what every request of theirs reads.
    cache: Mutex<HashMap<String, Current>>,
    /// A user's sign-in is read, renewed, replaced or dropped by one task at a time (a rotating
    /// refresh token used twice would die; a refresh must not overwrite a newer sign-in).
    locks: Box<[tokio::sync::Mutex<()>]>,
    /// One registration at the authorization server at a time.
    registering: tokio::sync::Mutex<()>,
    told: told::Told,
    /// How a client session is told something (set by the server's link).
    tell: std::sync::OnceLock<Tell>,
}

/// Sends a message to a client session (by its id).
pub type Tell = Box<dyn Fn(&str, serde_json::Value) + Send + Sync>;

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
            locks: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            registering: tokio::sync::Mutex::new(()),
            told: told::Told::default(),
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

    fn lock(&self, sub: &str) -> &tokio::sync::Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sub.hash(&mut h);
        &self.locks[(h.finish() as usize) % self.locks.len()]
    }

    /// Where `sub`'s tokens for this server are kept: the server as configured (its name, URL
    /// and authorization server) and the user, hashed — a token got for one configuration is
    /// never sent to another, and the store names no user.
    fn record_key(&self, sub: &str) -> String {
        let issuer = self.settings.issuer.as_deref().unwrap_or("");
        super::wire::digest(&format!("{}\0{}\0{issuer}\0{sub}", self.name, self.server))
    }

    /// Makes sure `sub` has a usable token (`cached` then gives it): kept, or refreshed.
    pub async fn ready(&self, sub: &str) -> Result<(), Needed> {
        if self.cached(sub).is_some() {
            return Ok(());
        }
        let _one = self.lock(sub).lock().await;
        if self.cached(sub).is_some() {
            return Ok(());
        }
        let key = self.record_key(sub);
        let held: Option<Held> =
            held::read(&self.authz, Table::UpstreamToken, &key).await.map_err(|e| Needed::Failed(e.to_string()))?;
        let Some(held) = held else { return Err(Needed::SignIn) };
        let current = Current::new(
            &IssuedToken { value: held.access.clone(), expires_at: held.expires_at.map(at) },
            SystemTime::now(),
        )
        .map_err(Needed::Failed)?;
        if current.usable() {
            self.use_token(sub, current);
            return Ok(());
        }
        let Some(refresh) = held.refresh.clone() else { return Err(Needed::SignIn) };
        let client = self.client(&held.client).await;
        let grant = Grant::Refresh { refresh_token: &refresh };
        let answer =
            token::request(&self.http, &held.client.metadata, &client, grant, None, held.resource.as_deref(), None)
                .await;
        match answer {
            Ok(tokens) => {
                tracing::info!(server = %self.name, "a user's upstream token refreshed");
                let refresh = tokens.refresh_token.clone().or(Some(refresh));
                self.keep_locked(sub, tokens, refresh, held.client, held.resource).await.map_err(Needed::Failed)
            }
            Err(e) if matches!(e.kind, AuthErrorKind::InvalidGrant | AuthErrorKind::InvalidClient) => {
                tracing::info!(server = %self.name, "a user's upstream sign-in ended ({e}); they sign in again");
                self.drop_locked(sub).await;
                Err(Needed::SignIn)
            }
            Err(e) => Err(Needed::Failed(format!("refreshing the token failed: {e}"))),
        }
    }

    /// The server refused `sent`, `sub`'s token (401): unless it was replaced meanwhile, it is
    /// dropped (a refresh token is kept) and another had. The token to try again with, if any.
    pub async fn refused(&self, sub: &str, sent: Option<&HeaderValue>) -> Option<HeaderValue> {
        {
            let _one = self.lock(sub).lock().await;
            let current = self.cached(sub);
            if current.is_some() && current.as_ref() != sent {
                return current;
            }
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(sub);
            let key = self.record_key(sub);
            match held::read::<Held>(&self.authz, Table::UpstreamToken, &key).await {
                Ok(Some(held)) if held.refresh.is_some() && sent.is_some_and(|s| is_token(s, &held.access)) => {
                    let expired = Held { expires_at: Some(0), ..held };
                    if let Err(e) = held::write(&self.authz, Table::UpstreamToken, &key, &expired, Some(KEPT_FOR)).await
                    {
                        tracing::warn!(server = %self.name, "{e}");
                    }
                }
                Ok(Some(held)) if sent.is_some_and(|s| is_token(s, &held.access)) => self.drop_locked(sub).await,
                _ => {}
            }
        }
        self.ready(sub).await.ok()?;
        self.cached(sub)
    }

    /// The server refused `sub`'s fresh token too: their sign-in is dropped.
    pub async fn forget(&self, sub: &str) {
        let _one = self.lock(sub).lock().await;
        self.drop_locked(sub).await;
    }

    async fn drop_locked(&self, sub: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(sub);
        if let Err(e) = self.authz.state.take(Table::UpstreamToken, &self.record_key(sub)).await {
            tracing::warn!(server = %self.name, "{e}");
        }
    }

    /// How the client sessions sent to sign in are told it is done (once).
    pub fn on_signed_in(&self, tell: Tell) {
        let _ = self.tell.set(tell);
    }

    /// A new link for `sub` to sign in to this server with. `session`: the client session it is
    /// for, when that session is to be told it is done (it takes URL elicitation).
    pub fn sign_in(&self, sub: &str, session: Option<&str>) -> SignIn {
        let (elicitation_id, again) = match session.filter(|s| !s.is_empty()) {
            Some(s) => self.told.ask(sub, s),
            None => (super::wire::random(), false),
        };
        let ticket = ticket::Ticket::new(&self.name, sub).seal(&self.authz.sealer);
        let url = format!("{}{}?ticket={ticket}", self.authz.settings.public_url, sign_in::path(&self.name, "sign-in"));
        SignIn { server: self.name.clone(), url, elicitation_id, again }
    }

    /// The gateway as the token endpoint sees it, for tokens `held` was issued.
    async fn client(&self, held: &held::Client) -> Client {
        let secret = match &self.settings.client_secret {
            Some(s) if self.settings.client_id.as_deref() == Some(held.client_id.as_str()) => Some(s.clone()),
            _ => self
                .registration(&held.metadata.issuer)
                .await
                .filter(|r| r.client_id == held.client_id)
                .and_then(|r| r.secret),
        };
        Client { id: held.client_id.clone(), secret, method: held.method, key: None }
    }

    /// The redirect URI of this server's sign-ins (one per server: RFC 9700 §4.4.2).
    fn redirect_uri(&self) -> String {
        format!("{}{}", self.authz.settings.public_url, sign_in::path(&self.name, "callback"))
    }

    /// The gateway's stored registration at `issuer`, for this server's redirect URI.
    async fn registration(&self, issuer: &str) -> Option<held::Registration> {
        held::read(&self.authz, Table::UpstreamClient, &self.registration_key(issuer)).await.ok()?
    }

    fn registration_key(&self, issuer: &str) -> String {
        super::wire::digest(&format!("{issuer}\0{}", self.redirect_uri()))
    }

    /// `sub` signed in: their new tokens kept and put to use, and the client sessions sent to
    /// sign in told (each under the elicitation it was given).
    async fn signed_in(
        &self,
        sub: &str,
        tokens: token::Tokens,
        client: held::Client,
        resource: Option<String>,
    ) -> Result<(), String> {
        {
            let _one = self.lock(sub).lock().await;
            let refresh = tokens.refresh_token.clone();
            self.keep_locked(sub, tokens, refresh, client, resource).await?;
        }
        let Some(tell) = self.tell.get() else { return Ok(()) };
        for (session, elicitation) in self.told.done(sub) {
            let params = serde_json::json!({"elicitationId": elicitation});
            tell(
                &session,
                serde_json::json!({"jsonrpc": "2.0", "method": "notifications/elicitation/complete", "params": params}),
            );
        }
        Ok(())
    }

    /// Keeps `sub`'s new tokens (sealed) and puts them to use; the caller holds their lock.
    async fn keep_locked(
        &self,
        sub: &str,
        tokens: token::Tokens,
        refresh: Option<String>,
        client: held::Client,
        resource: Option<String>,
    ) -> Result<(), String> {
        let issued = IssuedToken { value: tokens.access_token.clone(), expires_at: tokens.expires_at };
        let current = Current::new(&issued, SystemTime::now())?;
        let held = Held {
            access: tokens.access_token,
            refresh,
            expires_at: tokens.expires_at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()),
            client,
            resource,
        };
        held::write(&self.authz, Table::UpstreamToken, &self.record_key(sub), &held, Some(KEPT_FOR)).await?;
        self.use_token(sub, current);
        Ok(())
    }

    fn use_token(&self, sub: &str, current: Current) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHED {
            cache.retain(|_, c| c.usable());
        }
        cache.insert(sub.to_owned(), current);
    }
}

/// Whether the `Authorization` value `sent` carries `token`.
fn is_token(sent: &HeaderValue, token: &str) -> bool {
    sent.as_bytes().strip_prefix(b"Bearer ").is_some_and(|t| t == token.as_bytes())
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}
