//! mcpgate as an OAuth 2.1 / OpenID Connect client of an upstream MCP server: discovery
//! (`discovery`), client identity (`registration`), the browser round trip (`browser`,
//! `callback`, `pkce`), the token endpoint (`token`, `jwt`), sender-constrained tokens
//! (`dpop`), and — here — the credential that
//! ties them together: tokens kept in the store, refreshed ahead of expiry, re-acquired by a
//! new login when the refresh token dies, upgraded when the server asks for more scopes.
//!
//! Concurrency: one refresh or login at a time per process (an async mutex), and per MCP
//! server across processes (a file lock); whoever waited re-reads the store first, so several
//! bridges of one user share one login and never race each other's rotating refresh tokens.

pub mod browser;
pub mod callback;
pub mod challenge;
pub mod discovery;
pub mod dpop;
pub mod exchange;
pub mod http;
pub mod jwt;
pub mod pkce;
pub mod registration;
pub mod token;

pub(crate) mod record;

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use ::http::{HeaderMap, HeaderValue, Method, Uri};

pub use browser::Browser;
pub use challenge::Challenge;
use discovery::{Found, ServerMetadata};
use record::TokenRecord;
use registration::Registered;
use token::{AuthMethod, Client, Grant, Tokens};

use crate::store::{Kind as StoreKind, Store};
use crate::token::Current;
use crate::token::IssuedToken;

/// What an OAuth failure means for the stored credential and for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthErrorKind {
    /// Network, timeout or 5xx: the credential is kept; trying later may work.
    Transient,
    /// The grant (code or refresh token) is dead: drop it, sign in again.
    InvalidGrant,
    /// The client is unknown to the server (its registration was deleted): register again.
    InvalidClient,
    /// A configuration or server property that retrying will not change (no S256, issuer mismatch…).
    Refused,
    /// The user did not complete the sign-in.
    Login,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    pub kind: AuthErrorKind,
    pub message: String,
}

