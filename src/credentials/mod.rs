//! Upstream credentials: where the bearer token mcpgate injects comes from, when it is
//! refreshed, and the guarantee that concurrent requests never refresh it twice. An OAuth
//! token may be DPoP-bound instead (RFC 9449): then it goes with a proof, which `proof` makes.
//!
//! Static sources (environment, file, command) are here; OAuth sign-in lives in
//! `oauth_client` and plugs in as one more source. Tokens in memory live inside `HeaderValue`s
//! marked sensitive, and no `Debug` or error message of this module prints one.

mod command;
mod file;

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use http::HeaderValue;

use crate::oauth_client::OAuth;
use crate::token::{self, Current, IssuedToken};
pub use command::CommandSpec;

/// Where the bearer token comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An environment variable, read once at start.
    Env(String),
    /// A file, re-read whenever it changes (checked on every request: one `stat`).
    File(std::path::PathBuf),
    /// A command whose stdout is the token; cached until it nears expiry.
    Command(CommandSpec),
    /// OAuth 2.1 / OIDC sign-in (browser or client credentials), with stored tokens.
    OAuth(Box<crate::oauth_client::Config>),
    /// Set from outside while running (`connect`'s admin API): none until it is.
    Set,
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Env(var) => format!("environment variable {var}"),
            Source::File(p) => format!("token file {}", p.display()),
            Source::Command(c) => format!("token command `{}`", c.program_name()),
            Source::OAuth(c) => format!("OAuth sign-in to {}", crate::url::display(&c.server)),
            Source::Set => "the token set through the admin API".to_owned(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{source_name} {reason}")]
pub struct CredentialError {
    pub source_name: String,
    pub reason: String,
}

/// The bearer credential of one upstream (or none: the client's own `Authorization` passes).
#[derive(Clone, Default)]
pub struct Credentials {
    inner: Option<Provider>,
}

#[derive(Clone)]
enum Provider {
    Static(Arc<Inner>),
    OAuth(Arc<OAuth>),
}

struct Inner {
    source: Source,
    current: RwLock<Current>,
    /// When the current token expires, if known (for status reports).
    expires_at: RwLock<Option<SystemTime>>,
    /// Held while a refresh runs: the single flight.
    refreshing: tokio::sync::Mutex<()>,
    file: Option<file::Watch>,
}

impl Credentials {
    /// No credential: mcpgate injects nothing and leaves the client's `Authorization` alone.
    pub fn none() -> Self {
        Credentials::default()
    }

    /// Fetches the first token now, so a broken source stops start-up with a clear message.
    pub async fn start(source: Source) -> Result<Self, CredentialError> {
        let err = |reason: String| CredentialError { source_name: source.describe(), reason };
        let now = SystemTime::now();
        if let Source::OAuth(cfg) = &source {
            let oauth = OAuth::new((**cfg).clone()).map_err(|e| err(e.message))?;
            oauth.start().await.map_err(|e| err(e.message))?;
            return Ok(Credentials { inner: Some(Provider::OAuth(oauth)) });
        }
        let (token, file) = match &source {
            Source::Env(var) => {
                let value = std::env::var(var).map_err(|_| err("is not set".into()))?;
                (token::from_plain(&value).map_err(|e| err(e.to_string()))?, None)
            }
            Source::File(path) => {
                let (token, watch) = file::Watch::open(path).map_err(err)?;
                (token, Some(watch))
            }
            Source::Command(spec) => (spec.run(now).await.map_err(err)?, None),
            Source::OAuth(_) => return Err(err("is started above".into())),
            // Nothing to send until a token is set.
            Source::Set => (IssuedToken { value: String::new(), expires_at: None }, None),
        };
        let current =
            if matches!(source, Source::Set) { Current::invalid() } else { Current::new(&token, now).map_err(err)? };
        let inner = Arc::new(Inner {
            expires_at: RwLock::new(token.expires_at),
            source,
            current: RwLock::new(current),
            refreshing: tokio::sync::Mutex::new(()),
            file,
        });
        if matches!(inner.source, Source::Command(_)) {
            tokio::spawn(refresh_ahead(Arc::downgrade(&inner)));
        }
        Ok(Credentials { inner: Some(Provider::Static(inner)) })
    }

    /// Replaces the token of a `Set` source: the next request carries it (those under way finish
    /// with the one they had; a 401 to the old one is retried with it). Its expiry, if any.
    pub fn set(&self, token: &IssuedToken) -> Result<(), CredentialError> {
        match &self.inner {
            Some(Provider::Static(inner)) if matches!(inner.source, Source::Set) => {
                inner.install(token, SystemTime::now()).map(drop)
            }
            _ => {
                Err(CredentialError { source_name: "this credential".into(), reason: "is not set from outside".into() })
            }
        }
    }

    /// Whether there is a usable token and when it expires, never the token itself.
    pub fn status(&self) -> (bool, Option<SystemTime>) {
        match &self.inner {
            Some(Provider::Static(inner)) => {
                let c = inner.snapshot();
                let set = c.usable();
                (set, inner.expires_at.read().unwrap_or_else(|p| p.into_inner()).filter(|_| set))
            }
            Some(Provider::OAuth(o)) => (true, o.describe().and_then(|(_, exp, _)| exp)),
            None => (false, None),
        }
    }

    /// Whether mcpgate supplies the `Authorization` header (and so drops the client's).
    pub fn supplies_authorization(&self) -> bool {
        self.inner.is_some()
    }

    /// Whether a refused request may succeed with another credential, so it is worth keeping
    /// a copy of it for one retry.
    pub fn may_recover(&self, sent: Option<&HeaderValue>) -> bool {
        match &self.inner {
            None => false,
            Some(Provider::Static(_)) => sent.is_some(),
            Some(Provider::OAuth(_)) => true,
        }
    }

    /// The `Authorization` value to send now.
    pub async fn authorization(&self) -> Result<Option<HeaderValue>, CredentialError> {
        let inner = match &self.inner {
            None => return Ok(None),
            // Boxed, as the refresh below: a sign-in or refresh is a large future, and inlined
            // it would be moved with every request's.
            Some(Provider::OAuth(o)) => return Box::pin(o.authorization()).await.map_err(|e| oauth_error(o, e)),
            Some(Provider::Static(inner)) => inner,
        };
        if let Some(watch) = &inner.file
            && let Some(token) = watch.reload_if_changed()
        {
            inner.install(&token, SystemTime::now())?;
        }
        let current = inner.snapshot();
        let now = SystemTime::now();
        if current.stale_at.is_some_and(|t| now >= t) {
            // Too close to expiry to use: wait for the refresh (single flight).
            return Box::pin(inner.refresh_unless_replaced(&current.header)).await.map(Some);
        }
        // (A token set from outside is renewed from outside only.)
        if current.refresh_at.is_some_and(|t| now >= t) && !matches!(inner.source, Source::Set) {
            // Still valid: use it, and refresh in the background unless a refresh runs already.
            // A duplicate task is harmless: it finds the token replaced and returns.
            if inner.refreshing.try_lock().is_ok() {
                let inner = inner.clone();
                let seen = current.header.clone();
                tokio::spawn(async move {
                    if let Err(e) = inner.refresh_unless_replaced(&seen).await {
                        tracing::warn!("refreshing the upstream credential ahead of expiry failed: {e}");
                    }
                });
            }
        }
        Ok(Some(current.header))
    }

    /// The `DPoP` proof header to send with `authorization` on a `method` request to `uri`, when
    /// that is a DPoP-bound token (OAuth only; every other source's tokens are Bearer tokens).
    pub fn proof(&self, method: &http::Method, uri: &http::Uri, authorization: &HeaderValue) -> Option<HeaderValue> {
        match &self.inner {
            Some(Provider::OAuth(o)) => o.proof(method, uri, authorization),
            _ => None,
        }
    }

    /// Keeps the server's `DPoP-Nonce` from an answer to a proof sent to `uri`; whether there
    /// was one that may be used.
    pub fn note_nonce(&self, uri: &http::Uri, headers: &http::HeaderMap) -> bool {
        match &self.inner {
            Some(Provider::OAuth(o)) => o.note_nonce(uri, headers),
            _ => false,
        }
    }

    /// After the upstream refused the request (`status` 401, or 403 with an `insufficient_scope`
    /// challenge) sent with `rejected`: a different credential to retry with, if one can be had.
    /// Concurrent callers share one refresh.
    pub async fn recover(
        &self,
        rejected: Option<&HeaderValue>,
        status: http::StatusCode,
        challenge: &crate::oauth_client::Challenge,
    ) -> Result<Option<HeaderValue>, CredentialError> {
        match &self.inner {
            Some(Provider::OAuth(o)) => o
                .recover(rejected, challenge, status == http::StatusCode::FORBIDDEN)
                .await
                .map_err(|e| oauth_error(o, e)),
            Some(Provider::Static(_)) if status == http::StatusCode::UNAUTHORIZED => match rejected {
                Some(r) => self.refresh_rejected(r).await,
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// After the upstream rejected `rejected` (401): a different token from a static source,
    /// if one can be had. Concurrent callers share one refresh.
    async fn refresh_rejected(&self, rejected: &HeaderValue) -> Result<Option<HeaderValue>, CredentialError> {
        let Some(Provider::Static(inner)) = &self.inner else {
            return Ok(None);
        };
        if matches!(inner.source, Source::Env(_)) {
            return Ok(None);
        }
        // A token set from outside: the one set since the refused one was sent, if any.
        if matches!(inner.source, Source::Set) {
            let current = inner.snapshot().header;
            return Ok((current != *rejected).then_some(current));
        }
        let fresh = inner.refresh_unless_replaced(rejected).await?;
        Ok((fresh != rejected).then_some(fresh))
    }
}

impl Inner {
    fn snapshot(&self) -> Current {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn install(&self, token: &IssuedToken, fetched: SystemTime) -> Result<HeaderValue, CredentialError> {
        let current = Current::new(token, fetched).map_err(|reason| self.error(reason))?;
        let header = current.header.clone();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = current;
        *self.expires_at.write().unwrap_or_else(|p| p.into_inner()) = token.expires_at;
        Ok(header)
    }

    fn error(&self, reason: String) -> CredentialError {
        CredentialError { source_name: self.source.describe(), reason }
    }

    /// Fetches a new token unless the current one already differs from `seen` (someone else
    /// refreshed while we waited for the lock).
    async fn refresh_unless_replaced(&self, seen: &HeaderValue) -> Result<HeaderValue, CredentialError> {
        let _flight = self.refreshing.lock().await;
        let current = self.snapshot();
        if current.header != *seen {
            return Ok(current.header);
        }
        let now = SystemTime::now();
        let token = match &self.source {
            Source::Env(_) | Source::OAuth(_) => return Ok(current.header),
            // Only the admin API renews it.
            Source::Set if current.stale_at.is_some_and(|t| SystemTime::now() >= t) => {
                let why = if current.stale_at == Some(SystemTime::UNIX_EPOCH) { "has none yet" } else { "has expired" };
                return Err(self.error(format!("{why}: set a token through the admin API")));
            }
            Source::Set => return Ok(current.header),
            Source::File(path) => file::read(path).map_err(|r| self.error(r))?,
            Source::Command(spec) => spec.run(now).await.map_err(|r| self.error(r))?,
        };
        tracing::debug!(source = %self.source.describe(), "upstream credential refreshed");
        self.install(&token, now)
    }
}

fn oauth_error(o: &OAuth, e: crate::oauth_client::AuthError) -> CredentialError {
    CredentialError { source_name: format!("OAuth sign-in to {}", o.server_name()), reason: e.message }
}

/// Refreshes a command's token at two thirds of its lifetime, so no request ever waits for
/// the command. Ends when the credential is dropped.
async fn refresh_ahead(inner: Weak<Inner>) {
    let mut failures = 0u32;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let current = strong.snapshot();
        let Some(at) = current.refresh_at else { return };
        drop(strong);
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        match strong.refresh_unless_replaced(&current.header).await {
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!("refreshing the upstream credential ahead of expiry failed: {e}");
                let backoff = Duration::from_secs(1 << failures.min(5));
                drop(strong);
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(v: &str) -> IssuedToken {
        IssuedToken { value: v.to_owned(), expires_at: None }
    }

    #[tokio::test]
    async fn a_token_set_from_outside_replaces_the_one_refused() {
        let c = Credentials::start(Source::Set).await.unwrap();
        let none = c.authorization().await.unwrap_err();
        assert!(none.to_string().contains("has none yet"), "{none}");
        assert_eq!(c.status(), (false, None));
        c.set(&token("one")).unwrap();
        let one = c.authorization().await.unwrap().unwrap();
        assert_eq!(one.to_str().unwrap(), "Bearer one");
        let challenge = crate::oauth_client::Challenge::default();
        // Refused, and nothing newer: nothing to retry with.
        assert_eq!(c.recover(Some(&one), http::StatusCode::UNAUTHORIZED, &challenge).await.unwrap(), None);
        // A request under way with the old token, refused after the new one was set: retried with it.
        c.set(&token("two")).unwrap();
        let two = c.recover(Some(&one), http::StatusCode::UNAUTHORIZED, &challenge).await.unwrap().unwrap();
        assert_eq!(two.to_str().unwrap(), "Bearer two");
        assert!(c.status().0);
        let fixed = Credentials::start(Source::Env("PATH".into())).await.unwrap();
        assert!(fixed.set(&token("x")).is_err(), "only a Set source is set from outside");
    }
}
