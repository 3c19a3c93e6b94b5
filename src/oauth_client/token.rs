//! The token endpoint (RFC 6749 §3.2): redeeming a code, refreshing, client credentials, each
//! with the client's authentication method and the resource indicator (RFC 8707). Errors are
//! sorted into what they mean for the stored credential: `invalid_grant` kills it, a network
//! failure or 5xx keeps it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use http::HeaderValue;
use serde::{Deserialize, Serialize};

use super::AuthError;
use super::discovery::ServerMetadata;
use super::dpop::{Key, Nonces};
use super::http::Http;
use super::jwt::SigningKey;

/// How the client proves itself at the token endpoint (RFC 7591 §2 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[clap(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMethod> {
        [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost, AuthMethod::None, AuthMethod::PrivateKeyJwt]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// The client as the token endpoint sees it. No `Debug`: it holds secrets.
#[derive(Clone)]
pub struct Client {
    pub id: String,
    pub secret: Option<String>,
    pub method: AuthMethod,
    pub key: Option<Arc<SigningKey>>,
}

/// Tokens as issued. No `Debug`: they are secrets.
#[derive(Clone)]
pub struct Tokens {
    pub access_token: String,
    pub expires_at: Option<SystemTime>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    /// An OpenID provider's ID token (the gateway as authorization server reads who signed in).
    pub id_token: Option<String>,
    /// `token_type` DPoP: bound to the key of the request's proof (RFC 9449 §5).
    pub dpop_bound: bool,
}

pub enum Grant<'a> {
    Code {
        code: &'a str,
        verifier: &'a str,
        redirect_uri: &'a str,
    },
    Refresh {
        refresh_token: &'a str,
    },
    ClientCredentials,
    /// RFC 7523 §2.1: an assertion (here an ID-JAG from the user's identity provider).
    JwtBearer {
        assertion: &'a str,
    },
    /// RFC 8693: a caller's access token for one addressed to `audience` (and the request's
    /// `resource`).
    TokenExchange {
        subject_token: &'a str,
        audience: Option<&'a str>,
    },
}

impl Grant<'_> {
    fn name(&self) -> &'static str {
        match self {
            Grant::Code { .. } => "authorization_code",
            Grant::Refresh { .. } => "refresh_token",
            Grant::ClientCredentials => "client_credentials",
            Grant::JwtBearer { .. } => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            Grant::TokenExchange { .. } => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }
}

#[derive(Deserialize)]
struct Success {
    access_token: String,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
    scope: Option<String>,
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct Failure {
    error: String,
    error_description: Option<String>,
}

/// DPoP at the token endpoint (RFC 9449 §5): the key the tokens are to be bound to, and the
/// nonces the authorization server hands out (§8).
#[derive(Clone, Copy)]
pub struct Bind<'a> {
    pub key: &'a Key,
    pub nonces: &'a Nonces,
}