impl AuthError {
    fn new(kind: AuthErrorKind, m: impl Into<String>) -> Self {
        AuthError { kind, message: m.into() }
    }
    pub fn transient(m: impl Into<String>) -> Self {
        Self::new(AuthErrorKind::Transient, m)
    }
    pub fn invalid_grant(m: impl Into<String>) -> Self {
        Self::new(AuthErrorKind::InvalidGrant, m)
    }
    pub fn invalid_client(m: impl Into<String>) -> Self {
        Self::new(AuthErrorKind::InvalidClient, m)
    }
    pub fn refused(m: impl Into<String>) -> Self {
        Self::new(AuthErrorKind::Refused, m)
    }
    pub fn login(m: impl Into<String>) -> Self {
        Self::new(AuthErrorKind::Login, m)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GrantKind {
    /// A user signs in through the browser (authorization code + PKCE).
    AuthorizationCode,
    /// Machine to machine: the client's own credentials, no user, no browser.
    ClientCredentials,
    /// Enterprise-managed (SEP-990): the user's identity-provider ID token is exchanged for an
    /// ID-JAG (RFC 8693), which the MCP server's authorization server takes as a JWT-bearer grant.
    CrossAppAccess,
    /// Workload identity federation (SEP-1933): a JWT the workload's platform issued it (a
    /// Kubernetes service account token, a cloud's identity token) is the grant itself
    /// (RFC 7523 JWT bearer), with no user and no client secret.
    WorkloadIdentity,
}

impl GrantKind {
    /// Tokens are had without a user at a browser.
    pub fn unattended(self) -> bool {
        self != GrantKind::AuthorizationCode
    }
}

/// The identity provider of Cross-App Access.
#[derive(Clone, Default)]
pub struct IdentityProvider {
    pub token_endpoint: Option<String>,
    pub client_id: Option<String>,
    /// A file holding the user's ID token at that provider.
    pub id_token_file: Option<PathBuf>,
}

/// How to sign in to one upstream. No `Debug` derive: it holds the client secret.
#[derive(Clone)]
pub struct Config {
    /// The MCP server.
    pub server: Uri,
    /// Plain OIDC: this authorization server, without discovery from the resource.
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub auth_method: Option<AuthMethod>,
    /// A Client ID Metadata Document URL, the client id where the server supports them.
    pub client_metadata_url: Option<String>,
    pub private_key: Option<PathBuf>,
    pub signing_alg: Option<String>,
    /// Requested scopes (space-separated); default: the challenge's, else the resource's.
    pub scopes: Option<String>,
    pub redirect_url: Option<String>,
    /// The resource indicator; default: the server's canonical URI. `Some("")`: send none.
    pub resource: Option<String>,
    pub grant: GrantKind,
    pub idp: IdentityProvider,
    /// Workload identity federation: a file holding the workload's JWT, read at each token
    /// request (platforms rotate it in place).
    pub workload_token_file: Option<PathBuf>,
    pub browser: Browser,
    pub login_timeout: Duration,
    /// The store directory; `None`: the user's default.
    pub store_dir: Option<PathBuf>,
    /// How long to wait for the upstream's authorization server.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// When tokens are DPoP-bound (RFC 9449): `--dpop`, `--no-dpop`, else where the servers ask.
    pub dpop: dpop::Mode,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("oauth::Config")
            .field("server", &crate::url::display(&self.server))
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("grant", &self.grant)
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

/// What the current token is, where it came from, and how to renew it.
#[derive(Clone, Default)]
struct State {
    current: Option<Current>,
    record: Option<TokenRecord>,
    /// Scope sets already asked for in a step-up: never asked twice (the retry limit).
    stepped_up: Vec<String>,
    /// This credential's DPoP key, once it has one: every token it binds is bound to it.
    dpop_key: Option<Arc<dpop::Key>>,
    /// The DPoP-bound token the current one replaced (its hash, `ath`) and its key: a request
    /// still carrying it, sent before the renewal, is proved too. No other token is.
    replaced: Option<(String, Arc<dpop::Key>)>,
    /// A sign-in with a key, made because the server asked for DPoP, brought no bound token (a
    /// Bearer token, kept or refused): the authorization server does not bind, and asking again
    /// would not change that. Then a refusal is renewed as any other.
    bearer_despite_key: bool,
}

/// The OAuth credential of one upstream.
pub struct OAuth {
    cfg: Config,
    http: http::Http,
    store: Store,
    key: Option<Arc<jwt::SigningKey>>,
    /// The single flight: one refresh or login at a time in this process.
    flight: tokio::sync::Mutex<()>,
    /// DPoP nonces (RFC 9449 §8, §9): the authorization servers' and the MCP server's apart.
    as_nonces: dpop::Nonces,
    rs_nonces: dpop::Nonces,
    state: RwLock<State>,
    /// The server, as shown to the user and used as its record's key.
    server_key: String,
}

impl OAuth {
    /// Builds the credential from the store alone (no network): a stored token is used at once.
    pub fn new(cfg: Config) -> Result<Arc<OAuth>, AuthError> {
        let dir = cfg
            .store_dir
            .clone()
            .or_else(Store::default_dir)
            .ok_or_else(|| AuthError::refused("no credential store directory: set MCPGATE_STORE_DIR or HOME"))?;
        let store = Store::new(dir);
        let key = match &cfg.private_key {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| AuthError::refused(format!("--private-key-file {}: {e}", path.display())))?;
                let key = jwt::SigningKey::from_pem(&pem, cfg.signing_alg.as_deref())
                    .map_err(|e| AuthError::refused(format!("--private-key-file {}: {e}", path.display())))?;
                Some(Arc::new(key))
            }
            None => None,
        };
        let http = http::Http::for_server_with(&cfg.server, cfg.connect_timeout, cfg.timeout);
        let server_key = discovery::canonical_resource(&cfg.server);
        let oauth = OAuth {
            cfg,
            http,
            store,
            key,
            flight: Default::default(),
            as_nonces: Default::default(),
            rs_nonces: Default::default(),
            state: Default::default(),
            server_key,
        };
        if oauth.cfg.grant == GrantKind::AuthorizationCode
            && let Some(record) = oauth.find_record()?
        {
            tracing::debug!(issuer = %record.issuer, "using the stored credential");
            oauth.adopt(record);
        }
        Ok(Arc::new(oauth))
    }

    /// Starts what must run before the first request: client credentials are fetched now (a
    /// broken configuration stops start-up), and stored tokens are refreshed ahead of expiry.
    pub async fn start(self: &Arc<Self>) -> Result<(), AuthError> {
        if self.cfg.grant.unattended() {
            self.renew(None, None).await?;
        }
        tokio::spawn(refresh_ahead(Arc::downgrade(self)));
        Ok(())
    }

    pub fn server_name(&self) -> String {
        crate::url::display(&self.cfg.server)
    }

    fn snapshot(&self) -> State {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The `Authorization` value to send now; `None` before the first sign-in when only the
    /// server's challenge can say where to sign in.
    pub async fn authorization(&self) -> Result<Option<HeaderValue>, AuthError> {
        let st = self.snapshot();
        let now = SystemTime::now();
        if let Some(c) = &st.current {
            if c.stale_at.is_none_or(|t| now < t) {
                return Ok(Some(c.header.clone()));
            }
            // Too close to expiry to use: renew first (single flight).
            return self.renew(Some(&c.header), None).await.map(Some);
        }
        // Nothing yet. With a configured issuer, or a record to renew, sign in now rather than
        // send a request that can only fail.
        if self.cfg.issuer.is_some() || st.record.is_some() || self.cfg.grant.unattended() {
            return self.renew(None, None).await.map(Some);
        }
        Ok(None)
    }

    /// After the upstream refused `rejected` (401, or 403 `insufficient_scope`): a credential
    /// to retry with, or `None` when there is nothing better to offer (the client then sees
    /// the upstream's refusal as it was).
    pub async fn recover(
        &self,
        rejected: Option<&HeaderValue>,
        challenge: &Challenge,
        forbidden: bool,
    ) -> Result<Option<HeaderValue>, AuthError> {
        if forbidden || challenge.insufficient_scope() {
            let Some(wanted) = challenge.scope.as_deref().filter(|s| !s.trim().is_empty()) else { return Ok(None) };
            let current = self.snapshot().record.and_then(|r| r.scope).unwrap_or_default();
            let union = union_scopes(&current, wanted);
            if !current.is_empty() && union == union_scopes(&current, "") {
                // The token already has every scope asked for: a new sign-in cannot help.
                tracing::warn!(upstream = %self.server_name(), "the server refuses a token that has the scopes it asks for ({wanted}); not signing in again");
                return Ok(None);
            }
            {
                let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
                if st.stepped_up.contains(&union) {
                    tracing::warn!(upstream = %self.server_name(), "the server still refuses after a sign-in with scopes {union:?}; giving up");
                    return Ok(None);
                }
                st.stepped_up.push(union.clone());
            }
            tracing::info!(upstream = %self.server_name(), "the server asks for more scopes ({wanted}); signing in again");
            return self.renew(rejected, Some((challenge, Some(union)))).await.map(Some);
        }
        let fresh = self.renew(rejected, Some((challenge, None))).await?;
        Ok((Some(&fresh) != rejected).then_some(fresh))
    }

    /// Refreshes, or signs in, unless the token already differs from `seen` (another request
    /// or another process renewed it meanwhile). `challenge` comes with a refusal; a scope
    /// with it demands a new sign-in with that scope.
    async fn renew(
        &self,
        seen: Option<&HeaderValue>,
        challenge: Option<(&Challenge, Option<String>)>,
    ) -> Result<HeaderValue, AuthError> {
        let step_up = challenge.as_ref().and_then(|(_, s)| s.clone());
        let _flight = self.flight.lock().await;
        let st = self.snapshot();
        if step_up.is_none()
            && let Some(c) = st.current.as_ref().filter(|c| Some(&c.header) != seen && c.usable())
        {
            return Ok(c.header.clone());
        }
        let _lock = self
            .store
            .lock(&format!("server\n{}", self.server_key), self.cfg.login_timeout + Duration::from_secs(60))
            .await
            .map_err(|e| AuthError::transient(e.to_string()))?;
        // Another process may have refreshed or signed in while we waited.
        if let Some(record) = self.find_record()? {
            let newer = seen.is_none_or(|s| !record.same_access_token(s));
            let enough = step_up
                .as_deref()
                .is_none_or(|want| record.scope.as_deref().is_some_and(|have| union_scopes(have, want) == have.trim()));
            if newer && enough && record.usable() {
                tracing::debug!("using the credential another mcpgate process stored");
                return Ok(self.adopt(record));
            }
        }
        if self.cfg.grant.unattended() {
            // A refusal's challenge goes along: one that asks for DPoP gets a bound token.
            return self.unattended(challenge.map(|c| c.0)).await;
        }
        // The server asks for DPoP and refused a token that is not bound: a refresh keeps the
        // binding a token has (none), so it would bring another token the server refuses — and
        // spend a rotating refresh token on every request. A new sign-in, with a key, instead;
        // once, unless it brings a bound token (then there is nothing left to rebind).
        let st = self.snapshot();
        let rebind = self.cfg.dpop != dpop::Mode::Off
            && challenge.as_ref().is_some_and(|(c, _)| c.offers_dpop())
            && st.record.as_ref().is_some_and(|r| r.dpop.is_none())
            && !st.bearer_despite_key;
        // That sign-in was made, and brought no bound token, and the server takes no Bearer
        // token: a refresh would bring one more it refuses. The refusal stands.
        if st.bearer_despite_key
            && self.cfg.dpop != dpop::Mode::Off
            && challenge.as_ref().is_some_and(|(c, _)| c.dpop_only())
            && let Some(record) = st.record.as_ref().filter(|r| r.dpop.is_none())
        {
            return Err(AuthError::refused(format!(
                "the server takes DPoP-bound tokens only, and a sign-in with a DPoP key at the authorization server {} brought none; not renewing the Bearer token",
                record.issuer
            )));
        }
        if rebind {
            tracing::info!(upstream = %self.server_name(), "the server asks for a DPoP-bound token; signing in again with a DPoP key");
            let signed_in = self.login(challenge.map(|c| c.0), step_up.as_deref()).await;
            // A Bearer token again, kept or refused (where the server requires DPoP): the
            // authorization server does not bind, and another sign-in would not change that.
            let unbound = match &signed_in {
                Ok(_) => self.snapshot().record.is_some_and(|r| r.dpop.is_none()),
                Err(e) => e.kind == AuthErrorKind::Refused,
            };
            if unbound {
                tracing::warn!(upstream = %self.server_name(), "the server asks for a DPoP-bound token, and a sign-in with a DPoP key did not bring one; not signing in again for it");
                self.state.write().unwrap_or_else(|p| p.into_inner()).bearer_despite_key = true;
            }
            return signed_in;
        }
        // A refresh, when there is a refresh token and no new scope is wanted.
        if step_up.is_none()
            && let Some(record) = st.record.filter(|r| r.refresh_token.is_some())
        {
            match self.refresh(&record).await {
                Ok(header) => return Ok(header),
                Err(e) if e.kind == AuthErrorKind::InvalidGrant => {
                    tracing::info!(upstream = %self.server_name(), "the refresh token is no longer valid ({e}); signing in again");
                    self.forget(&record);
                }
                Err(e) if e.kind == AuthErrorKind::InvalidClient => {
                    tracing::info!(upstream = %self.server_name(), "the client registration is no longer valid ({e}); registering again");
                    self.forget(&record);
                    let _ = self.store.delete(StoreKind::Client, &record.issuer);
                }
                // Transient: keep the credential, fail this request.
                Err(e) => return Err(e),
            }
        }
        self.login(challenge.map(|c| c.0), step_up.as_deref()).await
    }

    /// The stored record for this server (and the configured client/issuer, if any).
    fn find_record(&self) -> Result<Option<TokenRecord>, AuthError> {
        let records = self.store.list(StoreKind::Token).map_err(|e| AuthError::transient(e.to_string()))?;
        Ok(records
            .into_iter()
            .filter_map(TokenRecord::from_store)
            .filter(|r| r.server == self.server_key)
            .filter(|r| self.cfg.client_id.as_ref().is_none_or(|c| *c == r.client.client_id))
            .filter(|r| {
                self.cfg.issuer.as_ref().is_none_or(|i| i.trim_end_matches('/') == r.issuer.trim_end_matches('/'))
            })
            // `--dpop`: a Bearer token stored before is not one to send; `--no-dpop`: nor is a
            // bound one (its proofs are what the flag turns off).
            .filter(|r| match self.cfg.dpop {
                dpop::Mode::Require => r.dpop.is_some(),
                dpop::Mode::Off => r.dpop.is_none(),
                dpop::Mode::Auto => true,
            })
            .max_by_key(|r| r.saved_at))
    }

    /// Makes `record` the current credential; returns its header.
    fn adopt(&self, record: TokenRecord) -> HeaderValue {
        let current = record.current();
        let header = current.header.clone();
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        st.current = Some(current);
        if let Some(key) = &record.dpop {
            st.dpop_key = Some(key.clone());
        }
        if let Some(old) = st.record.as_ref().filter(|old| old.access_token != record.access_token)
            && let Some(key) = &old.dpop
        {
            st.replaced = Some((dpop::ath(&old.access_token), key.clone()));
        }
        st.record = Some(record);
        header
    }

    /// Drops a dead credential from memory and the store.
    fn forget(&self, record: &TokenRecord) {
        let _ = self.store.delete(StoreKind::Token, &record.id());
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        st.current = None;
        st.record = None;
    }

    fn save(&self, record: TokenRecord) -> Result<HeaderValue, AuthError> {
        let (public, secret) = record.to_store();
        self.store
            .save(StoreKind::Token, &record.id(), public, Some(&secret))
            .map_err(|e| AuthError::transient(e.to_string()))?;
        Ok(self.adopt(record))
    }

    /// The client as the token endpoint sees it, for a record.
    fn client_of(&self, registered: &Registered) -> Client {
        let secret = self.cfg.client_secret.clone().or_else(|| {
            let r = self.store.load(StoreKind::Client, &registered.issuer).ok().flatten()?;
            r.secret?.get("client_secret")?.as_str().map(str::to_owned)
        });
        Client { id: registered.client_id.clone(), secret, method: registered.method, key: self.key.clone() }
    }

    async fn refresh(&self, record: &TokenRecord) -> Result<HeaderValue, AuthError> {
        let refresh_token = record.refresh_token.as_deref().unwrap_or_default();
        let client = self.client_of(&record.client);
        // A bound refresh token is refreshed with a proof of the same key (RFC 9449 §5).
        let tokens = token::request(
            &self.http,
            &record.metadata,
            &client,
            Grant::Refresh { refresh_token },
            None,
            record.resource.as_deref(),
            self.bind(record.dpop.as_deref()),
        )
        .await?;
        // A bound credential stays bound: a Bearer token in its place is a downgrade, whatever
        // the authorization server's reason (a refresh with a proof asks for a bound token).
        let required = match (self.cfg.dpop, &record.dpop) {
            (dpop::Mode::Require, _) => Some(Required::Flag),
            (_, Some(_)) => Some(Required::Bound),
            _ => None,
        };
        self.check_bound(&tokens, &record.issuer, required)?;
        tracing::info!(upstream = %self.server_name(), "upstream access token refreshed");
        let mut next = record.clone();
        next.update(tokens);
        self.save(next)
    }

    /// Where to sign in: the configured issuer, or discovery from the server's challenge.
    async fn discover(&self, challenge: Option<&Challenge>) -> Result<Found, AuthError> {
        let mut found = match &self.cfg.issuer {
            Some(issuer) => {
                let server = discovery::server_metadata(&self.http, issuer).await?.ok_or_else(|| {
                    AuthError::refused(format!("the issuer {issuer} publishes no metadata (OpenID or RFC 8414)"))
                })?;
                // The issuer is given, not discovered; whether the server takes DPoP-bound tokens
                // is still its own word (its resource metadata), when it publishes any.
                let (dpop_required, dpop_offered) = match self.cfg.dpop {
                    dpop::Mode::Off => (false, false),
                    _ => discovery::resource_dpop(&self.http, &self.cfg.server, challenge).await,
                };
                Found {
                    resource: discovery::canonical_resource(&self.cfg.server),
                    server,
                    resource_scopes: None,
                    defaults: false,
                    dpop_required,
                    dpop_offered,
                }
            }
            None => discovery::discover(&self.http, &self.cfg.server, challenge).await?,
        };
        if let Some(r) = &self.cfg.resource {
            found.resource = r.clone();
        }
        Ok(found)
    }

    /// The scopes to ask for (MCP's scope selection): configured, else the challenge's, else
    /// every scope the resource lists, else none at all.
    fn scopes(&self, challenge: Option<&Challenge>, found: &Found) -> Option<String> {
        let chosen = self
            .cfg
            .scopes
            .clone()
            .or_else(|| challenge.and_then(|c| c.scope.clone()))
            .or_else(|| found.resource_scopes.as_ref().map(|s| s.join(" ")))
            .filter(|s| !s.trim().is_empty());
        self.with_offline_access(chosen, &found.server)
    }

    /// SEP-2207: ask for `offline_access` (a refresh token) too where the authorization server
    /// lists it, unless the user chose the scopes. Never where it is not listed.
    fn with_offline_access(&self, chosen: Option<String>, server: &ServerMetadata) -> Option<String> {
        // It joins other scopes, never stands alone: OpenID providers (oidc-provider among them)
        // deny a request for nothing but offline_access, and a request without scopes gets the
        // server's defaults, refresh tokens included where it issues them.
        let listed = server.scopes_supported.as_ref().is_some_and(|s| s.iter().any(|x| x == "offline_access"));
        match chosen {
            Some(c) if listed && self.cfg.scopes.is_none() && !self.cfg.grant.unattended() => {
                Some(union_scopes(&c, "offline_access"))
            }
            other => other,
        }
    }

    fn resource<'a>(&self, found: &'a Found) -> Option<&'a str> {
        Some(found.resource.as_str()).filter(|r| !r.is_empty())
    }

