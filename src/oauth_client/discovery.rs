//! Finding the authorization server of an MCP server, in the order the MCP authorization spec
//! (2025-11-25) gives: protected-resource metadata (RFC 9728) from the challenge's
//! `resource_metadata`, else its well-known URIs; then the authorization server's metadata
//! (RFC 8414, then OpenID Connect Discovery), whose `issuer` must be the one asked for.
//! Servers of the 2025-03-26 revision publish no resource metadata: their origin is the
//! authorization server, with default endpoints when it publishes no metadata either.

use http::Uri;
use serde::{Deserialize, Serialize};

use super::http::Http;
use super::{AuthError, Challenge};

/// RFC 9728 protected-resource metadata (the fields a client uses).
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceMetadata {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Option<Vec<String>>,
    /// RFC 9728 §2: the resource takes DPoP-bound tokens only. Read leniently (only `true`
    /// counts): a malformed value must not stop a sign-in that works without it.
    #[serde(default)]
    pub dpop_bound_access_tokens_required: Option<serde_json::Value>,
    /// RFC 9728 §2: the algorithms the resource checks DPoP proofs in (it takes DPoP). Lenient
    /// as above.
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Option<serde_json::Value>,
}

/// RFC 8414 / OIDC metadata (the fields a client uses); kept in the store for refreshes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    pub scopes_supported: Option<Vec<String>>,
    pub code_challenge_methods_supported: Option<Vec<String>>,
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    pub grant_types_supported: Option<Vec<String>>,
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Where its signing keys are (for `serve` validating the tokens it issues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 9449 §5.1: the algorithms it takes DPoP proofs in, where it takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

impl ServerMetadata {
    pub fn supports_s256(&self) -> bool {
        self.code_challenge_methods_supported.as_ref().is_some_and(|m| m.iter().any(|x| x == "S256"))
    }

    /// It advertises DPoP with an algorithm mcpgate signs (ES256).
    pub fn supports_dpop(&self) -> bool {
        self.dpop_signing_alg_values_supported.as_ref().is_some_and(|a| a.iter().any(|x| x == super::dpop::ALG))
    }

    pub fn supports_auth_method(&self, method: &str) -> bool {
        match &self.token_endpoint_auth_methods_supported {
            Some(list) => list.iter().any(|m| m == method),
            // RFC 8414 §2: the default is client_secret_basic.
            None => method == "client_secret_basic",
        }
    }
}

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The resource indicator to request tokens for (RFC 8707).
    pub resource: String,
    pub server: ServerMetadata,
    /// Scopes the resource metadata lists (the fallback when the challenge names none).
    pub resource_scopes: Option<Vec<String>>,
    /// The server published no metadata at all (2025-03-26 default endpoints).
    pub defaults: bool,
    /// The resource's metadata requires DPoP-bound tokens (RFC 9728 §2).
    pub dpop_required: bool,
    /// The resource's metadata says it checks DPoP proofs in ES256 (RFC 9728 §2).
    pub dpop_offered: bool,
}

/// `scheme://authority` of a URL.
pub fn origin(uri: &Uri) -> String {
    format!("{}://{}", uri.scheme_str().unwrap_or("https"), uri.authority().map(|a| a.as_str()).unwrap_or(""))
}

/// The canonical URI of an MCP server (RFC 8707 / MCP §Resource Parameter): lowercase scheme and
/// host, no default port, no query or fragment, no trailing slash but for the root.
pub fn canonical_resource(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    let port = match (scheme.as_str(), uri.port_u16()) {
        ("https", Some(443)) | ("http", Some(80)) | (_, None) => String::new(),
        (_, Some(p)) => format!(":{p}"),
    };
    let path = uri.path();
    let path = if path == "/" { "" } else { path.trim_end_matches('/') };
    format!("{scheme}://{host}{port}{path}")
}

/// Whether metadata naming `resource` may be used for the server at `server` (same origin, the
/// server's path within the resource's): what the TypeScript SDK's `checkResourceAllowed` does.
pub fn resource_covers(resource: &str, server: &Uri) -> bool {
    let Ok(r) = resource.parse::<Uri>() else { return false };
    if r.scheme().is_none() || r.host().is_none() {
        return false;
    }
    let (rc, sc) = (canonical_resource(&r), canonical_resource(server));
    sc == rc || sc.starts_with(&format!("{rc}/"))
}

/// Protected-resource metadata URLs to try, in order.
fn resource_metadata_urls(server: &Uri, challenge: Option<&Challenge>) -> Vec<String> {
    let mut urls = Vec::new();
    if let Some(url) = challenge.and_then(|c| c.resource_metadata.clone()) {
        urls.push(url);
    }
    let base = origin(server);
    let path = server.path().trim_end_matches('/');
    if !path.is_empty() {
        urls.push(format!("{base}/.well-known/oauth-protected-resource{path}"));
    }
    urls.push(format!("{base}/.well-known/oauth-protected-resource"));
    urls
}

