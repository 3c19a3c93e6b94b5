//! `/oauth/callback`: the identity provider sends the user back here. The sign-in it answers
//! is found by `state` (used once), its issuer checked (RFC 9207, against mix-up), the code
//! redeemed and the ID token read (`provider.rs`); then the client gets its own code, bound to
//! everything its request said, and the user a cookie that lets a remembered consent skip the
//! page next time. A sign-in a page of the gateway's needed (an upstream sign-in link opened in a
//! browser not signed in) sets that cookie and goes back to the page.

use std::time::Duration;

use http::header::SET_COOKIE;
use http::{Method, Response, StatusCode};

use super::authorize::{consent_key, has_consented};
use super::handoff::back_with_error;
use super::records::{self, Code, Consent, Identity, Login, Pending};
use super::state::{Table, now_secs};
use super::wire::{self, Request};
use super::{AuthorizationServer, CALLBACK, cookies};
use crate::http::body::Body;

/// A code's life: enough to redeem it at once (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a consent is remembered.
const CONSENT_TTL: Duration = Duration::from_secs(90 * 86400);
/// How long the signed-in cookie lasts.
const USER_COOKIE: u64 = 12 * 3600;

pub async fn answer(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    if !matches!(req.method, Method::GET) {
        return wire::method_not_allowed("GET");
    }
    let params = match req.params() {
        Ok(p) => p,
        Err(e) => return wire::error_page(StatusCode::BAD_REQUEST, &e),
    };
    let unknown = || {
        wire::error_page(StatusCode::BAD_REQUEST, "this sign-in is unknown or expired; start it again from your client")
    };
    let Some(state) = params.get("state") else { return unknown() };
    // The answer counts only in the browser that started the sign-in (checked before it is used
    // up: another browser's attempt leaves the real one intact).
    let names = cookies::names(&server.settings.public_url);
    let browser = cookies::get(req, names.browser).map(wire::digest);
    match records::read::<Login>(&*server.state, Table::Login, state).await {
        Ok(Some(l)) if Some(&l.browser) == browser.as_ref() => {}
        Ok(Some(_)) => {
            tracing::warn!("refused a sign-in answer in another browser than the one that started it");
            return wire::error_page(
                StatusCode::FORBIDDEN,
                "this sign-in was started in another browser; start it again from your client",
            );
        }
        Ok(None) => return unknown(),
        Err(e) => {
            tracing::error!("{e}");
            return wire::error_page(StatusCode::SERVICE_UNAVAILABLE, "the gateway cannot sign anyone in now");
        }
    }
    let login: Login = match records::take(&*server.state, Table::Login, state).await {
        Ok(Some(l)) => l,
        _ => return unknown(),
    };
    if let Some(return_to) = &login.return_to {
        // The gateway's own sign-in, for a page of its own (an upstream sign-in's): the user
        // cookie is all it was for.
        return match identify(server, &params, state, &login).await {
            Ok(user) => {
                let mut resp = wire::redirect(return_to);
                resp.headers_mut().append(SET_COOKIE, user_cookie(server, &user.sub));
                resp
            }
            Err((_, description)) => wire::error_page(StatusCode::FORBIDDEN, description),
        };
    }
    let pending: Pending = match records::take(&*server.state, Table::Request, &login.request).await {
        Ok(Some(p)) => p,
        _ => return unknown(),
    };
    let user = match identify(server, &params, state, &login).await {
        Ok(user) => user,
        Err((error, description)) => return back_with_error(server, &pending, error, description),
    };
    // No page was shown because another user consented: this one must have, too.
    if pending.remembered_for.as_ref().is_some_and(|s| *s != user.sub)
        && !has_consented(server, &user.sub, &pending).await
    {
        return back_with_error(server, &pending, "access_denied", "consent is required; start the sign-in again");
    }
    let consent = Consent { scope: pending.scope.clone() };
    let key = consent_key(&user.sub, &pending.client_id);
    if let Err(e) = records::write(&*server.state, Table::Consent, &key, &consent, Some(CONSENT_TTL)).await {
        tracing::warn!("{e}");
    }
    let code = wire::random();
    let record = Code { request: pending.clone(), user: user.clone() };
    if let Err(e) = records::write(&*server.state, Table::Code, &wire::digest(&code), &record, Some(CODE_TTL)).await {
        tracing::error!("{e}");
        return back_with_error(server, &pending, "temporarily_unavailable", "the gateway cannot sign anyone in now");
    }
    tracing::info!(user = %user.email.as_deref().unwrap_or(&user.sub), client = %pending.client_id, "signed in");
    let iss = server.settings.public_url.as_str();
    let state = pending.state.as_deref().unwrap_or("");
    let mut resp =
        wire::redirect(&wire::with_query(&pending.redirect_uri, &[("code", &code), ("state", state), ("iss", iss)]));
    resp.headers_mut().append(SET_COOKIE, user_cookie(server, &user.sub));
    resp
}

/// The signed-in user's cookie.
fn user_cookie(server: &AuthorizationServer, sub: &str) -> http::HeaderValue {
    let names = cookies::names(&server.settings.public_url);
    let value = cookies::user_value(&server.cookie_key, sub, now_secs() + USER_COOKIE);
    names.set(names.user, &value, Some(USER_COOKIE))
}

/// Who signed in, from the provider's answer to the sign-in `login` (its `state`): its issuer
/// checked (RFC 9207 §2.4), its code redeemed and its ID token read; or the error to report
/// (RFC 6749's code, and what the user is told).
async fn identify(
    server: &AuthorizationServer,
    params: &wire::Params,
    state: &str,
    login: &Login,
) -> Result<Identity, (&'static str, &'static str)> {
    match server.provider.sends_iss().await {
        Ok((must, issuer)) => {
            if !wire::iss_ok(params.get("iss"), must, &issuer) {
                tracing::warn!("the identity provider's answer names another issuer; refused (mix-up)");
                return Err(("access_denied", "the sign-in answer came from another issuer"));
            }
        }
        Err(e) => {
            tracing::warn!("{e}");
            return Err(("temporarily_unavailable", "the identity provider cannot be reached"));
        }
    }
    if let Some(error) = params.get("error") {
        tracing::info!(error = %error.chars().take(64).collect::<String>(), "the identity provider refused the sign-in");
        return Err(("access_denied", "the sign-in at the identity provider did not complete"));
    }
    let Some(code) = params.get("code") else { return Err(("access_denied", "the identity provider sent no code")) };
    let Some(verifier) = server.sealer.open(&format!("login:{state}"), &login.verifier) else {
        return Err(("server_error", "the sign-in's verifier cannot be read"));
    };
    let verifier = String::from_utf8_lossy(&verifier);
    let callback = format!("{}{CALLBACK}", server.settings.public_url);
    server.provider.redeem(code, &verifier, &callback, &login.nonce).await.map_err(|e| {
        tracing::warn!("a sign-in failed: {e}");
        ("access_denied", "the sign-in at the identity provider failed")
    })
}