    /// Tokens without a browser: client credentials, Cross-App Access, or a workload's JWT.
    async fn unattended(&self, challenge: Option<&Challenge>) -> Result<HeaderValue, AuthError> {
        let found = self.discover(challenge).await?;
        let id = self.cfg.client_id.clone().ok_or_else(|| AuthError::refused("this grant needs --client-id"))?;
        let method = token::choose_method(
            self.cfg.auth_method,
            self.cfg.client_secret.is_some(),
            self.key.is_some(),
            &found.server,
        );
        let client = Client { id: id.clone(), secret: self.cfg.client_secret.clone(), method, key: self.key.clone() };
        let scope = self.scopes(challenge, &found);
        let (dpop_key, dpop_required) = self.dpop_key(&found, challenge)?;
        let bind = self.bind(dpop_key.as_deref());
        let tokens = match self.cfg.grant {
            GrantKind::CrossAppAccess => {
                let idp = &self.cfg.idp;
                let endpoint = idp
                    .token_endpoint
                    .as_deref()
                    .ok_or_else(|| AuthError::refused("Cross-App Access needs --idp-token-endpoint"))?;
                let path = idp
                    .id_token_file
                    .as_ref()
                    .ok_or_else(|| AuthError::refused("Cross-App Access needs --idp-id-token-file"))?;
                let id_token = std::fs::read_to_string(path)
                    .map_err(|e| AuthError::refused(format!("--idp-id-token-file {}: {e}", path.display())))?;
                let resource = self.resource(&found).unwrap_or_default();
                let assertion = token::exchange_id_token(
                    &self.http,
                    endpoint,
                    idp.client_id.as_deref(),
                    id_token.trim(),
                    &found.server.issuer,
                    resource,
                    scope.as_deref(),
                )
                .await?;
                token::request(
                    &self.http,
                    &found.server,
                    &client,
                    Grant::JwtBearer { assertion: &assertion },
                    scope.as_deref(),
                    self.resource(&found),
                    bind,
                )
                .await?
            }
            GrantKind::WorkloadIdentity => {
                let path = self
                    .cfg
                    .workload_token_file
                    .as_ref()
                    .ok_or_else(|| AuthError::refused("workload identity needs --workload-token-file"))?;
                // The file's content is a credential: errors name the file, never what it holds.
                let assertion = std::fs::read_to_string(path)
                    .map_err(|e| AuthError::refused(format!("--workload-token-file {}: {e}", path.display())))?;
                token::request(
                    &self.http,
                    &found.server,
                    &client,
                    Grant::JwtBearer { assertion: assertion.trim() },
                    scope.as_deref(),
                    self.resource(&found),
                    bind,
                )
                .await?
            }
            _ => {
                token::request(
                    &self.http,
                    &found.server,
                    &client,
                    Grant::ClientCredentials,
                    scope.as_deref(),
                    self.resource(&found),
                    bind,
                )
                .await?
            }
        };
        self.check_bound(&tokens, &found.server.issuer, dpop_required)?;
        tracing::info!(upstream = %self.server_name(), grant = ?self.cfg.grant, dpop = tokens.dpop_bound, "access token obtained without a browser");
        // Kept in memory only: another can be had at any time (its DPoP key too).
        let registered =
            Registered { issuer: found.server.issuer.clone(), client_id: id, method, redirect_uri: String::new() };
        Ok(self.adopt(TokenRecord::new(&self.server_key, &found, registered, tokens, scope, dpop_key)))
    }

