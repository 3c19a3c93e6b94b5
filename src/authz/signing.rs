//! The gateway's own signing keys: ES256 (P-256), created on first run, sealed in the state,
//! replaced by a new one when the current is older than `ROTATE_AFTER` (checked at start and every
//! hour), the previous ones still published — and still verifying — until the tokens they signed
//! have expired. Access tokens are RFC 9068
//! JWTs for the gateway itself; `/jwks` publishes the public halves (RFC 7517).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use http::header::{CACHE_CONTROL, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::state::{State, Table, now_secs};
use super::wire::{self, Request};
use crate::authn::keys::KeySet;
use crate::http::body::Body;

/// How long a key signs before a new one takes over.
pub const ROTATE_AFTER: Duration = Duration::from_secs(30 * 86400);
const PREFIX: &str = "es256-";

#[derive(Serialize, Deserialize)]
struct Record {
    created: u64,
    /// The PKCS#8 private key, sealed for `signing-key:<kid>`.
    pkcs8: String,
}

pub struct Signing {
    current: std::sync::RwLock<Arc<Keys>>,
}

/// The keys in force: the one that signs, and every one that verifies.
struct Keys {
    created: u64,
    kid: String,
    key: EncodingKey,
    /// The JWK Set document (public keys, current first).
    jwks: String,
    verifying: Arc<KeySet>,
}

fn owner(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// The public JWK of a PKCS#8 P-256 key, and its `kid` (a hash of the public key).
fn public_jwk(pkcs8: &[u8]) -> Result<(String, Value), String> {
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
        .map_err(|e| format!("a signing key cannot be read: {e}"))?;
    let point = pair.public_key().as_ref();
    if point.len() != 65 {
        return Err("a signing key is not an uncompressed P-256 point".into());
    }
    let hash = ring::digest::digest(&ring::digest::SHA256, point);
    let kid = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..12]));
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    Ok((kid, jwk))
}

impl Signing {
    /// The keys in the state (a new one if none is younger than `ROTATE_AFTER`).
    pub async fn load(
        state: &dyn State,
        sealer: &crate::store::Sealer,
        settings: &super::Settings,
    ) -> Result<Signing, String> {
        let keys = keys_at(state, sealer, settings, now_secs()).await?;
        Ok(Signing { current: std::sync::RwLock::new(Arc::new(keys)) })
    }

    fn current(&self) -> Arc<Keys> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts a new key in force if the current one is due (at `now`); whether it did.
    pub async fn rotate_if_due(
        &self,
        state: &dyn State,
        sealer: &crate::store::Sealer,
        settings: &super::Settings,
        now: u64,
    ) -> Result<bool, String> {
        if now.saturating_sub(self.current().created) < ROTATE_AFTER.as_secs() {
            return Ok(false);
        }
        let keys = keys_at(state, sealer, settings, now).await?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(true)
    }

    /// A signed access token (RFC 9068) with these claims.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let keys = self.current();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(keys.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &keys.key).map_err(|e| format!("signing a token failed: {e}"))
    }

    /// The keys that verify the gateway's tokens now.
    pub fn verifying(&self) -> Arc<KeySet> {
        self.current().verifying.clone()
    }

    /// `GET /jwks`.
    pub fn answer(&self, req: &Request) -> http::Response<Body> {
        if !matches!(req.method, http::Method::GET | http::Method::HEAD) {
            return wire::method_not_allowed("GET");
        }
        let mut r = wire::json(StatusCode::OK, &serde_json::from_str(&self.current().jwks).unwrap_or_default());
        r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        r.headers_mut().remove(http::header::PRAGMA);
        r
    }
}

