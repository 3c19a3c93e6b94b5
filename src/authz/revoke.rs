//! `POST /revoke` (RFC 7009): a client gives up a refresh token or an access token, and with it
//! the whole sign-in (its family: every refresh token, and the access tokens, refused at once). An
//! unknown token, or another client's, is answered 200 all the same (§2.2): the answer says
//! nothing about tokens.

use http::{Response, StatusCode};

use super::records::{self, Refresh};
use super::state::Table;
use super::wire::{self, Request};
use super::{AuthorizationServer, clients, refresh};
use crate::http::body::{self, Body};

pub async fn answer(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    let (params, client) = match clients::posted_by_client(server, req).await {
        Ok(found) => found,
        Err(resp) => return *resp,
    };
    let Some(token) = params.get("token") else {
        return wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    let family = match records::read::<Refresh>(&*server.state, Table::Refresh, &wire::digest(token)).await {
        Ok(Some(r)) => (r.client_id == client.client_id).then_some(r.family),
        _ => access_token_family(server, token, &client.client_id),
    };
    if let Some(family) = family {
        refresh::revoke_family(server, &family).await;
        tracing::info!(client = %client.client_id, "a sign-in was revoked by its client");
    }
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    resp
}

/// The sign-in an access token of the gateway's, issued to `client_id`, belongs to (`sid`), if
/// `token` is one (its signature checked; an expired one still names its sign-in).
fn access_token_family(server: &AuthorizationServer, token: &str, client_id: &str) -> Option<String> {
    // Revoking a token that has just expired is harmless; refusing to would be unhelpful.
    let check = server.token_check(crate::authn::Keys::Discover, server.settings.access_ttl);
    let unverified = crate::authn::jwt::precheck(token, &check).ok()?;
    let claims = crate::authn::jwt::verify(token, &unverified, &server.signing.verifying(), &check).ok()?;
    let of = |k: &str| claims.get(k).and_then(serde_json::Value::as_str);
    (of("client_id") == Some(client_id)).then(|| of("sid").map(str::to_owned)).flatten()
}