/// Authorization-server metadata URLs for an issuer, in the MCP spec's order.
pub fn server_metadata_urls(issuer: &str) -> Vec<String> {
    let Ok(uri) = issuer.parse::<Uri>() else { return Vec::new() };
    let base = origin(&uri);
    let path = uri.path().trim_end_matches('/');
    if path.is_empty() {
        vec![
            format!("{base}/.well-known/oauth-authorization-server"),
            format!("{base}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{base}/.well-known/oauth-authorization-server{path}"),
            format!("{base}/.well-known/openid-configuration{path}"),
            format!("{base}{path}/.well-known/openid-configuration"),
        ]
    }
}

/// The first document among `urls` that answers 200 with JSON. A 4xx moves on to the next URL;
/// an unreachable server or a 5xx stops discovery (it may heal: a transient error).
async fn first_document(http: &Http, urls: &[String]) -> Result<Option<(String, serde_json::Value)>, AuthError> {
    for url in urls {
        let reply = http.get(url).await?;
        if reply.status.is_server_error() {
            return Err(AuthError::transient(format!("{} answered {}", shorten(url), reply.status)));
        }
        if reply.status.is_success()
            && let Some(doc) = reply.json().filter(|d| d.is_object())
        {
            return Ok(Some((url.clone(), doc)));
        }
        tracing::debug!(url = %shorten(url), status = reply.status.as_u16(), "no metadata here");
    }
    Ok(None)
}

fn shorten(url: &str) -> String {
    url.parse::<Uri>().map(|u| crate::url::display(&u)).unwrap_or_else(|_| "<url>".into())
}

/// Discovers the authorization server for the MCP server at `server`.
pub async fn discover(http: &Http, server: &Uri, challenge: Option<&Challenge>) -> Result<Found, AuthError> {
    let prm = first_document(http, &resource_metadata_urls(server, challenge)).await?;
    let Some((prm_url, doc)) = prm else {
        // 2025-03-26: the MCP server's origin is the authorization server.
        tracing::debug!("no protected-resource metadata; using the server's origin as the authorization server");
        let issuer = origin(server);
        return match fetch_metadata(http, &issuer, Issuer::SameOrigin).await? {
            Some(meta) => Ok(Found {
                resource: canonical_resource(server),
                server: meta,
                resource_scopes: None,
                defaults: false,
                dpop_required: false,
                dpop_offered: false,
            }),
            None => Ok(Found {
                resource: canonical_resource(server),
                server: default_endpoints(&issuer),
                resource_scopes: None,
                defaults: true,
                dpop_required: false,
                dpop_offered: false,
            }),
        };
    };
    let prm: ResourceMetadata = serde_json::from_value(doc).map_err(|e| {
        AuthError::refused(format!("the protected-resource metadata at {} is invalid: {e}", shorten(&prm_url)))
    })?;
    if !resource_covers(&prm.resource, server) {
        return Err(AuthError::refused(format!(
            "the protected-resource metadata names the resource {:?}, which is not this server ({}); refusing to sign in",
            prm.resource,
            crate::url::display(server)
        )));
    }
    let issuer = prm.authorization_servers.first().cloned().ok_or_else(|| {
        AuthError::refused(format!(
            "the protected-resource metadata at {} names no authorization server",
            shorten(&prm_url)
        ))
    })?;
    let meta = server_metadata(http, &issuer).await?.ok_or_else(|| {
        AuthError::refused(format!("the authorization server {issuer} publishes no metadata (RFC 8414 or OpenID)"))
    })?;
    let (dpop_required, dpop_offered) = prm.dpop();
    Ok(Found {
        resource: prm.resource,
        server: meta,
        resource_scopes: prm.scopes_supported,
        defaults: false,
        dpop_required,
        dpop_offered,
    })
}

/// With a configured issuer (no discovery): what the server's protected-resource metadata says
/// of DPoP — (`dpop_required`, `dpop_offered`) as `Found` has them — when it publishes metadata
/// that covers it. Nothing else of it is used, and no metadata, a failure to get it, or another
/// resource's says nothing: (false, false).
pub async fn resource_dpop(http: &Http, server: &Uri, challenge: Option<&Challenge>) -> (bool, bool) {
    let doc = match first_document(http, &resource_metadata_urls(server, challenge)).await {
        Ok(Some((_, doc))) => doc,
        Ok(None) => return (false, false),
        Err(e) => {
            tracing::debug!("no protected-resource metadata to read DPoP from: {e}");
            return (false, false);
        }
    };
    match serde_json::from_value::<ResourceMetadata>(doc) {
        Ok(prm) if resource_covers(&prm.resource, server) => prm.dpop(),
        _ => (false, false),
    }
}

