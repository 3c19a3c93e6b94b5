//! Who calls `serve`: the caller's bearer token, checked as a JWT from the configured issuer,
//! becomes a `Caller`, or the request is refused with the challenge that says where a token
//! comes from (RFC 9728, RFC 6750). Checked once per request, in the layers every request passes
//! (`http::endpoint::handle`), before anything else reads the request.

pub mod bearer;
pub(crate) mod jwks;
pub mod jwt;
pub mod keys;
pub mod metadata;
mod verified;

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::error::{Error, Kind};
use keys::KeySet;

/// What a token may be signed with unless the configuration says otherwise.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// The `jwt` mode's settings, validated (`mcpgate.auth`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Tokens' `iss`, exactly.
    pub issuer: String,
    /// The gateway's public origin: the protected resource's identifier (`resource`).
    pub public_url: String,
    /// A token's `aud` must hold one of these (default: `public_url`).
    pub audiences: Vec<String>,
    pub keys: Keys,
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Scopes every token must carry (403 `insufficient_scope` otherwise); advertised.
    pub scopes: Vec<String>,
    /// The claim that lists the caller's roles (`groups`, `roles`, a namespaced Auth0 claim), if any.
    pub roles_claim: Option<String>,
}

/// Where the issuer's keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Keys {
    /// The `jwks_uri` of the issuer's metadata.
    Discover,
    Url(String),
    /// A file read at load (air-gapped): never fetched.
    Static(StaticKeys),
    /// The gateway's own (`oauth` mode), as they are when a token is checked (they rotate).
    Own(OwnKeys),
}

/// The keys the gateway signs with, asked for as each token is checked.
#[derive(Clone)]
pub struct OwnKeys(pub Arc<dyn Fn() -> Arc<KeySet> + Send + Sync>);

impl PartialEq for OwnKeys {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for OwnKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (self.0)().fmt(f)
    }
}

/// Keys read from a file, compared by what the file said (a reload with the same file keeps them).
#[derive(Clone)]
pub struct StaticKeys {
    pub text: String,
    pub set: Arc<KeySet>,
}

impl PartialEq for StaticKeys {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.set.fmt(f)
    }
}

/// Who made a request, as the token says. The default is nobody in particular: a gateway
/// without authentication (loopback).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// `sub`; `None` when the gateway authenticates no one.
    pub subject: Option<String>,
    pub email: Option<String>,
    /// The OAuth client the token was issued to (`client_id`, or `azp`).
    pub client_id: Option<String>,
    pub scopes: Vec<String>,
    /// The sign-in a token of the gateway's own descends from (`sid`): revoked with it.
    pub grant: Option<String>,
    /// The roles the token names (the configured `rolesClaim`).
    pub roles: Vec<String>,
}

