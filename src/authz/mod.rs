//! The gateway as an OAuth 2.1 authorization server (`"mode": "oauth"`): MCP clients register
//! with it, sign their users in through it, and get its own short-lived tokens; the user proves
//! who they are at the real identity provider behind it (any OpenID provider: Auth0, Entra ID,
//! Okta, Keycloak), whose tokens never reach a client. One file per endpoint, named after what
//! it implements:
//!
//! | path                                         | file           | RFC                          |
//! |----------------------------------------------|----------------|------------------------------|
//! | `/.well-known/oauth-authorization-server`    | `metadata.rs`  | 8414                         |
//! | `/jwks`                                      | `signing.rs`   | 7517                         |
//! | `POST /register`                             | `register.rs`  | 7591                         |
//! | (a `client_id` that is an https URL)         | `cimd.rs`      | client ID metadata documents |
//! | `/authorize` (GET: consent page; POST: yes/no) | `authorize.rs`, `consent.rs`, `handoff.rs` (on to the provider, or back with an error) | 6749 §4.1, 7636, 9207 |
//! | `/oauth/callback` (the provider's answer)    | `callback.rs`, `provider.rs` | OpenID Connect Core |
//! | `POST /token`                                | `token.rs`, `refresh.rs`, `issue.rs` (the answer) | 6749 §4.1.3, §6; 8707 |
//! | `POST /revoke`                               | `revoke.rs`    | 7009                         |
//! | `/upstream/<server>/sign-in`, `/upstream/<server>/callback` | `upstream/` (users' own sign-ins to upstream servers) | 6749 §4.1, 7636, 9207 |
//!
//! Beside them: `clients.rs` (who a client is, its authentication), `redirect_uri.rs` (what may be
//! registered and matched), `cookies.rs`, `limit.rs` (per-address limits), `wire.rs` (how it
//! answers). What it remembers is in `state` (embedded by default), secrets sealed (`records.rs`).

mod authorize;
mod callback;
mod cimd;
mod clients;
mod consent;
mod cookies;
mod handoff;
mod issue;
mod limit;
mod metadata;
mod provider;
mod records;
mod redirect_uri;
mod refresh;
mod register;
mod revoke;
mod signing;
pub mod state;
mod token;
pub mod upstream;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, Uri};

use crate::http::body::Body;
use crate::secret::Secret;
use state::State;

/// The `oauth` mode's settings, validated (`mcpgate.auth`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The gateway's public origin: its issuer identifier and the resource its tokens are for.
    pub public_url: String,
    pub provider: Provider,
    /// Where the state lives (created 0700 on first run).
    pub state_dir: PathBuf,
    /// Lifetime of the access tokens the gateway signs.
    pub access_ttl: Duration,
    /// Lifetime of a sign-in's refresh tokens, from the sign-in.
    pub refresh_ttl: Duration,
    /// How long a refresh token already used is still accepted (two windows refreshing at once).
    pub refresh_grace: Duration,
    /// Scopes clients may ask for (advertised); none: any.
    pub scopes: Vec<String>,
    /// The provider's ID-token claim that lists the user's roles; copied into the gateway's tokens
    /// as `roles`.
    pub roles_claim: Option<String>,
}

/// The identity provider users sign in at.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub issuer: String,
    /// The gateway's client at the provider (registered once by the admin).
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// Asked for at sign-in (`openid` always).
    pub scopes: Vec<String>,
    /// Auth0's `audience` parameter, when set.
    pub audience: Option<String>,
    /// Whether an `email` without `email_verified: true` still names the user (a provider whose
    /// addresses users cannot set themselves).
    pub trust_email: bool,
}

/// The path the provider sends the user back to.
pub const CALLBACK: &str = "/oauth/callback";

/// The authorization server at work.
pub struct AuthorizationServer {
    settings: Settings,
    state: Arc<dyn State>,
    sealer: crate::store::Sealer,
    signing: signing::Signing,
    provider: provider::Upstream,
    /// Signs browser-bound values (the consent form's anti-forgery token, the user cookie).
    cookie_key: ring::hmac::Key,
    /// Sign-ins revoked (reuse detected, or by their client) whose access tokens may still be
    /// unexpired: refused on every request. Read from the state at start.
    revoked: refresh::RevokedGrants,
    /// Fetches client metadata documents (the outbound SSRF policy, as for the gateway's URL).
    fetch: crate::oauth_client::http::Http,
    /// Registrations and authorization requests per client address (each writes a record).
    registrations: limit::Limit,
    authorizations: limit::Limit,
    /// Client metadata documents fetched, whoever asked (any client id that is an https URL can
    /// make the gateway fetch it, from `/authorize`, `/token` or `/revoke`).
    document_fetches: limit::Limit,
    /// Client metadata documents that could not be used lately: not fetched again for a minute.
    refused_documents: std::sync::Mutex<crate::expiring::Expiring<String, String, std::hash::RandomState>>,
    /// The servers users sign in to themselves (`perUser`), by name: their links register here.
    upstreams: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<upstream::UserTokens>>>,
}

/// Registrations per client address per minute.
const REGISTRATIONS_PER_MINUTE: u32 = 20;
/// Authorization requests (and consent answers) per client address per minute.
const AUTHORIZATIONS_PER_MINUTE: u32 = 120;
/// Client metadata documents fetched per minute, in all.
const DOCUMENT_FETCHES_PER_MINUTE: u32 = 60;