/// One token request. With `dpop`, it carries a proof, and is sent once more with the server's
/// nonce if it answers `use_dpop_nonce` (once: a server that keeps asking is refused).
pub async fn request(
    http: &Http,
    server: &ServerMetadata,
    client: &Client,
    grant: Grant<'_>,
    scope: Option<&str>,
    resource: Option<&str>,
    dpop: Option<Bind<'_>>,
) -> Result<Tokens, AuthError> {
    let grant_name = grant.name();
    let mut form: Vec<(&str, String)> = vec![("grant_type", grant_name.to_owned())];
    match &grant {
        Grant::Code { code, verifier, redirect_uri } => {
            form.push(("code", (*code).to_owned()));
            form.push(("code_verifier", (*verifier).to_owned()));
            form.push(("redirect_uri", (*redirect_uri).to_owned()));
        }
        Grant::Refresh { refresh_token } => form.push(("refresh_token", (*refresh_token).to_owned())),
        Grant::ClientCredentials => {}
        Grant::JwtBearer { assertion } => form.push(("assertion", (*assertion).to_owned())),
        Grant::TokenExchange { subject_token, audience } => {
            const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
            form.push(("subject_token", (*subject_token).to_owned()));
            form.push(("subject_token_type", ACCESS_TOKEN.to_owned()));
            form.push(("requested_token_type", ACCESS_TOKEN.to_owned()));
            if let Some(a) = audience {
                form.push(("audience", (*a).to_owned()));
            }
        }
    }
    if let Some(scope) = scope.filter(|s| !s.is_empty()) {
        form.push(("scope", scope.to_owned()));
    }
    if let Some(resource) = resource {
        form.push(("resource", resource.to_owned()));
    }
    let endpoint = match dpop {
        Some(_) => Some(super::dpop::endpoint(&server.token_endpoint).ok_or_else(|| {
            AuthError::refused("the authorization server's token endpoint is not a URL a DPoP proof can name")
        })?),
        None => None,
    };
    let htu = endpoint.as_ref().map(super::dpop::htu);
    let mut nonce_retried = false;
    let (reply, now) = loop {
        // Built anew for a retry: a client assertion's `jti` is not to be sent twice.
        let mut attempt = form.clone();
        let basic = authenticate(client, server, &mut attempt)?;
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&attempt).finish();
        let proof = match (dpop, &endpoint, &htu) {
            (Some(d), Some(endpoint), Some(htu)) => {
                let nonce = d.nonces.get(endpoint);
                Some(
                    d.key
                        .header("POST", htu, nonce.as_deref(), None)
                        .ok_or_else(|| AuthError::refused("could not sign a DPoP proof for the token request"))?,
                )
            }
            _ => None,
        };
        let now = SystemTime::now();
        let reply = http.post_form(&server.token_endpoint, body, basic, proof).await?;
        let (Some(d), Some(endpoint)) = (dpop, &endpoint) else { break (reply, now) };
        let fresh_nonce = d.nonces.note(endpoint, &reply.headers);
        // RFC 9449 §8: a 400 `use_dpop_nonce` with a `DPoP-Nonce` asks for the same request with it.
        let wants_nonce = reply.status == http::StatusCode::BAD_REQUEST
            && serde_json::from_slice::<Failure>(&reply.body).is_ok_and(|f| f.error == "use_dpop_nonce");
        if wants_nonce && fresh_nonce && !nonce_retried {
            tracing::debug!("the token endpoint asks for a DPoP nonce; sending the request again with it");
            nonce_retried = true;
            continue;
        }
        break (reply, now);
    };
    if reply.status.is_server_error() {
        return Err(AuthError::transient(format!(
            "the token endpoint answered {} to a {grant_name} request",
            reply.status
        )));
    }
    if !reply.status.is_success() {
        let failure: Option<Failure> = serde_json::from_slice(&reply.body).ok();
        let Some(f) = failure else {
            return Err(AuthError::refused(format!(
                "the token endpoint answered {} to a {grant_name} request",
                reply.status
            )));
        };
        let detail = match f.error_description {
            Some(d) => format!("{} ({})", f.error, d.chars().take(200).collect::<String>()),
            None => f.error.clone(),
        };
        let message = format!("the authorization server refused the {grant_name} request: {detail}");
        return Err(match f.error.as_str() {
            "invalid_grant" => AuthError::invalid_grant(message),
            "invalid_client" | "unauthorized_client" => AuthError::invalid_client(message),
            "temporarily_unavailable" => AuthError::transient(message),
            _ => AuthError::refused(message),
        });
    }
    let ok: Success = serde_json::from_slice(&reply.body).map_err(|e| {
        AuthError::refused(format!("the token endpoint's {grant_name} answer is not a token response: {e}"))
    })?;
    // RFC 9449 §5: `DPoP` is a token bound to the proof's key, usable only with proofs; a
    // missing type is taken for Bearer, as before.
    let dpop_bound = match ok.token_type.as_deref() {
        None => false,
        Some(t) if t.eq_ignore_ascii_case("bearer") => false,
        Some(t) if t.eq_ignore_ascii_case("dpop") && dpop.is_some() => true,
        Some(t) if t.eq_ignore_ascii_case("dpop") => {
            return Err(AuthError::refused(
                "the authorization server issued a DPoP-bound token to a request without a DPoP proof",
            ));
        }
        Some(t) => {
            return Err(AuthError::refused(format!(
                "the authorization server issued a {:?} token; mcpgate sends Bearer and DPoP tokens only",
                t.chars().take(40).collect::<String>()
            )));
        }
    };
    if ok.access_token.is_empty() || !ok.access_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::refused(
            "the authorization server issued an access token that cannot be sent in a header",
        ));
    }
    let expires_in = ok.expires_in.as_ref().and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()));
    let expires_at = expires_in
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| now + Duration::from_secs_f64(s.min(10.0 * 365.0 * 86400.0)))
        .or_else(|| crate::token::jwt_expiry(&ok.access_token));
    Ok(Tokens {
        access_token: ok.access_token,
        expires_at,
        refresh_token: ok.refresh_token,
        scope: ok.scope,
        id_token: ok.id_token,
        dpop_bound,
    })
}

