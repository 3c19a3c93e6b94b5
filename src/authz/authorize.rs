//! `/authorize` (RFC 6749 §4.1.1, OAuth 2.1): a client's request checked, then the user's
//! consent (`consent.rs`), then the sign-in at the identity provider (`provider.rs`), whose
//! answer comes back at `callback.rs`.
//!
//! Errors about the client itself — unknown, or a redirect URI it did not register — are shown
//! to the user and never sent to the redirect URI (that would make the gateway an open
//! redirector, RFC 6749 §4.1.2.1); other errors go back to the client with its `state` and the
//! gateway's `iss` (RFC 9207).

use http::{Method, Response, StatusCode};

use super::AuthorizationServer;
use super::clients;
use super::handoff::{REQUEST_TTL, back_with_error, error_url, sign_in};
use super::records::{self, Consent, Pending};
use super::redirect_uri::redirect_matches;
use super::state::{Table, now_secs};
use super::wire::{self, Request};
use super::{consent, cookies};
use crate::http::body::Body;

pub async fn answer(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    match req.method {
        // Not HEAD: a request writes a record, and is counted as it does (GET only).
        Method::GET => request(server, req).await,
        Method::POST => consent::decide(server, req).await,
        _ => wire::method_not_allowed("GET, POST"),
    }
}

/// An error in a request no user has seen yet: shown, with a link back to the client carrying it,
/// rather than sent there at once — registration is open, so an automatic redirect would make
/// the gateway an open redirector for anyone who registers a client (RFC 9700 §4.11.2).
fn refuse(server: &AuthorizationServer, p: &Pending, error: &str, description: &str) -> Response<Body> {
    let back = error_url(server, p, error, description);
    let host = wire::host_of(&p.redirect_uri);
    let html = format!(
        "<h1>Sign-in failed</h1><p>The application's request was refused: {}.</p><p><a href=\"{}\">Return to {}</a></p>",
        wire::escape(description),
        wire::escape(&back),
        wire::escape(&host)
    );
    wire::page(StatusCode::BAD_REQUEST, "Sign-in failed", &html)
}

/// Whether a PKCE challenge has the form of an S256 digest's encoding (RFC 7636 §4.2).
fn well_formed_challenge(c: &str) -> bool {
    (43..=128).contains(&c.len())
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `resource` (RFC 8707) names this gateway: its origin, or a path on it.
pub fn is_ours(server: &AuthorizationServer, resource: &str) -> bool {
    let base = server.settings.public_url.as_str();
    resource.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')) && !resource.contains('#')
}

async fn request(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    let params = match req.params() {
        Ok(p) => p,
        Err(e) => return wire::error_page(StatusCode::BAD_REQUEST, &e),
    };
    // 1. The client and where to send the user back: shown, never redirected, when wrong.
    let Some(client_id) = params.get("client_id") else {
        return wire::error_page(StatusCode::BAD_REQUEST, "the request names no client (client_id)");
    };
    let client = match clients::find(server, client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return wire::error_page(StatusCode::BAD_REQUEST, "this client is not registered with the gateway"),
        Err(e) => {
            tracing::info!(client = %client_id.chars().take(200).collect::<String>(), "{e}");
            return wire::error_page(StatusCode::BAD_REQUEST, &format!("this client cannot sign in: {e}"));
        }
    };
    let redirect_given = params.get("redirect_uri").is_some();
    let redirect_uri = match params.get("redirect_uri") {
        Some(given) if client.redirect_uris.iter().any(|r| redirect_matches(r, given)) => given.to_owned(),
        Some(_) => {
            return wire::error_page(StatusCode::BAD_REQUEST, "the redirect URI is not one this client registered");
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return wire::error_page(StatusCode::BAD_REQUEST, "the request names no redirect URI (redirect_uri)"),
    };
    let mut pending = Pending {
        client_id: client.client_id.clone(),
        redirect_uri,
        state: params.get("state").map(str::to_owned),
        code_challenge: String::new(),
        scope: params.get("scope").unwrap_or("").to_owned(),
        resource: params.get("resource").unwrap_or(&server.settings.public_url).to_owned(),
        remembered_for: None,
        redirect_given,
    };
    if pending.state.as_ref().is_some_and(|s| s.len() > 2048) {
        return wire::error_page(StatusCode::BAD_REQUEST, "the state parameter is longer than 2048 characters");
    }
    // 2. The request itself: errors are shown, with a way back to the client.
    if params.get("response_type") != Some("code") {
        return refuse(server, &pending, "unsupported_response_type", "only response_type=code is supported");
    }
    match (params.get("code_challenge"), params.get("code_challenge_method")) {
        (Some(c), Some("S256")) if well_formed_challenge(c) => pending.code_challenge = c.to_owned(),
        (None, _) => return refuse(server, &pending, "invalid_request", "PKCE is required (code_challenge)"),
        (Some(_), Some("S256")) => {
            return refuse(server, &pending, "invalid_request", "malformed code_challenge");
        }
        _ => return refuse(server, &pending, "invalid_request", "code_challenge_method must be S256"),
    }
    if !is_ours(server, &pending.resource) {
        return refuse(server, &pending, "invalid_target", "the resource is not this gateway");
    }
    let scopes = &server.settings.scopes;
    if let Some(unknown) =
        pending.scope.split(' ').find(|s| !s.is_empty() && !scopes.is_empty() && !scopes.iter().any(|k| k == s))
    {
        let why = format!("the scope {unknown:?} is not offered");
        return refuse(server, &pending, "invalid_scope", &why);
    }
    // 3. A user signed in here lately who consented to this client before goes straight on.
    if let Some(sub) = signed_in(server, req)
        && has_consented(server, &sub, &pending).await
    {
        tracing::debug!(client = %client.client_id, "consent remembered");
        pending.remembered_for = Some(sub);
    }
    let id = wire::random();
    if let Err(e) = records::write(&*server.state, Table::Request, &id, &pending, Some(REQUEST_TTL)).await {
        tracing::error!("{e}");
        return back_with_error(server, &pending, "temporarily_unavailable", "the gateway cannot sign anyone in now");
    }
    if pending.remembered_for.is_some() {
        return sign_in(server, req, &id, &pending).await;
    }
    consent::page(server, req, &id, &client, &pending)
}

/// The user a browser's cookie says signed in here lately.
fn signed_in(server: &AuthorizationServer, req: &Request) -> Option<String> {
    let names = cookies::names(&server.settings.public_url);
    cookies::user_of(&server.cookie_key, cookies::get(req, names.user)?, now_secs())
}

/// Whether `sub` consented to the request's client, for at least its scopes.
pub async fn has_consented(server: &AuthorizationServer, sub: &str, pending: &Pending) -> bool {
    let key = consent_key(sub, &pending.client_id);
    match records::read::<Consent>(&*server.state, Table::Consent, &key).await {
        Ok(Some(c)) => wire::scope_covers(&c.scope, &pending.scope),
        _ => false,
    }
}

pub fn consent_key(sub: &str, client_id: &str) -> String {
    format!("{}:{client_id}", wire::digest(sub))
}