impl AuthorizationServer {
    /// Opens (or creates) the state and the signing keys.
    pub async fn open(settings: Settings) -> Result<Arc<AuthorizationServer>, String> {
        let state: Arc<dyn State> = Arc::new(state::Embedded::open(&settings.state_dir).map_err(|e| e.to_string())?);
        Self::with_state(settings, state).await
    }

    pub async fn with_state(settings: Settings, state: Arc<dyn State>) -> Result<Arc<AuthorizationServer>, String> {
        let sealer = crate::store::Sealer::load_or_create(&settings.state_dir)?;
        let signing = signing::Signing::load(&*state, &sealer, &settings).await?;
        let cookie_key = records::cookie_key(&*state, &sealer).await?;
        let provider = provider::Upstream::new(settings.provider.clone(), settings.roles_claim.clone());
        let revoked = refresh::RevokedGrants::load(&*state).await.map_err(|e| e.to_string())?;
        let timeout = Duration::from_secs(10);
        let public: Uri = settings.public_url.parse().unwrap_or_default();
        let fetch = crate::oauth_client::http::Http::for_server(&public, timeout);
        let server = Arc::new(AuthorizationServer {
            settings,
            state,
            sealer,
            signing,
            provider,
            cookie_key,
            revoked,
            fetch,
            registrations: limit::Limit::per_minute(REGISTRATIONS_PER_MINUTE),
            authorizations: limit::Limit::per_minute(AUTHORIZATIONS_PER_MINUTE),
            document_fetches: limit::Limit::per_minute(DOCUMENT_FETCHES_PER_MINUTE),
            refused_documents: std::sync::Mutex::new(crate::expiring::Expiring::new(4096)),
            upstreams: std::sync::Mutex::default(),
        });
        // The signing key is replaced when due, checked hourly (for as long as the server lives).
        let weak = Arc::downgrade(&server);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                let Some(s) = weak.upgrade() else { return };
                match s.signing.rotate_if_due(&*s.state, &s.sealer, &s.settings, state::now_secs()).await {
                    Ok(true) => tracing::info!("the signing key was replaced (the previous one still verifies)"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!("replacing the signing key failed: {e}"),
                }
            }
        });
        Ok(server)
    }

    /// Whether the sign-in `grant` was revoked: for the check of every request's token.
    pub fn revocation(self: &Arc<Self>) -> crate::authn::Revoked {
        let server = self.clone();
        Arc::new(move |grant| server.revoked.contains(grant))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// How the gateway checks the tokens it signs: as the `jwt` mode checks an issuer's.
    /// (The scopes a client may ask for are the authorization server's to list; a token of the
    /// gateway's carries what its client asked for, so none is required of every token here.)
    pub fn resource_settings(self: &Arc<Self>) -> crate::authn::Settings {
        let server = self.clone();
        let keys = crate::authn::OwnKeys(Arc::new(move || server.signing.verifying()));
        self.token_check(crate::authn::Keys::Own(keys), Duration::from_secs(30))
    }

    /// The checks of a token the gateway signed: its issuer and audience, ES256, `leeway`.
    fn token_check(&self, keys: crate::authn::Keys, leeway: Duration) -> crate::authn::Settings {
        let s = &self.settings;
        crate::authn::Settings {
            issuer: s.public_url.clone(),
            public_url: s.public_url.clone(),
            audiences: vec![s.public_url.clone()],
            keys,
            algorithms: vec![jsonwebtoken::Algorithm::ES256],
            leeway,
            scopes: Vec::new(),
            roles_claim: s.roles_claim.as_ref().map(|_| "roles".to_owned()),
        }
    }

    /// Whether the authorization server answers `path`.
    pub fn serves(path: &str) -> bool {
        matches!(path, "/authorize" | "/token" | "/register" | "/revoke" | "/jwks" | CALLBACK)
            || metadata::is_metadata_path(path)
            || upstream::is_upstream_path(path)
    }

    /// Answers a request to one of its paths (`serves`) from `peer`; `body` is read whole (a
    /// small form).
    pub async fn answer(
        self: Arc<Self>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
        peer: std::net::IpAddr,
    ) -> Response<Body> {
        let req = wire::Request { method, uri, headers, body };
        // The requests anyone may send that write a record: limited per client address.
        let limit = match (req.uri.path(), &req.method) {
            ("/register", &Method::POST) => Some(&self.registrations),
            ("/authorize", &Method::GET | &Method::POST) => Some(&self.authorizations),
            (p, &Method::GET) if upstream::is_upstream_path(p) => Some(&self.authorizations),
            _ => None,
        };
        if let Some(Err(wait)) = limit.map(|l| l.check(peer)) {
            tracing::warn!(%peer, path = req.uri.path(), "refused: too many requests from one address");
            return wire::too_many(wait);
        }
        match req.uri.path() {
            p if metadata::is_metadata_path(p) => metadata::answer(&self, &req),
            "/jwks" => self.signing.answer(&req),
            "/register" => register::answer(&self, &req).await,
            "/authorize" => authorize::answer(&self, &req).await,
            CALLBACK => callback::answer(&self, &req).await,
            "/token" => token::answer(&self, &req).await,
            "/revoke" => revoke::answer(&self, &req).await,
            p if upstream::is_upstream_path(p) => upstream::answer(&self, &req).await,
            _ => wire::not_found(),
        }
    }

    /// The largest form or registration read.
    pub const MAX_BODY: usize = 64 * 1024;
}
