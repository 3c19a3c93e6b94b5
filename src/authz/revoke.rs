//! `POST /revoke` (RFC 7009): a client gives up a refresh token, and with it the whole sign-in
//! (its family). An unknown token, or another client's, is answered 200 all the same (§2.2):
//! the answer says nothing about tokens. Access tokens are short-lived JWTs the gateway does not
//! keep: they run out on their own.

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
    if let Ok(Some(r)) = records::read::<Refresh>(&*server.state, Table::Refresh, &wire::digest(token)).await
        && r.client_id == client.client_id
    {
        refresh::revoke_family(server, &r.family).await;
        tracing::info!(client = %client.client_id, "a sign-in was revoked by its client");
    }
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    resp
}