    /// The browser sign-in: discovery, client identity, authorization code + PKCE, tokens.
    async fn login(&self, challenge: Option<&Challenge>, step_up: Option<&str>) -> Result<HeaderValue, AuthError> {
        let found = self.discover(challenge).await?;
        let server = &found.server;
        // OAuth 2.1 / MCP: without S256 there is no PKCE, and no sign-in.
        if !server.supports_s256() {
            return Err(AuthError::refused(format!(
                "the authorization server {} does not support PKCE with S256 (code_challenge_methods_supported); refusing to sign in",
                server.issuer
            )));
        }
        let authorize = server.authorization_endpoint.clone().ok_or_else(|| {
            AuthError::refused(format!("the authorization server {} has no authorization endpoint", server.issuer))
        })?;
        // Decided before the browser opens: a `--dpop` the server cannot meet stops here.
        let (dpop_key, dpop_required) = self.dpop_key(&found, challenge)?;
        let (listener, client) = self.identify(server, step_up.or(self.cfg.scopes.as_deref())).await?;
        let scope = match step_up {
            Some(s) => self.with_offline_access(Some(s.to_owned()), server),
            None => self.scopes(challenge, &found),
        };
        let pkce = pkce::Pkce::new().map_err(AuthError::refused)?;
        let state = pkce::random_token(16).map_err(AuthError::refused)?;
        let redirect_uri = listener.redirect_uri.clone();
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", &redirect_uri),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("state", &state),
        ];
        if let Some(s) = scope.as_deref() {
            params.push(("scope", s));
        }
        if let Some(r) = self.resource(&found) {
            params.push(("resource", r));
        }
        let url = with_query(&authorize, params);
        browser::open(&self.cfg.browser, &url, &self.server_name());
        let expect = callback::Expect {
            state,
            issuer: server.issuer.clone(),
            iss_required: server.authorization_response_iss_parameter_supported,
            server_name: self.server_name(),
        };
        let code = listener.wait(expect, self.cfg.login_timeout).await?;
        let grant = Grant::Code { code: &code, verifier: &pkce.verifier, redirect_uri: &redirect_uri };
        let bind = self.bind(dpop_key.as_deref());
        let tokens = token::request(&self.http, server, &client, grant, None, self.resource(&found), bind).await?;
        self.check_bound(&tokens, &server.issuer, dpop_required)?;
        tracing::info!(upstream = %self.server_name(), issuer = %server.issuer, dpop = tokens.dpop_bound, "signed in");
        let registered = Registered {
            issuer: server.issuer.clone(),
            client_id: client.id.clone(),
            method: client.method,
            redirect_uri,
        };
        let granted = tokens.scope.clone().or(scope);
        self.save(TokenRecord::new(&self.server_key, &found, registered, tokens, granted, dpop_key))
    }

    /// Binds the redirect listener and settles who the client is: pre-registered, a metadata
    /// document URL, the stored registration (whose redirect port is reused), or a new one.
    async fn identify(
        &self,
        server: &ServerMetadata,
        scope: Option<&str>,
    ) -> Result<(callback::Listener, Client), AuthError> {
        if let Some(id) = &self.cfg.client_id {
            let listener = callback::Listener::bind(self.cfg.redirect_url.as_deref()).await?;
            let method = token::choose_method(
                self.cfg.auth_method,
                self.cfg.client_secret.is_some(),
                self.key.is_some(),
                server,
            );
            return Ok((
                listener,
                Client { id: id.clone(), secret: self.cfg.client_secret.clone(), method, key: self.key.clone() },
            ));
        }
        if let Some(url) =
            self.cfg.client_metadata_url.as_ref().filter(|_| server.client_id_metadata_document_supported)
        {
            let listener = callback::Listener::bind(self.cfg.redirect_url.as_deref()).await?;
            let method = self.cfg.auth_method.unwrap_or(if self.key.is_some() {
                AuthMethod::PrivateKeyJwt
            } else {
                AuthMethod::None
            });
            return Ok((listener, Client { id: url.clone(), secret: None, method, key: self.key.clone() }));
        }
        // Dynamic registration, reused: the stored one if its redirect port can be had again.
        let stored = self.store.load(StoreKind::Client, &server.issuer).ok().flatten();
        if let Some(record) = stored
            && let (Ok(reg), secret) = (serde_json::from_value::<Registered>(record.public), record.secret)
        {
            let wanted = self.cfg.redirect_url.as_deref().unwrap_or(&reg.redirect_uri);
            if wanted == reg.redirect_uri {
                if let Ok(listener) = callback::Listener::bind(Some(wanted)).await {
                    let secret = secret.and_then(|s| s.get("client_secret")?.as_str().map(str::to_owned));
                    let client = Client { id: reg.client_id.clone(), secret, method: reg.method, key: None };
                    return Ok((listener, client));
                }
                tracing::info!("the registered redirect port is busy; registering again");
            }
        }
        let listener = callback::Listener::bind(self.cfg.redirect_url.as_deref()).await?;
        let (reg, secret) = registration::register(&self.http, server, &listener.redirect_uri, scope).await?;
        let secret_json = secret.as_ref().map(|s| serde_json::json!({ "client_secret": s }));
        let public = serde_json::to_value(&reg).map_err(|e| AuthError::refused(e.to_string()))?;
        if let Err(e) = self.store.save(StoreKind::Client, &server.issuer, public, secret_json.as_ref()) {
            tracing::warn!("the client registration could not be stored ({e}); the next login registers again");
        }
        Ok((listener, Client { id: reg.client_id, secret, method: reg.method, key: None }))
    }

    /// The key to bind new tokens to, or `None` for Bearer tokens (`dpop::Mode`), and why a
    /// token that comes back unbound is to be refused, if it is.
    fn dpop_key(
        &self,
        found: &Found,
        challenge: Option<&Challenge>,
    ) -> Result<(Option<Arc<dpop::Key>>, Option<Required>), AuthError> {
        let server = &found.server;
        // The authorization server takes proofs mcpgate signs: it lists ES256, or says nothing
        // (trying costs nothing: one that ignores the proof issues a Bearer token).
        let as_takes = server.supports_dpop() || server.dpop_signing_alg_values_supported.is_none();
        let algs = || shown_algs(server.dpop_signing_alg_values_supported.as_deref().unwrap_or_default());
        let wanted = match self.cfg.dpop {
            dpop::Mode::Off => false,
            dpop::Mode::Require => {
                if !as_takes {
                    return Err(AuthError::refused(format!(
                        "--dpop: the authorization server {} takes DPoP proofs in {} only, and mcpgate signs {}",
                        server.issuer,
                        algs(),
                        dpop::ALG
                    )));
                }
                true
            }
            // Both sides: the MCP server takes DPoP-bound tokens (its challenge or metadata), and
            // the authorization server issues them — or says nothing either way. An
            // authorization server's word alone is not enough: many advertise DPoP by default, in
            // front of MCP servers that take Bearer tokens only.
            dpop::Mode::Auto => {
                if found.dpop_required && !as_takes {
                    // A Bearer token would be refused by the server: say what is missing now.
                    return Err(AuthError::refused(format!(
                        "the server {} requires DPoP-bound tokens (dpop_bound_access_tokens_required in its resource metadata), and the authorization server {} does not take DPoP proofs in {}, the one algorithm mcpgate signs them with (its dpop_signing_alg_values_supported: {})",
                        self.server_name(),
                        server.issuer,
                        dpop::ALG,
                        algs()
                    )));
                }
                let resource_asks =
                    found.dpop_required || found.dpop_offered || challenge.is_some_and(Challenge::offers_dpop);
                resource_asks && as_takes
            }
        };
        if !wanted {
            return Ok((None, None));
        }
        let required = match self.cfg.dpop {
            dpop::Mode::Require => Some(Required::Flag),
            _ if found.dpop_required => Some(Required::Resource),
            _ => None,
        };
        // One key per credential: kept across sign-ins and refreshes (and stored with the token).
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = &st.dpop_key {
            return Ok((Some(key.clone()), required));
        }
        let key = Arc::new(dpop::Key::generate().map_err(AuthError::refused)?);
        tracing::debug!(jkt = %key.thumbprint(), "a DPoP key for this credential");
        st.dpop_key = Some(key.clone());
        Ok((Some(key), required))
    }

    /// DPoP at the token endpoint with `key`, if any.
    fn bind<'a>(&'a self, key: Option<&'a dpop::Key>) -> Option<token::Bind<'a>> {
        key.map(|key| token::Bind { key, nonces: &self.as_nonces })
    }

    /// A Bearer token where DPoP is `required` is refused: it is what DPoP is there to prevent,
    /// a token anyone who sees it can replay.
    fn check_bound(&self, tokens: &Tokens, issuer: &str, required: Option<Required>) -> Result<(), AuthError> {
        let Some(why) = required.filter(|_| !tokens.dpop_bound) else { return Ok(()) };
        let why = match why {
            Required::Flag => "--dpop",
            Required::Resource => "the server's resource metadata sets dpop_bound_access_tokens_required",
            Required::Bound => "the credential it renews is DPoP-bound",
        };
        Err(AuthError::refused(format!(
            "the authorization server {issuer} issued a Bearer token where DPoP-bound tokens are required ({why}); refusing it"
        )))
    }

    /// The `DPoP` header for a request to the MCP server carrying `authorization`, when that is
    /// a DPoP-bound token of this credential — its current one, or the one it just replaced —:
    /// a fresh proof of `method` and `uri` with the token's hash and the server's latest nonce.
    /// `None` for a Bearer token, and for any token not this credential's (a client's own):
    /// mcpgate's key proves mcpgate's tokens only.
    pub fn proof(&self, method: &Method, uri: &Uri, authorization: &HeaderValue) -> Option<HeaderValue> {
        let token = std::str::from_utf8(authorization.as_bytes().strip_prefix(b"DPoP ")?).ok()?;
        let (current, replaced) = {
            let st = self.state.read().unwrap_or_else(|p| p.into_inner());
            match &st.record {
                Some(r) if r.access_token == token => (r.dpop.clone(), None),
                _ => (None, st.replaced.clone()),
            }
        };
        // A token replaced while this request was on its way: proved with the key it is bound to.
        let key = current.or_else(|| replaced.filter(|(ath, _)| *ath == dpop::ath(token)).map(|(_, key)| key))?;
        let nonce = self.rs_nonces.get(uri);
        key.header(method.as_str(), &dpop::htu(uri), nonce.as_deref(), Some(token))
    }

    /// Keeps the MCP server's `DPoP-Nonce` from an answer to a request to `uri`; whether it
    /// sent one that may be used.
    pub fn note_nonce(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        self.rs_nonces.note(uri, headers)
    }

    /// Whether `mcpgate login` has anything to sign in to without asking the server first.
    pub fn has_issuer(&self) -> bool {
        self.cfg.issuer.is_some()
    }

    /// `mcpgate login`: a fresh sign-in, replacing whatever is stored.
    pub async fn login_now(&self, challenge: Option<&Challenge>) -> Result<(), AuthError> {
        let _flight = self.flight.lock().await;
        let _lock = self
            .store
            .lock(&format!("server\n{}", self.server_key), self.cfg.login_timeout + Duration::from_secs(60))
            .await
            .map_err(|e| AuthError::transient(e.to_string()))?;
        if self.cfg.grant.unattended() {
            return self.unattended(challenge).await.map(|_| ());
        }
        self.login(challenge, None).await.map(|_| ())
    }

    /// The current record's public facts, for `mcpgate login` to report.
    pub fn describe(&self) -> Option<(String, Option<SystemTime>, Option<String>)> {
        self.snapshot().record.map(|r| (r.issuer.clone(), r.expires_at, r.scope.clone()))
    }
}

