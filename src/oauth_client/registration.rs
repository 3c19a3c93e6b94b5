//! Who the client is at an authorization server: a pre-registered client id, a Client ID
//! Metadata Document URL (used as the client id where the server supports it), or a dynamic
//! registration (RFC 7591), made once and reused from the store by later logins.

use serde::{Deserialize, Serialize};

use super::AuthError;
use super::discovery::ServerMetadata;
use super::http::Http;
use super::token::AuthMethod;

/// A registration as kept: the public part and, separately, the secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registered {
    pub issuer: String,
    pub client_id: String,
    pub method: AuthMethod,
    /// The redirect URI registered with it (its port is reused by later logins).
    pub redirect_uri: String,
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    client_secret: Option<String>,
    token_endpoint_auth_method: Option<String>,
}

/// Registers mcpgate as a public client for `redirect_uri`: a native one (RFC 8252) when the
/// browser comes back to a loopback listener, as with `mcpgate stdio` and `login`.
pub async fn register(
    http: &Http,
    server: &ServerMetadata,
    redirect_uri: &str,
    scope: Option<&str>,
) -> Result<(Registered, Option<String>), AuthError> {
    let endpoint = server.registration_endpoint.as_deref().ok_or_else(|| {
        AuthError::refused(format!(
            "the authorization server {} supports no dynamic client registration; register a client there and pass --client-id",
            server.issuer
        ))
    })?;
    let mut body = serde_json::json!({
        "client_name": "mcpgate",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "software_id": "mcpgate",
        "software_version": env!("CARGO_PKG_VERSION"),
        "application_type": application_type(redirect_uri),
    });
    if let Some(scope) = scope.filter(|s| !s.is_empty()) {
        body["scope"] = scope.into();
    }
    let reply = http.post_json(endpoint, &body).await?;
    if reply.status.is_server_error() {
        return Err(AuthError::transient(format!("client registration answered {}", reply.status)));
    }
    if !reply.status.is_success() {
        let why =
            reply.json().and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned)).unwrap_or_default();
        return Err(AuthError::refused(format!("client registration was refused ({} {why})", reply.status)));
    }
    let r: RegistrationResponse = serde_json::from_slice(&reply.body)
        .map_err(|e| AuthError::refused(format!("the client registration answer is invalid: {e}")))?;
    let method = r
        .token_endpoint_auth_method
        .as_deref()
        .and_then(AuthMethod::parse)
        .unwrap_or(if r.client_secret.is_some() { AuthMethod::ClientSecretBasic } else { AuthMethod::None });
    tracing::info!(issuer = %server.issuer, "registered mcpgate as an OAuth client");
    Ok((
        Registered {
            issuer: server.issuer.clone(),
            client_id: r.client_id,
            method,
            redirect_uri: redirect_uri.to_owned(),
        },
        r.client_secret,
    ))
}

/// The `application_type` to register (OpenID Connect Dynamic Client Registration, which MCP's
/// SEP-837 requires clients to send): "native" for a redirect to this machine's loopback
/// interface (an app on the user's device), "web" for any other (a gateway's public callback).
/// Servers apply redirect rules by it, e.g. refusing a loopback redirect to a "web" client.
fn application_type(redirect_uri: &str) -> &'static str {
    let uri = redirect_uri.parse::<http::Uri>().ok();
    match uri.as_ref().and_then(http::Uri::host) {
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1") => "native",
        _ => "web",
    }
}

#[cfg(test)]
mod tests {
    use super::application_type;

    #[test]
    fn loopback_redirects_register_native_apps_and_others_web_ones() {
        assert_eq!(application_type("http://127.0.0.1:53682/callback"), "native");
        assert_eq!(application_type("http://localhost:8080/callback"), "native");
        assert_eq!(application_type("http://[::1]:8080/callback"), "native");
        assert_eq!(application_type("https://gateway.example.com/oauth/callback"), "web");
    }
}
