//! An issuer's keys, fetched from its JWKS URL (named in the configuration, or found in its
//! metadata) and kept: fetched again when a token names a key not seen yet (a rotation), or when
//! they are an hour old — once for any number of requests waiting (single flight), at most once
//! per `MIN_INTERVAL` (a stream of made-up key ids cannot turn the gateway into a flood of
//! fetches), and a failed fetch keeps the last good keys.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::keys::KeySet;
use crate::oauth_client::http::Http;

/// No two fetches closer than this.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// Keys older than this are fetched again on the next request (a key the issuer withdrew stops
/// verifying within the hour).
const MAX_AGE: Duration = Duration::from_secs(3600);

pub struct Remote {
    issuer: String,
    /// `None`: found in the issuer's metadata at the first fetch.
    url: Mutex<Option<String>>,
    http: Http,
    state: Mutex<State>,
    /// Held by the one fetch under way.
    flight: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    keys: Arc<KeySet>,
    /// When the keys were fetched (`None`: never).
    fetched: Option<Instant>,
    /// When a fetch was last tried, and how many were.
    tried: Option<Instant>,
    generation: u64,
}

impl Remote {
    pub fn new(issuer: String, url: Option<String>, http: Http) -> Remote {
        Remote { issuer, url: Mutex::new(url), http, state: Default::default(), flight: Default::default() }
    }

    /// The keys to verify a token naming `kid` with: the kept ones, or fetched ones when `kid`
    /// is not among them or they are old.
    pub async fn keys(&self, kid: Option<&str>) -> Arc<KeySet> {
        let (keys, generation, stale) = {
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let unknown = kid.is_some_and(|k| !s.keys.has(k)) || s.keys.is_empty();
            let old = s.fetched.is_none_or(|t| t.elapsed() > MAX_AGE);
            (s.keys.clone(), s.generation, unknown || old)
        };
        if !stale {
            return keys;
        }
        self.refresh(generation).await;
        self.state.lock().unwrap_or_else(|p| p.into_inner()).keys.clone()
    }

    /// Fetches the keys unless another request did since `seen`, or a fetch was tried too
    /// recently.
    async fn refresh(&self, seen: u64) {
        let _flight = self.flight.lock().await;
        {
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.generation != seen || s.tried.is_some_and(|t| t.elapsed() < MIN_INTERVAL) {
                return;
            }
        }
        let result = self.fetch().await;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.tried = Some(Instant::now());
        s.generation += 1;
        match result {
            Ok(keys) => {
                tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched the issuer's signing keys");
                s.keys = Arc::new(keys);
                s.fetched = Some(Instant::now());
            }
            Err(why) if s.keys.is_empty() => {
                tracing::warn!(issuer = %self.issuer, "cannot fetch the issuer's signing keys: {why}");
            }
            Err(why) => {
                tracing::warn!(issuer = %self.issuer, "cannot fetch the issuer's signing keys, keeping the last ones: {why}");
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let known = self.url.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let url = match known {
            Some(url) => url,
            None => {
                let meta = crate::oauth_client::discovery::server_metadata(&self.http, &self.issuer)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("the issuer publishes no metadata (set jwksUrl)")?;
                let url = meta.jwks_uri.ok_or("the issuer's metadata names no jwks_uri (set jwksUrl)")?;
                *self.url.lock().unwrap_or_else(|p| p.into_inner()) = Some(url.clone());
                url
            }
        };
        let reply = self.http.get(&url).await.map_err(|e| e.to_string())?;
        if !reply.status.is_success() {
            return Err(format!("{} answered HTTP {}", crate::url::display_text(&url), reply.status.as_u16()));
        }
        KeySet::from_jwks(&reply.body)
    }
}