/// Why a token must come back DPoP-bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Required {
    /// `--dpop`.
    Flag,
    /// The MCP server's resource metadata sets `dpop_bound_access_tokens_required`.
    Resource,
    /// A refresh of a bound credential.
    Bound,
}

/// An authorization server's algorithm list as an error message shows it: at most 8, each at
/// most 20 characters, without control characters (the list is the server's text, and goes
/// to a terminal).
fn shown_algs(algs: &[String]) -> String {
    let algs: Vec<String> =
        algs.iter().take(8).map(|a| a.chars().filter(|c| !c.is_control()).take(20).collect()).collect();
    if algs.is_empty() { "no algorithm".to_owned() } else { algs.join(", ") }
}

/// `a b` ∪ `b c` = `a b c` (order kept, first seen first).
pub fn union_scopes(have: &str, want: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in have.split_whitespace().chain(want.split_whitespace()) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(" ")
}

/// `base` with the pairs form-encoded onto its query (after what it has: an authorization
/// endpoint may carry parameters of its own).
fn with_query<'a>(base: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut url = base.to_owned();
    let start = match url.find('?') {
        Some(q) => q + 1,
        None => {
            url.push('?');
            url.len()
        }
    };
    form_urlencoded::Serializer::for_suffix(url, start).extend_pairs(pairs).finish()
}

