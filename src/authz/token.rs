//! `POST /token`: a code redeemed (RFC 6749 §4.1.3 with PKCE, RFC 7636 §4.6) or a refresh token
//! exchanged (`refresh.rs`), for the gateway's own access token (`signing.rs`) and a refresh
//! token of the sign-in's family.

use http::{Method, Response, StatusCode};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::authorize::is_ours;
use super::records::{self, Client, Code, Family, Identity, Refresh};
use super::state::{Table, now_secs};
use super::wire::{self, Params, Request};
use super::{AuthorizationServer, clients, refresh};
use crate::http::body::Body;

pub fn invalid_grant(why: &str) -> Response<Body> {
    wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why)
}

/// Where a redeemed code's sign-in is remembered.
fn spent(key: &str) -> String {
    format!("spent:{key}")
}

pub fn unavailable(e: impl std::fmt::Display) -> Response<Body> {
    tracing::error!("{e}");
    wire::oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again")
}

pub async fn answer(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    if req.method != Method::POST {
        return wire::method_not_allowed("POST");
    }
    let params = match req.params() {
        Ok(p) => p,
        Err(e) => return wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let client = match clients::authenticate(server, req, &params).await {
        Ok(c) => c,
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

/// A new access token, and a new refresh token of `family`: the token response.
pub async fn issue(
    server: &AuthorizationServer,
    client_id: &str,
    user: &Identity,
    scope: &str,
    resource: &str,
    family: &str,
    family_expires: u64,
) -> Result<Value, String> {
    let s = &server.settings;
    let now = now_secs();
    let ttl = s.access_ttl.as_secs();
    let mut claims = json!({
        "iss": s.public_url, "aud": s.public_url, "sub": user.sub, "client_id": client_id,
        "iat": now, "nbf": now, "exp": now + ttl, "jti": wire::random(), "sid": family,
    });
    if let Some(email) = &user.email {
        claims["email"] = json!(email);
    }
    if let Some(name) = &user.name {
        claims["name"] = json!(name);
    }
    if !scope.is_empty() {
        claims["scope"] = json!(scope);
    }
    if !user.roles.is_empty() {
        claims["roles"] = json!(user.roles);
    }
    let access = server.signing.sign(&claims)?;
    let refresh_token = wire::random();
    let record = Refresh {
        family: family.to_owned(),
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        resource: resource.to_owned(),
        user: user.clone(),
        used_at: None,
    };
    let left = records::left_until(family_expires);
    records::write(&*server.state, Table::Refresh, &wire::digest(&refresh_token), &record, Some(left))
        .await
        .map_err(|e| e.to_string())?;
    let mut body =
        json!({"access_token": access, "token_type": "Bearer", "expires_in": ttl, "refresh_token": refresh_token});
    if !scope.is_empty() {
        body["scope"] = json!(scope);
    }
    Ok(body)
}
