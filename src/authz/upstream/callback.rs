//! `GET /upstream/<server>/callback`: a server's authorization server sends the user back here
//! (one redirect URI per server, so an answer meant for one is never taken for another: RFC 9700
//! §4.4.2). The sign-in is found by `state` (used once) and taken only in the browser that
//! started it; the issuer is checked (RFC 9207, against mix-up); the code is redeemed with its
//! PKCE verifier, and the user's tokens kept for the server (`UserTokens::signed_in`).

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::super::state::Table;
use super::super::wire::{self, Request};
use super::super::{AuthorizationServer, cookies};
use super::held;
use crate::http::body::Body;
use crate::oauth_client::token::{self, Grant};

/// A user's sign-in at a server's authorization server, in flight (kept sealed whole).
#[derive(Serialize, Deserialize)]
pub struct Login {
    pub server: String,
    pub sub: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// The hash of the browser's id that started it.
    pub browser: String,
    pub client: held::Client,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

pub async fn answer(server: &AuthorizationServer, req: &Request, name: &str) -> Response<Body> {
    let params = match req.params() {
        Ok(p) => p,
        Err(e) => return wire::error_page(StatusCode::BAD_REQUEST, &e),
    };
    let unknown = || {
        wire::error_page(
            StatusCode::BAD_REQUEST,
            "this sign-in is unknown or expired; use the tool again in your client for a new link",
        )
    };
    let Some(state) = params.get("state") else { return unknown() };
    let names = cookies::names(&server.settings.public_url);
    let browser = cookies::get(req, names.browser).map(wire::digest);
    // Checked before it is used up: another browser's attempt leaves the real one intact.
    match held::read::<Login>(server, Table::UpstreamLogin, state).await {
        Ok(Some(l)) if Some(&l.browser) == browser.as_ref() && l.server == name => {}
        Ok(Some(_)) => {
            tracing::warn!("refused an upstream sign-in answer in another browser, or at another server's callback");
            return wire::error_page(
                StatusCode::FORBIDDEN,
                "this sign-in was started in another browser; use the tool again in your client for a new link",
            );
        }
        Ok(None) => return unknown(),
        Err(e) => {
            tracing::error!("{e}");
            return wire::error_page(StatusCode::SERVICE_UNAVAILABLE, "the gateway cannot sign anyone in now");
        }
    }
    let Ok(Some(login)) = held::take::<Login>(server, Table::UpstreamLogin, state).await else { return unknown() };
    let failed = |why: &str| {
        wire::error_page(StatusCode::FORBIDDEN, &format!("the sign-in to {} did not complete: {why}", login.server))
    };
    let meta = &login.client.metadata;
    if !wire::iss_ok(params.get("iss"), meta.authorization_response_iss_parameter_supported, &meta.issuer) {
        tracing::warn!(server = %login.server, "an upstream sign-in answer names another issuer; refused (mix-up)");
        return failed("the answer came from another issuer");
    }
    if let Some(error) = params.get("error") {
        tracing::info!(server = %login.server, error = %error.chars().take(64).collect::<String>(), "the upstream refused a sign-in");
        return failed("it was refused or cancelled");
    }
    let Some(code) = params.get("code") else { return failed("no code came back") };
    let tokens =
        server.upstreams.lock().unwrap_or_else(|p| p.into_inner()).get(&login.server).and_then(|w| w.upgrade());
    let Some(tokens) = tokens else { return failed("the server is no longer configured") };
    let client = tokens.client(&login.client).await;
    let redirect_uri = tokens.redirect_uri();
    let grant = Grant::Code { code, verifier: &login.verifier, redirect_uri: &redirect_uri };
    let resource = login.resource.clone();
    let issued = match token::request(&tokens.http, meta, &client, grant, None, resource.as_deref(), None).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(server = %login.server, "an upstream sign-in failed at the token endpoint: {e}");
            return failed("its authorization server would not issue a token");
        }
    };
    if let Err(e) = tokens.signed_in(&login.sub, issued, login.client.clone(), resource).await {
        tracing::error!(server = %login.server, "{e}");
        return wire::error_page(StatusCode::SERVICE_UNAVAILABLE, "the gateway cannot keep the sign-in now");
    }
    tracing::info!(server = %login.server, "a user signed in to an upstream server");
    let html = format!(
        "<h1>Signed in to {}</h1><p>You can close this window and go back to your client.</p>",
        wire::escape(&login.server)
    );
    wire::page(StatusCode::OK, "Signed in", &html)
}