/// Renews the token at two thirds of its lifetime, so no request waits. Ends with the credential.
async fn refresh_ahead(oauth: Weak<OAuth>) {
    let mut failures = 0u32;
    loop {
        let Some(strong) = oauth.upgrade() else { return };
        let st = strong.snapshot();
        // Only tokens we can renew without a user: a refresh token, or client credentials.
        let renewable = st.record.as_ref().is_some_and(|r| r.refresh_token.is_some()) || strong.cfg.grant.unattended();
        let at = st.current.as_ref().and_then(|c| c.refresh_at).filter(|_| renewable);
        drop(strong);
        let wait = match at {
            Some(at) => at.duration_since(SystemTime::now()).unwrap_or_default().max(Duration::from_millis(100)),
            // Nothing to renew yet: look again later (a login may happen meanwhile).
            None => Duration::from_secs(1),
        };
        tokio::time::sleep(wait).await;
        if at.is_none() {
            continue;
        }
        let Some(strong) = oauth.upgrade() else { return };
        let seen = st.current.map(|c| c.header);
        match strong.renew(seen.as_ref(), None).await {
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(upstream = %strong.server_name(), "renewing the upstream token ahead of expiry failed: {e}");
                drop(strong);
                tokio::time::sleep(Duration::from_secs(1 << failures.min(5))).await;
            }
        }
    }
}

