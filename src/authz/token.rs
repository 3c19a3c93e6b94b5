//! `POST /token`: a code redeemed (RFC 6749 §4.1.3 with PKCE, RFC 7636 §4.6) or a refresh token
//! exchanged (`refresh.rs`), for the gateway's own access token (`signing.rs`) and a refresh
//! token of the sign-in's family.

use http::{Response, StatusCode};
use subtle::ConstantTimeEq;

use super::authorize::is_ours;
use super::issue::{invalid_grant, issue, unavailable};
use super::records::{self, Client, Code, Family};
use super::state::{Table, now_secs};
use super::wire::{self, Params, Request};
use super::{AuthorizationServer, clients, refresh};
use crate::http::body::Body;

/// Where a redeemed code's sign-in is remembered.
fn spent(key: &str) -> String {
    format!("spent:{key}")
}

pub async fn answer(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    let (params, client) = match clients::posted_by_client(server, req).await {
        Ok(found) => found,
        Err(resp) => return *resp,
    };
    match params.get("grant_type") {
        Some("authorization_code") => redeem(server, &client, &params).await,
        Some("refresh_token") => refresh::exchange(server, &client, &params).await,
        Some(_) => {
            wire::oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "authorization_code or refresh_token")
        }
        None => wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
}

async fn redeem(server: &AuthorizationServer, client: &Client, params: &Params) -> Response<Body> {
    let Some(code) = params.get("code") else {
        return wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code is required");
    };
    let key = wire::digest(code);
    // Taken whatever follows: a code is tried once.
    let record: Code = match records::take(&*server.state, Table::Code, &key).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            // A code redeemed before, presented again: stolen, or replayed. What it gave is revoked.
            if let Ok(Some(family)) = records::read::<String>(&*server.state, Table::Code, &spent(&key)).await {
                super::refresh::revoke_family(server, &family).await;
                tracing::warn!(client = %client.client_id, "a code was presented again: the sign-in it started is revoked");
            }
            return invalid_grant("the code is unknown, used or expired");
        }
        Err(e) => return unavailable(e),
    };
    let Some(verifier) = params.get("code_verifier") else {
        return invalid_grant("the code_verifier is missing (PKCE)");
    };
    let p = &record.request;
    if p.client_id != client.client_id {
        return invalid_grant("the code was issued to another client");
    }
    // OAuth 2.1 §4.1.3: the same redirect URI, when the authorization request named one.
    match params.get("redirect_uri") {
        Some(r) if r != p.redirect_uri => {
            return invalid_grant("redirect_uri differs from the authorization request's");
        }
        None if p.redirect_given => {
            return invalid_grant("redirect_uri is required: the authorization request named one");
        }
        _ => {}
    }
    let computed = crate::oauth_client::pkce::s256(verifier);
    if !bool::from(computed.as_bytes().ct_eq(p.code_challenge.as_bytes())) {
        return invalid_grant("the code_verifier does not match the code_challenge");
    }
    if let Some(resource) = params.get("resource")
        && !is_ours(server, resource)
    {
        return wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_target", "the resource is not this gateway");
    }
    // A registered client lives on while it signs users in.
    if !super::cimd::is_document_url(&client.client_id)
        && let Err(e) =
            records::write(&*server.state, Table::Client, &client.client_id, client, Some(super::register::CLIENT_TTL))
                .await
    {
        return unavailable(e);
    }
    let family = wire::random();
    let expires = now_secs() + server.settings.refresh_ttl.as_secs();
    // The code, spent: known as such while its sign-in lives.
    if let Err(e) =
        records::write(&*server.state, Table::Code, &spent(&key), &family, Some(server.settings.refresh_ttl)).await
    {
        return unavailable(e);
    }
    let record_family =
        Family { client_id: client.client_id.clone(), sub: record.user.sub.clone(), revoked: false, expires };
    if let Err(e) =
        records::write(&*server.state, Table::Family, &family, &record_family, Some(server.settings.refresh_ttl)).await
    {
        return unavailable(e);
    }
    match issue(server, &client.client_id, &record.user, &p.scope, &p.resource, &family, expires).await {
        Ok(body) => wire::json(StatusCode::OK, &body),
        Err(e) => unavailable(e),
    }
}
