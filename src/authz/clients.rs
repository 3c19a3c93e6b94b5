//! Who the clients are: a registered client's record, its redirect URIs (what may be registered,
//! and when a request's matches one), and its authentication at the token and revocation
//! endpoints.

use base64::Engine;
use http::StatusCode;
use subtle::ConstantTimeEq;

use super::AuthorizationServer;
use super::records::{self, Client};
use super::state::Table;
use super::wire::{self, Params, Request};
use crate::http::body::Body;

/// The client `client_id` names: registered, or described by the metadata document it is the URL
/// of (fetched when not kept). `Err` says why it cannot be used.
pub async fn find(server: &AuthorizationServer, client_id: &str) -> Result<Option<Client>, String> {
    let document = super::cimd::is_document_url(client_id);
    if client_id.len() > 256 && !document {
        return Ok(None);
    }
    if let Some(client) = records::read(&*server.state, Table::Client, client_id).await.map_err(|e| e.to_string())? {
        return Ok(Some(client));
    }
    if document {
        return super::cimd::fetch(server, client_id).await.map(Some);
    }
    Ok(None)
}

/// HTTP Basic client credentials: the id and secret, each form-decoded (RFC 6749 §2.3.1: both are
/// form-encoded before Basic; a raw `&` in one is itself, not a separator).
fn basic(headers: &http::HeaderMap) -> Option<(String, String)> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        let escaped = format!("x={}", s.replace('&', "%26"));
        form_urlencoded::parse(escaped.as_bytes()).next().map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

/// A token or revocation request: a POSTed form, and the client it authenticates (or the answer
/// refusing it).
pub async fn posted_by_client(
    server: &AuthorizationServer,
    req: &Request,
) -> Result<(Params, Client), Box<http::Response<Body>>> {
    if req.method != http::Method::POST {
        return Err(Box::new(wire::method_not_allowed("POST")));
    }
    let params =
        req.params().map_err(|e| Box::new(wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e)))?;
    let client = authenticate(server, req, &params).await?;
    Ok((params, client))
}

/// The client a token or revocation request comes from, authenticated as it registered: HTTP
/// Basic, a secret in the form, or (public clients) its id alone. Refusals are the RFC's
/// `invalid_client` (401).
pub async fn authenticate(
    server: &AuthorizationServer,
    req: &Request,
    params: &Params,
) -> Result<Client, Box<http::Response<Body>>> {
    let refuse = |why: &str| Box::new(wire::oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why));
    let basic = basic(&req.headers);
    if req.headers.contains_key(http::header::AUTHORIZATION) && basic.is_none() {
        return Err(refuse("the Authorization header is not HTTP Basic client authentication"));
    }
    let (id, secret, method) = match (&basic, params.get("client_id"), params.get("client_secret")) {
        (Some(_), _, Some(_)) => return Err(refuse("one client authentication method at a time")),
        (Some((id, secret)), form_id, None) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(refuse("client_id differs from the authenticated client"));
            }
            (id.as_str(), Some(secret.as_str()), "client_secret_basic")
        }
        (None, Some(id), Some(secret)) => (id, Some(secret), "client_secret_post"),
        (None, Some(id), None) => (id, None, "none"),
        (None, None, _) => return Err(refuse("no client_id")),
    };
    let client = match find(server, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(refuse("unknown client")),
        Err(e) => {
            return Err(Box::new(wire::oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", &e)));
        }
    };
    match (&client.secret_hash, secret) {
        (None, None) => Ok(client),
        (None, Some(_)) => Err(refuse("this client registered no secret (token_endpoint_auth_method none)")),
        (Some(_), None) => Err(refuse("this client must authenticate with its secret")),
        (Some(hash), Some(secret)) => {
            if client.auth_method != method {
                tracing::debug!(client = %client.client_id, registered = %client.auth_method, used = method, "client authentication method differs");
            }
            if bool::from(wire::digest(secret).as_bytes().ct_eq(hash.as_bytes())) {
                Ok(client)
            } else {
                Err(refuse("wrong client secret"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let decoded = |id: &str, secret: &str| {
            let raw = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, format!("Basic {raw}").parse().unwrap());
            basic(&headers)
        };
        assert_eq!(decoded("my%20app", "a&b%3Dc+d"), Some(("my app".into(), "a&b=c d".into())));
        assert_eq!(decoded("id", "s:with:colons"), Some(("id".into(), "s:with:colons".into())));
    }
}