impl From<Tokens> for IssuedToken {
    fn from(t: Tokens) -> IssuedToken {
        IssuedToken { value: t.access_token, expires_at: t.expires_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_union() {
        assert_eq!(union_scopes("a b", "b c"), "a b c");
        assert_eq!(union_scopes("", "x"), "x");
        assert_eq!(union_scopes("a", ""), "a");
    }

    #[test]
    fn authorization_urls_keep_the_endpoints_own_query() {
        let pairs = [("scope", "a b"), ("redirect_uri", "http://127.0.0.1:3000/cb?x=1&y")];
        let encoded = "scope=a+b&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcb%3Fx%3D1%26y";
        assert_eq!(with_query("https://as/authorize", pairs), format!("https://as/authorize?{encoded}"));
        assert_eq!(
            with_query("https://as/authorize?tenant=1", pairs),
            format!("https://as/authorize?tenant=1&{encoded}")
        );
        assert_eq!(with_query("https://as/authorize?", pairs), format!("https://as/authorize?{encoded}"));
    }

    /// A configuration whose store is `name`'s own (nothing is written there unless a test does).
    fn config(name: &str, server: &str, dpop: dpop::Mode) -> Config {
        let dir = std::env::temp_dir().join(format!("mcpgate-unit-{}-{name}", std::process::id()));
        Config {
            server: server.parse().unwrap(),
            issuer: None,
            client_id: None,
            client_secret: None,
            auth_method: None,
            client_metadata_url: None,
            private_key: None,
            signing_alg: None,
            scopes: None,
            redirect_url: None,
            resource: None,
            grant: GrantKind::AuthorizationCode,
            idp: IdentityProvider::default(),
            workload_token_file: None,
            browser: Browser::Off,
            login_timeout: Duration::from_secs(1),
            store_dir: Some(dir),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            dpop,
        }
    }

    fn record(token: &str, key: Option<&Arc<dpop::Key>>) -> TokenRecord {
        let found = Found {
            resource: "https://mcp.example.com/mcp".into(),
            server: ServerMetadata { issuer: "https://as.example.com".into(), ..Default::default() },
            resource_scopes: None,
            defaults: false,
            dpop_required: false,
            dpop_offered: false,
        };
        let client = Registered {
            issuer: "https://as.example.com".into(),
            client_id: "c".into(),
            method: AuthMethod::None,
            redirect_uri: String::new(),
        };
        let tokens = Tokens {
            access_token: token.into(),
            expires_at: None,
            refresh_token: None,
            scope: None,
            id_token: None,
            dpop_bound: key.is_some(),
        };
        TokenRecord::new("https://mcp.example.com/mcp", &found, client, tokens, None, key.cloned())
    }

    /// mcpgate's key proves mcpgate's tokens: the current one, and the one it just replaced (a
    /// request sent before the renewal) — never a token it does not hold, such as a client's own
    /// `DPoP` token that reached it, which a proof of mcpgate's would make usable.
    #[test]
    fn only_this_credentials_own_tokens_are_proved() {
        let oauth = OAuth::new(config("proof", "https://mcp.example.com/mcp", dpop::Mode::Auto)).unwrap();
        let (method, uri) = (Method::POST, "https://mcp.example.com/mcp".parse::<Uri>().unwrap());
        let dpop_of = |token: &str| HeaderValue::from_str(&format!("DPoP {token}")).unwrap();
        let ath_of = |proof: &HeaderValue| {
            let claims = proof.to_str().unwrap().split('.').nth(1).unwrap();
            let claims: serde_json::Value = serde_json::from_slice(
                &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
            )
            .unwrap();
            claims["ath"].as_str().unwrap().to_owned()
        };
        // Nothing held: nothing proved, though a client's token is there.
        assert!(oauth.proof(&method, &uri, &dpop_of("client-token")).is_none());

        let key = Arc::new(dpop::Key::generate().unwrap());
        oauth.adopt(record("first", Some(&key)));
        let proof = oauth.proof(&method, &uri, &dpop_of("first")).expect("its own token");
        assert_eq!(ath_of(&proof), dpop::ath("first"));
        assert!(oauth.proof(&method, &uri, &dpop_of("client-token")).is_none(), "a client's token");
        assert!(oauth.proof(&method, &uri, &HeaderValue::from_static("Bearer first")).is_none());

        // Renewed: the new token, and the one it replaced, are proved; nothing else.
        oauth.adopt(record("second", Some(&key)));
        assert_eq!(ath_of(&oauth.proof(&method, &uri, &dpop_of("second")).unwrap()), dpop::ath("second"));
        assert_eq!(ath_of(&oauth.proof(&method, &uri, &dpop_of("first")).unwrap()), dpop::ath("first"));
        assert!(oauth.proof(&method, &uri, &dpop_of("client-token")).is_none());
        // Two renewals on, the first is not this credential's any more.
        oauth.adopt(record("third", Some(&key)));
        assert!(oauth.proof(&method, &uri, &dpop_of("first")).is_none());
        assert!(oauth.proof(&method, &uri, &dpop_of("second")).is_some());
        // A Bearer token in the bound one's place: no proof for it, nor for anything but the
        // bound token it replaced.
        oauth.adopt(record("bearer", None));
        assert!(oauth.proof(&method, &uri, &dpop_of("bearer")).is_none());
        assert!(oauth.proof(&method, &uri, &dpop_of("client-token")).is_none());
        assert!(oauth.proof(&method, &uri, &dpop_of("third")).is_some());
    }

    /// `--no-dpop` never sends a bound token (its proofs are what the flag turns off), `--dpop`
    /// never an unbound one; the default takes either.
    #[test]
    fn stored_records_follow_the_dpop_flags() {
        let server = "https://mcp.example.com/mcp";
        let dir = config("flags", server, dpop::Mode::Auto).store_dir.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        // The key in a file: a test writes to no keychain (reading, the file comes first).
        let store = Store::without_keychain(dir.clone());
        let key = Arc::new(dpop::Key::generate().unwrap());
        let bound = record("bound", Some(&key));
        let (public, secret) = bound.to_store();
        store.save(StoreKind::Token, &bound.id(), public, Some(&secret)).unwrap();
        let found =
            |mode| OAuth::new(config("flags", server, mode)).unwrap().find_record().unwrap().map(|r| r.access_token);
        assert_eq!(found(dpop::Mode::Auto).as_deref(), Some("bound"));
        assert_eq!(found(dpop::Mode::Require).as_deref(), Some("bound"));
        assert_eq!(found(dpop::Mode::Off), None);

        // The same (issuer, client, resource): a Bearer record in the bound one's place.
        let bearer = record("bearer", None);
        let (public, secret) = bearer.to_store();
        store.save(StoreKind::Token, &bearer.id(), public, Some(&secret)).unwrap();
        assert_eq!(found(dpop::Mode::Auto).as_deref(), Some("bearer"));
        assert_eq!(found(dpop::Mode::Require), None);
        assert_eq!(found(dpop::Mode::Off).as_deref(), Some("bearer"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn algorithm_lists_are_shown_without_control_characters() {
        let algs = ["RS256".to_owned(), "PS\x1b[2J256".to_owned(), "Ed\n25519\r".to_owned()];
        assert_eq!(shown_algs(&algs), "RS256, PS[2J256, Ed25519");
        assert_eq!(shown_algs(&[]), "no algorithm");
        let many: Vec<String> = (0..20).map(|i| format!("{}{i}", "A".repeat(30))).collect();
        let shown = shown_algs(&many);
        assert_eq!(shown.split(", ").count(), 8);
        assert!(shown.split(", ").all(|a| a.len() == 20));
    }
}
