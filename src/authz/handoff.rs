//! Where the browser goes from `/authorize` (its consent page, or at once when a consent is
//! remembered): on to the identity provider to sign in, or back to the client with an error;
//! and from a page of the gateway's that must know who the browser's user is (`sign_in_then`).

use http::Response;

use super::records::{self, Login, Pending};
use super::state::Table;
use super::wire::{self, Request};
use super::{AuthorizationServer, CALLBACK, cookies};
use crate::http::body::Body;

/// How long a user has to consent and sign in.
pub const REQUEST_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Sends the browser back to the client with an error (RFC 6749 §4.1.2.1).
pub fn back_with_error(server: &AuthorizationServer, p: &Pending, error: &str, description: &str) -> Response<Body> {
    wire::redirect(&error_url(server, p, error, description))
}

/// The client's redirect URI carrying an error, its `state` and the gateway's `iss`.
pub(super) fn error_url(server: &AuthorizationServer, p: &Pending, error: &str, description: &str) -> String {
    let iss = server.settings.public_url.as_str();
    let state = p.state.as_deref().unwrap_or("");
    let params = [("error", error), ("error_description", description), ("state", state), ("iss", iss)];
    wire::with_query(&p.redirect_uri, &params)
}

/// Sends the user to the identity provider to sign in, for the pending request `id`. The sign-in
/// is bound to this browser: its answer is taken only from the browser that started it (else a
/// link to the provider, started by an attacker for their own client, would sign a victim in to
/// it).
pub async fn sign_in(server: &AuthorizationServer, req: &Request, id: &str, pending: &Pending) -> Response<Body> {
    let names = cookies::names(&server.settings.public_url);
    let (browser, set_cookie) = cookies::browser(req, &names);
    let resp = sign_in_as(server, &browser, id, pending).await;
    cookies::with_browser(resp, set_cookie)
}

async fn sign_in_as(server: &AuthorizationServer, browser: &str, id: &str, pending: &Pending) -> Response<Body> {
    match provider_url(server, browser, id, None).await {
        Ok(url) => wire::redirect(&url),
        Err((error, description)) => back_with_error(server, pending, error, description),
    }
}

/// Sends the user to the identity provider to sign in to the gateway itself, then back to
/// `return_to` (a path of the gateway's: an upstream sign-in that must know who the browser's
/// user is). Bound to this browser, as above.
pub async fn sign_in_then(server: &AuthorizationServer, req: &Request, return_to: &str) -> Response<Body> {
    let names = cookies::names(&server.settings.public_url);
    let (browser, set_cookie) = cookies::browser(req, &names);
    let resp = match provider_url(server, &browser, "", Some(return_to.to_owned())).await {
        Ok(url) => wire::redirect(&url),
        Err((_, description)) => wire::error_page(http::StatusCode::SERVICE_UNAVAILABLE, description),
    };
    cookies::with_browser(resp, set_cookie)
}

/// The provider's sign-in URL for a new sign-in of `browser`, for the pending request `id` or
/// ending at `return_to`; or the error (RFC 6749's code, and what the user is told).
async fn provider_url(
    server: &AuthorizationServer,
    browser: &str,
    id: &str,
    return_to: Option<String>,
) -> Result<String, (&'static str, &'static str)> {
    let state = wire::random();
    let nonce = wire::random();
    let unavailable = ("temporarily_unavailable", "the gateway cannot sign anyone in now");
    let pkce = crate::oauth_client::pkce::Pkce::new().map_err(|e| {
        tracing::error!("{e}");
        unavailable
    })?;
    let verifier = server.sealer.seal(&format!("login:{state}"), pkce.verifier.as_bytes()).map_err(|e| {
        tracing::error!("{e}");
        unavailable
    })?;
    let login =
        Login { request: id.to_owned(), verifier, nonce: nonce.clone(), browser: wire::digest(browser), return_to };
    if let Err(e) = records::write(&*server.state, Table::Login, &state, &login, Some(REQUEST_TTL)).await {
        tracing::error!("{e}");
        return Err(unavailable);
    }
    let callback = format!("{}{CALLBACK}", server.settings.public_url);
    server.provider.sign_in_url(&callback, &state, &pkce.challenge, &nonce).await.map_err(|e| {
        tracing::warn!("{e}");
        ("temporarily_unavailable", "the identity provider cannot be reached")
    })
}
