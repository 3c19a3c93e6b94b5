//! RFC 8693 token exchange for `serve`: a caller's access token, sent by the gateway (a client of
//! the issuer) to the issuer's token endpoint, comes back as a token for one server — so each
//! user reaches an upstream as themselves, and the caller's own token never leaves the gateway.
//! An exchanged token is kept per caller token until shortly before it expires; one exchange at
//! a time per server (a caller's many requests wait for the one under way).

use std::collections::hash_map::RandomState;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;

use super::AuthError;
use super::discovery::{ServerMetadata, server_metadata};
use super::http::Http;
use super::token::{self, Client, Grant};

/// An exchanged token is not used in its last half-minute (the call may outlive it).
const MARGIN: Duration = Duration::from_secs(30);
/// Without `expires_in` (or a JWT `exp`), an exchanged token is kept this long.
const DEFAULT_KEEP: Duration = Duration::from_secs(300);
const MAX_CACHED: usize = 4096;

/// What one server's exchanges ask for (`mcpServers.<name>.auth.tokenExchange`).
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// `audience` and `resource` of the request (RFC 8693 §2.1; default resource: the server's URL).
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub scopes: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("audience", &self.audience)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

pub struct Exchanger {
    settings: Settings,
    http: Http,
    metadata: tokio::sync::OnceCell<ServerMetadata>,
    /// By the caller's token (SipHash: a caller chooses it).
    cache: Mutex<crate::expiring::Expiring<String, HeaderValue, RandomState>>,
    flight: tokio::sync::Mutex<()>,
}

impl Exchanger {
    /// `server` is the MCP server's URL: the SSRF policy follows it, as for its own sign-in.
    pub fn new(settings: Settings, server: &http::Uri, timeout: Duration) -> Exchanger {
        let http = Http::for_server(server, timeout);
        Exchanger {
            settings,
            http,
            metadata: Default::default(),
            cache: Mutex::new(crate::expiring::Expiring::new(MAX_CACHED)),
            flight: Default::default(),
        }
    }

    /// The token for this server made from `caller`'s, if one was made and is still good.
    pub fn cached(&self, caller: &HeaderValue) -> Option<HeaderValue> {
        let key = caller.to_str().ok()?;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(key)
    }

    /// The token for this server made from `caller`'s (`Bearer …`): kept, or exchanged now.
    pub async fn exchange(&self, caller: &HeaderValue) -> Result<HeaderValue, AuthError> {
        if let Some(t) = self.cached(caller) {
            return Ok(t);
        }
        let _one = self.flight.lock().await;
        if let Some(t) = self.cached(caller) {
            return Ok(t);
        }
        let text = caller.to_str().map_err(|_| AuthError::refused("the caller's token is not text"))?;
        let subject = text
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| AuthError::refused("the caller sent no bearer token to exchange"))?;
        let metadata = self
            .metadata
            .get_or_try_init(|| async {
                server_metadata(&self.http, &self.settings.issuer).await?.ok_or_else(|| {
                    AuthError::refused(format!("{} publishes no authorization server metadata", self.settings.issuer))
                })
            })
            .await?;
        let s = &self.settings;
        let method = token::choose_method(None, s.client_secret.is_some(), false, metadata);
        let client = Client { id: s.client_id.clone(), secret: s.client_secret.clone(), method, key: None };
        let grant = Grant::TokenExchange { subject_token: subject, audience: s.audience.as_deref() };
        let tokens =
            token::request(&self.http, metadata, &client, grant, s.scopes.as_deref(), s.resource.as_deref(), None)
                .await?;
        let value = HeaderValue::try_from(format!("Bearer {}", tokens.access_token))
            .map_err(|_| AuthError::refused("the exchanged token cannot be sent in a header"))?;
        let left = tokens
            .expires_at
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .map_or(DEFAULT_KEEP, |d| d.saturating_sub(MARGIN));
        let until = Instant::now() + left;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(text.to_owned(), value.clone(), until);
        Ok(value)
    }
}