/// The keys in the state as of `now`, a new one made (and stored) if none is younger than
/// `ROTATE_AFTER`.
async fn keys_at(
    state: &dyn State,
    sealer: &crate::store::Sealer,
    settings: &super::Settings,
    now: u64,
) -> Result<Keys, String> {
    {
        let mut keys: Vec<(u64, String, Vec<u8>, Value)> = Vec::new();
        for (kid, raw) in state.all(Table::Key).await.map_err(|e| e.to_string())? {
            if !kid.starts_with(PREFIX) {
                continue;
            }
            let Ok(record) = serde_json::from_slice::<Record>(&raw) else { continue };
            let Some(pkcs8) = sealer.open(&owner(&kid), &record.pkcs8) else {
                tracing::warn!(kid, "a signing key does not open with this state's key; left out");
                continue;
            };
            let (derived, jwk) = public_jwk(&pkcs8)?;
            if derived == kid {
                keys.push((record.created, kid, pkcs8, jwk));
            }
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.0));
        if keys.first().is_none_or(|k| now.saturating_sub(k.0) >= ROTATE_AFTER.as_secs()) {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| "a signing key cannot be generated")?;
            let pkcs8 = pkcs8.as_ref().to_vec();
            let (kid, jwk) = public_jwk(&pkcs8)?;
            let record = Record { created: now, pkcs8: sealer.seal(&owner(&kid), &pkcs8)? };
            // Published until every token it signed has expired.
            let ttl = ROTATE_AFTER + settings.access_ttl + Duration::from_secs(86400);
            let raw = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
            state.put(Table::Key, &kid, &raw, Some(ttl)).await.map_err(|e| e.to_string())?;
            tracing::info!(kid, "created a new signing key");
            keys.insert(0, (now, kid, pkcs8, jwk));
        }
        let jwks = json!({"keys": keys.iter().map(|k| k.3.clone()).collect::<Vec<_>>()}).to_string();
        let set = KeySet::from_jwks(jwks.as_bytes())?;
        let (created, kid, pkcs8, _) = keys.swap_remove(0);
        Ok(Keys { created, kid, key: EncodingKey::from_ec_der(&pkcs8), jwks, verifying: Arc::new(set) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_due_key_is_replaced_and_the_old_one_still_verifies() {
        let dir = std::env::temp_dir().join(format!("mcpgate-signing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = crate::authz::state::Embedded::open(&dir).unwrap();
        let sealer = crate::store::Sealer::load_or_create(&dir).unwrap();
        let settings = crate::authz::Settings {
            public_url: "https://gw.example".into(),
            provider: crate::authz::Provider {
                issuer: "https://idp.example".into(),
                client_id: "gw".into(),
                client_secret: None,
                scopes: vec![],
                audience: None,
                trust_email: false,
            },
            state_dir: dir.clone(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(86400),
            refresh_grace: Duration::from_secs(30),
            scopes: vec![],
            roles_claim: None,
        };
        let signing = Signing::load(&state, &sealer, &settings).await.unwrap();
        let kid_of = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let before = signing.sign(&json!({"sub": "a"})).unwrap();
        let now = now_secs();
        assert!(!signing.rotate_if_due(&state, &sealer, &settings, now + 3600).await.unwrap(), "not yet due");
        // A restart within the period keeps the key.
        let again = Signing::load(&state, &sealer, &settings).await.unwrap();
        assert_eq!(kid_of(&again.sign(&json!({})).unwrap()), kid_of(&before));
        assert!(signing.rotate_if_due(&state, &sealer, &settings, now + ROTATE_AFTER.as_secs() + 1).await.unwrap());
        let after = signing.sign(&json!({"sub": "a"})).unwrap();
        assert_ne!(kid_of(&after), kid_of(&before), "a new key signs");
        let keys = signing.verifying();
        for token in [&before, &after] {
            let header = jsonwebtoken::decode_header(token).unwrap();
            assert!(keys.find(header.kid.as_deref(), Algorithm::ES256).is_some(), "both keys verify");
        }
        let jwks: Value = serde_json::from_str(&signing.current().jwks).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(jwks["keys"][0]["kid"], json!(kid_of(&after)), "the signing key first");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