impl ResourceMetadata {
    /// (`dpop_bound_access_tokens_required` is `true`, ES256 is in
    /// `dpop_signing_alg_values_supported`).
    fn dpop(&self) -> (bool, bool) {
        let required = self.dpop_bound_access_tokens_required == Some(serde_json::Value::Bool(true));
        let offered = self
            .dpop_signing_alg_values_supported
            .as_ref()
            .and_then(|v| v.as_array())
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(super::dpop::ALG)));
        (required, offered)
    }
}

/// How strictly the metadata's `issuer` must match the URL it was derived from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Issuer {
    /// RFC 8414 §3.3: identical (a lone trailing slash aside).
    Exact,
    /// 2025-03-26 servers: the metadata sits at the MCP server's origin and may name an issuer
    /// with a path there (`https://mcp.example/oauth`); it must stay on that origin.
    SameOrigin,
}

/// The metadata of the authorization server `issuer`, validated; `None` if it publishes none.
pub async fn server_metadata(http: &Http, issuer: &str) -> Result<Option<ServerMetadata>, AuthError> {
    fetch_metadata(http, issuer, Issuer::Exact).await
}

async fn fetch_metadata(http: &Http, issuer: &str, rule: Issuer) -> Result<Option<ServerMetadata>, AuthError> {
    let Some((url, doc)) = first_document(http, &server_metadata_urls(issuer)).await? else { return Ok(None) };
    let meta: ServerMetadata = serde_json::from_value(doc).map_err(|e| {
        AuthError::refused(format!("the authorization server metadata at {} is invalid: {e}", shorten(&url)))
    })?;
    let matches = match rule {
        Issuer::Exact => meta.issuer.trim_end_matches('/') == issuer.trim_end_matches('/'),
        Issuer::SameOrigin => meta.issuer.parse::<Uri>().is_ok_and(|u| origin(&u).eq_ignore_ascii_case(issuer)),
    };
    // A mix-up attack otherwise: metadata of one server claiming to be another.
    if !matches {
        return Err(AuthError::refused(format!(
            "the authorization server metadata at {} claims the issuer {:?}, not {issuer:?}; refusing to sign in",
            shorten(&url),
            meta.issuer
        )));
    }
    Ok(Some(meta))
}

/// 2025-03-26 §2.3.3: without metadata, the endpoints are fixed paths on the server's origin.
fn default_endpoints(issuer: &str) -> ServerMetadata {
    ServerMetadata {
        issuer: issuer.to_owned(),
        authorization_endpoint: Some(format!("{issuer}/authorize")),
        token_endpoint: format!("{issuer}/token"),
        registration_endpoint: Some(format!("{issuer}/register")),
        // PKCE is mandatory in that revision, so S256 can be assumed.
        code_challenge_methods_supported: Some(vec!["S256".into()]),
        ..ServerMetadata::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_orders() {
        let server: Uri = "https://mcp.example.com/public/mcp".parse().unwrap();
        let c = Challenge { resource_metadata: Some("https://mcp.example.com/prm".into()), ..Challenge::default() };
        assert_eq!(
            resource_metadata_urls(&server, Some(&c)),
            [
                "https://mcp.example.com/prm",
                "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            server_metadata_urls("https://auth.example.com/tenant1"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            server_metadata_urls("https://auth.example.com"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn canonical_and_coverage() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(canonical_resource(&u("HTTPS://MCP.Example.com:443/mcp/?x=1")), "https://mcp.example.com/mcp");
        assert_eq!(canonical_resource(&u("http://127.0.0.1:3000/")), "http://127.0.0.1:3000");
        let server = u("https://mcp.example.com/mcp");
        assert!(resource_covers("https://mcp.example.com/mcp", &server));
        assert!(resource_covers("https://mcp.example.com", &server));
        assert!(resource_covers("https://mcp.example.com/", &server));
        assert!(!resource_covers("https://mcp.example.com/other", &server));
        assert!(!resource_covers("https://mcp.example.com/mc", &server));
        assert!(!resource_covers("https://evil.example.com/mcp", &server));
        assert!(!resource_covers("http://mcp.example.com/mcp", &server));
        assert!(!resource_covers("not a url", &server));
    }

    #[test]
    fn metadata_checks() {
        let mut m = ServerMetadata::default();
        assert!(!m.supports_s256(), "absent means no PKCE: refuse");
        m.code_challenge_methods_supported = Some(vec!["plain".into()]);
        assert!(!m.supports_s256());
        m.code_challenge_methods_supported = Some(vec!["plain".into(), "S256".into()]);
        assert!(m.supports_s256());
        assert!(m.supports_auth_method("client_secret_basic") && !m.supports_auth_method("client_secret_post"));
    }
}
