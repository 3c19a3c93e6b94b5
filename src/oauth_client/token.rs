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

/// One token request.
pub async fn request(
    http: &Http,
    server: &ServerMetadata,
    client: &Client,
    grant: Grant<'_>,
    scope: Option<&str>,
    resource: Option<&str>,
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
    let basic = authenticate(client, server, &mut form)?;
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
    let now = SystemTime::now();
    let reply = http.post_form(&server.token_endpoint, body, basic).await?;
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
    if let Some(t) = ok.token_type.as_deref().filter(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(AuthError::refused(format!(
            "the authorization server issued a {t:?} token; mcpgate sends Bearer tokens only"
        )));
    }
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
    let reply = http.post_form(idp_token_endpoint, body, None).await?;
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