/// RFC 8693 token exchange at the user's identity provider: their ID token for an Identity
/// Assertion JWT Authorization Grant (ID-JAG) addressed to `audience` (the MCP server's
/// authorization server) for `resource` — the first leg of Cross-App Access (SEP-990).
pub async fn exchange_id_token(
    http: &Http,
    idp_token_endpoint: &str,
    idp_client_id: Option<&str>,
    id_token: &str,
    audience: &str,
    resource: &str,
    scope: Option<&str>,
) -> Result<String, AuthError> {
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("requested_token_type", "urn:ietf:params:oauth:token-type:id-jag"),
        ("subject_token", id_token),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
        ("audience", audience),
        ("resource", resource),
    ];
    if let Some(id) = idp_client_id {
        form.push(("client_id", id));
    }
    if let Some(s) = scope.filter(|s| !s.is_empty()) {
        form.push(("scope", s));
    }
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let reply = http.post_form(idp_token_endpoint, body, None, None).await?;
    if reply.status.is_server_error() {
        return Err(AuthError::transient(format!("the identity provider's token exchange answered {}", reply.status)));
    }
    let doc = reply.json().unwrap_or_default();
    if !reply.status.is_success() {
        let error = doc.get("error").and_then(|e| e.as_str()).unwrap_or("no error code");
        return Err(AuthError::refused(format!(
            "the identity provider refused the token exchange ({} {error})",
            reply.status
        )));
    }
    match doc.get("access_token").and_then(|t| t.as_str()) {
        Some(t) if !t.is_empty() => Ok(t.to_owned()),
        _ => Err(AuthError::refused("the identity provider's token exchange returned no assertion")),
    }
}

/// Adds the client's credentials to the form, or returns the Basic header to send.
fn authenticate(
    client: &Client,
    server: &ServerMetadata,
    form: &mut Vec<(&str, String)>,
) -> Result<Option<HeaderValue>, AuthError> {
    let secret = || {
        client.secret.clone().ok_or_else(|| {
            AuthError::refused(format!(
                "the {} method needs a client secret (--client-secret or OIDC_CLIENT_SECRET)",
                client.method.as_str()
            ))
        })
    };
    match client.method {
        AuthMethod::None => form.push(("client_id", client.id.clone())),
        AuthMethod::ClientSecretPost => {
            form.push(("client_id", client.id.clone()));
            form.push(("client_secret", secret()?));
        }
        AuthMethod::ClientSecretBasic => {
            // RFC 6749 §2.3.1: both parts form-encoded before base64.
            let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", encode(&client.id), encode(&secret()?));
            let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
            let mut header = HeaderValue::try_from(value)
                .map_err(|_| AuthError::refused("the client credentials cannot be sent in a header"))?;
            header.set_sensitive(true);
            return Ok(Some(header));
        }
        AuthMethod::PrivateKeyJwt => {
            let key =
                client.key.as_ref().ok_or_else(|| AuthError::refused("private_key_jwt needs --private-key-file"))?;
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let jti = super::pkce::random_token(16).map_err(AuthError::refused)?;
            // RFC 7523 §3: the audience identifies the authorization server (its issuer).
            let claims = serde_json::json!({
                "iss": client.id, "sub": client.id, "aud": server.issuer,
                "iat": now, "exp": now + 300, "jti": jti,
            });
            let assertion = key.sign(&claims).map_err(AuthError::refused)?;
            form.push(("client_id", client.id.clone()));
            form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()));
            form.push(("client_assertion", assertion));
        }
    }
    Ok(None)
}

/// The method to use: configured, else what the registration said, else the best the server
/// supports for the credentials we have.
pub fn choose_method(
    configured: Option<AuthMethod>,
    has_secret: bool,
    has_key: bool,
    server: &ServerMetadata,
) -> AuthMethod {
    if let Some(m) = configured {
        return m;
    }
    if has_key {
        return AuthMethod::PrivateKeyJwt;
    }
    if !has_secret {
        return AuthMethod::None;
    }
    if server.supports_auth_method("client_secret_basic") {
        AuthMethod::ClientSecretBasic
    } else if server.supports_auth_method("client_secret_post") {
        AuthMethod::ClientSecretPost
    } else {
        AuthMethod::ClientSecretBasic
    }
}