/// A claim that is a list of names: a JSON array of strings, or one space-separated string.
pub fn names_of(claim: Option<&Value>) -> Vec<String> {
    match claim {
        Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

impl Caller {
    fn of(claims: &Map<String, Value>, roles_claim: Option<&str>) -> Caller {
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        // `scope` (RFC 9068, space-separated) or `scp` (a list, or a string, as Entra ID and Okta say it).
        let scopes = names_of(claims.get("scope").or_else(|| claims.get("scp")));
        Caller {
            subject: text("sub"),
            email: text("email"),
            client_id: text("client_id").or_else(|| text("azp")),
            scopes,
            grant: text("sid"),
            roles: roles_claim.map(|c| names_of(claims.get(c))).unwrap_or_default(),
        }
    }
}

/// The `jwt` mode at work: the settings, the issuer's keys, and the tokens verified lately.
pub struct Authenticator {
    settings: Settings,
    remote: Option<jwks::Remote>,
    verified: verified::Verified,
    /// Whether a sign-in (`Caller::grant`) was revoked since its tokens were signed (`oauth` mode).
    revoked: Option<Revoked>,
}

pub type Revoked = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl Authenticator {
    pub fn new(settings: Settings) -> Authenticator {
        let remote = match &settings.keys {
            Keys::Static(_) | Keys::Own(_) => None,
            keys => {
                let url = if let Keys::Url(u) = keys { Some(u.clone()) } else { None };
                let issuer: http::Uri = settings.issuer.parse().unwrap_or_default();
                let timeout = Duration::from_secs(10);
                let http = crate::oauth_client::http::Http::for_server(&issuer, timeout);
                Some(jwks::Remote::new(settings.issuer.clone(), url, http))
            }
        };
        Authenticator { settings, remote, verified: Default::default(), revoked: None }
    }

    /// Tokens whose sign-in `revoked` names are refused, however fresh.
    pub fn with_revocation(mut self, revoked: Revoked) -> Authenticator {
        self.revoked = Some(revoked);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The caller of a request to `endpoint` (its path), or the refusal to answer with.
    pub async fn authenticate(&self, headers: &HeaderMap, endpoint: &str) -> Result<Caller, Error> {
        let s = &self.settings;
        let token = match bearer::of(headers) {
            bearer::Bearer::Token(t) => t,
            bearer::Bearer::None => {
                let why = format!("authentication required: send a bearer token from {}", s.issuer);
                return Err(Error::challenge(Kind::Unauthenticated, why, metadata::challenge(s, endpoint, None)));
            }
            bearer::Bearer::Malformed(why) => return Err(self.invalid(endpoint, why)),
        };
        // A token verified a moment ago is the same token: its signature is not checked again.
        let caller = match self.verified.get(token) {
            Some(caller) => caller,
            None => self.verify(token, endpoint).await?,
        };
        if let (Some(revoked), Some(grant)) = (&self.revoked, &caller.grant)
            && revoked(grant)
        {
            return Err(self.invalid(endpoint, "the token's sign-in was revoked"));
        }
        self.scoped(caller, endpoint)
    }

    /// The checks of a token not seen lately, and the caller it names (kept for a minute, or
    /// until it expires).
    async fn verify(&self, token: &str, endpoint: &str) -> Result<Caller, Error> {
        let s = &self.settings;
        if !bearer::well_formed(token) {
            return Err(self.invalid(endpoint, "the Authorization header is not \"Bearer <token>\""));
        }
        let unverified = jwt::precheck(token, s).map_err(|e| self.invalid(endpoint, &e.to_string()))?;
        let keys = match (&s.keys, &self.remote) {
            (Keys::Static(k), _) => k.set.clone(),
            (Keys::Own(k), _) => (k.0)(),
            (_, Some(remote)) => remote.keys(unverified.header.kid.as_deref()).await,
            (_, None) => Arc::default(),
        };
        if keys.is_empty() {
            let why = "the issuer's signing keys cannot be fetched now; try again";
            return Err(Error::new(Kind::AuthUnavailable, why));
        }
        let claims = jwt::verify(token, &unverified, &keys, s).map_err(|e| self.invalid(endpoint, &e.to_string()))?;
        let caller = Caller::of(&claims, s.roles_claim.as_deref());
        let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
        self.verified.put(token, &caller, exp + s.leeway.as_secs_f64());
        Ok(caller)
    }

    /// The caller, if their token carries every scope required (403 `insufficient_scope`).
    fn scoped(&self, caller: Caller, endpoint: &str) -> Result<Caller, Error> {
        let s = &self.settings;
        let missing: Vec<&str> =
            s.scopes.iter().filter(|want| !caller.scopes.contains(want)).map(String::as_str).collect();
        if !missing.is_empty() {
            let why = format!("the token lacks the scope {}", missing.join(" "));
            tracing::info!(subject = caller.subject.as_deref().unwrap_or("-"), "refused: {why}");
            let challenge = metadata::challenge(s, endpoint, Some(("insufficient_scope", &why)));
            return Err(Error::challenge(Kind::InsufficientScope, why, challenge));
        }
        Ok(caller)
    }

    fn invalid(&self, endpoint: &str, why: &str) -> Error {
        tracing::info!("refused a token: {why}");
        let challenge = metadata::challenge(&self.settings, endpoint, Some(("invalid_token", why)));
        Error::challenge(Kind::Unauthenticated, format!("invalid token: {why}"), challenge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_is_read_from_the_claims_roles_from_the_configured_claim_only() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        let c = claims(serde_json::json!({"sub": "auth0|1", "email": "a@x", "azp": "cli", "scp": ["read", "write"],
            "https://acme.example/roles": ["dev", 7, "ops"], "groups": "admins staff", "sid": "g1"}));
        let caller = Caller::of(&c, Some("https://acme.example/roles"));
        assert_eq!(caller.subject.as_deref(), Some("auth0|1"));
        assert_eq!(caller.client_id.as_deref(), Some("cli"));
        assert_eq!(caller.scopes, vec!["read", "write"]);
        assert_eq!(caller.roles, vec!["dev", "ops"]);
        assert_eq!(caller.grant.as_deref(), Some("g1"));
        assert_eq!(Caller::of(&c, Some("groups")).roles, vec!["admins", "staff"]);
        assert!(Caller::of(&c, None).roles.is_empty(), "no claim configured: no roles from the token");
    }
}
