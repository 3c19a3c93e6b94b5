//! The identity provider behind the gateway, as an OpenID Connect relying party: its metadata
//! (fetched on first need, again after a failure), the sign-in request (code flow, PKCE S256, a
//! nonce), and the answer: the code redeemed with the gateway's own client credentials, the ID
//! token checked (signature by the provider's keys, issuer, audience = the gateway's client,
//! expiry, nonce) and read as the user's identity. The provider's tokens stop here.

use std::time::Duration;

use serde_json::Value;

use super::Provider;
use super::records::Identity;
use crate::authn::jwks::Remote;
use crate::authn::{Keys, Settings, jwt};
use crate::oauth_client::discovery::{self, ServerMetadata};
use crate::oauth_client::http::Http;
use crate::oauth_client::token::{self, Client, Grant};

/// The provider as discovered: its metadata and its keys.
struct Found {
    meta: ServerMetadata,
    keys: Remote,
    /// How its ID tokens are checked.
    check: Settings,
}

pub struct Upstream {
    settings: Provider,
    /// The ID-token claim listing the user's roles.
    roles_claim: Option<String>,
    http: Http,
    found: tokio::sync::OnceCell<Found>,
}

impl Upstream {
    pub fn new(settings: Provider, roles_claim: Option<String>) -> Upstream {
        let timeout = Duration::from_secs(10);
        let issuer: http::Uri = settings.issuer.parse().unwrap_or_default();
        let http = Http::for_server(&issuer, timeout);
        Upstream { settings, roles_claim, http, found: tokio::sync::OnceCell::new() }
    }

    async fn found(&self) -> Result<&Found, String> {
        self.found
            .get_or_try_init(|| async {
                let issuer = &self.settings.issuer;
                let meta = discovery::server_metadata(&self.http, issuer)
                    .await
                    .map_err(|e| format!("the identity provider {issuer} cannot be reached: {e}"))?
                    .ok_or_else(|| format!("the identity provider {issuer} publishes no OpenID metadata"))?;
                if meta.authorization_endpoint.is_none() {
                    return Err(format!("the identity provider {issuer} names no authorization endpoint"));
                }
                let keys = Remote::new(meta.issuer.clone(), meta.jwks_uri.clone(), self.http.clone());
                let check = Settings {
                    issuer: meta.issuer.clone(),
                    public_url: String::new(),
                    audiences: vec![self.settings.client_id.clone()],
                    keys: Keys::Discover,
                    algorithms: crate::authn::DEFAULT_ALGORITHMS.to_vec(),
                    leeway: Duration::from_secs(60),
                    scopes: Vec::new(),
                    roles_claim: None,
                };
                Ok(Found { meta, keys, check })
            })
            .await
    }

    /// Where to send the user to sign in.
    pub async fn sign_in_url(
        &self,
        redirect_uri: &str,
        state: &str,
        challenge: &str,
        nonce: &str,
    ) -> Result<String, String> {
        let found = self.found().await?;
        let endpoint = found.meta.authorization_endpoint.as_deref().unwrap_or_default();
        let mut scopes = vec!["openid".to_owned()];
        scopes.extend(self.settings.scopes.iter().filter(|s| *s != "openid").cloned());
        let scope = scopes.join(" ");
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", self.settings.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("scope", scope.as_str()),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ];
        if let Some(a) = &self.settings.audience {
            params.push(("audience", a));
        }
        Ok(super::wire::with_query(endpoint, &params))
    }

    /// Whether the provider says it sends `iss` with its answer (RFC 9207): then it must.
    pub async fn sends_iss(&self) -> Result<(bool, String), String> {
        let found = self.found().await?;
        Ok((found.meta.authorization_response_iss_parameter_supported, found.meta.issuer.clone()))
    }

    /// The user who signed in: the code redeemed, the ID token checked.
    pub async fn redeem(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<Identity, String> {
        let found = self.found().await?;
        let secret = self.settings.client_secret.as_ref().map(|s| s.0.clone());
        let method = token::choose_method(None, secret.is_some(), false, &found.meta);
        let client = Client { id: self.settings.client_id.clone(), secret, method, key: None };
        let tokens = token::request(
            &self.http,
            &found.meta,
            &client,
            Grant::Code { code, verifier, redirect_uri },
            None,
            None,
            None,
        )
        .await
        .map_err(|e| e.message)?;
        let id_token = tokens.id_token.ok_or("the identity provider returned no ID token (is `openid` allowed?)")?;
        let unverified = jwt::precheck(&id_token, &found.check).map_err(|e| format!("the ID token: {e}"))?;
        let keys = found.keys.keys(unverified.header.kid.as_deref()).await;
        let claims =
            jwt::verify(&id_token, &unverified, &keys, &found.check).map_err(|e| format!("the ID token: {e}"))?;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err("the ID token does not carry this sign-in's nonce".into());
        }
        // OpenID Connect Core §3.1.3.7: with several audiences, the token says whom it is for.
        let several = claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1);
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != self.settings.client_id => {
                return Err("the ID token was issued to another client (azp)".into());
            }
            None if several => {
                return Err("the ID token has several audiences and names none as its party (azp)".into());
            }
            _ => {}
        }
        identity(&claims, self.roles_claim.as_deref(), self.settings.trust_email)
    }
}

/// Who the ID token's claims say signed in. An address the provider has not said it verified
/// names nobody (the users file is keyed by address, and some providers let users set any: the
/// "nOAuth" attack), unless the configuration trusts the provider's addresses.
fn identity(
    claims: &serde_json::Map<String, Value>,
    roles_claim: Option<&str>,
    trust_email: bool,
) -> Result<Identity, String> {
    let text = |k: &str| claims.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
    let verified = trust_email || claims.get("email_verified").and_then(Value::as_bool) == Some(true);
    Ok(Identity {
        sub: text("sub").ok_or("the ID token has no subject")?,
        email: text("email").filter(|_| verified),
        name: text("name"),
        roles: roles_claim.map(|c| crate::authn::names_of(claims.get(c))).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_address_counts_only_when_verified_or_trusted() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        let verified = claims(json!({"sub": "1", "email": "a@x", "email_verified": true, "groups": ["dev"]}));
        let unsaid = claims(json!({"sub": "2", "email": "a@x"}));
        let denied = claims(json!({"sub": "3", "email": "a@x", "email_verified": false}));
        assert_eq!(identity(&verified, Some("groups"), false).unwrap().email.as_deref(), Some("a@x"));
        assert_eq!(identity(&verified, Some("groups"), false).unwrap().roles, vec!["dev"]);
        assert_eq!(identity(&unsaid, None, false).unwrap().email, None);
        assert_eq!(identity(&denied, None, false).unwrap().email, None);
        assert_eq!(identity(&unsaid, None, true).unwrap().email.as_deref(), Some("a@x"), "trusted");
        assert!(identity(&claims(json!({"email": "a@x"})), None, true).is_err(), "no subject");
    }
}
