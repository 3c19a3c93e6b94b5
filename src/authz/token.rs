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

/// A code's record: as issued, or used up (naming the sign-in it started, or was to start).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Slot {
    Spent { spent: String },
    Issued(Box<Code>),
}

enum Spent {
    /// Used up now, by this request.
    Fresh(Box<Code>),
    /// Used up before: the sign-in it started.
    Already(String),
    Unknown,
}

/// Uses the code (by its hash `key`) up for the sign-in `family`: kept as used for as long as that
/// sign-in could live, so that a replay is recognised. Whatever follows, a code is tried once.
async fn spend(server: &AuthorizationServer, key: &str, family: &str) -> Result<Spent, String> {
    let state = &*server.state;
    for _ in 0..8 {
        let Some((slot, raw)) = records::read_raw::<Slot>(state, Table::Code, key).await.map_err(|e| e.to_string())?
        else {
            return Ok(Spent::Unknown);
        };
        let code = match slot {
            Slot::Spent { spent } => return Ok(Spent::Already(spent)),
            Slot::Issued(code) => code,
        };
        let used = Slot::Spent { spent: family.to_owned() };
        if records::replace(state, Table::Code, key, &raw, &used, Some(server.settings.refresh_ttl))
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(Spent::Fresh(code));
        }
    }
    Err("a code's record keeps changing".into())
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
    // The sign-in this code starts, named before the code is used up: the code's record becomes
    // that name in the same step (one compare-and-swap), so a second redemption — later, or at the
    // same instant — finds it and revokes what the first one got.
    let family = wire::random();
    let record = match spend(server, &key, &family).await {
        Ok(Spent::Fresh(code)) => code,
        Ok(Spent::Already(first)) => {
            super::refresh::revoke_family(server, &first).await;
            tracing::warn!(client = %client.client_id, "a code was presented again: the sign-in it started is revoked");
            return invalid_grant("the code is unknown, used or expired");
        }
        Ok(Spent::Unknown) => return invalid_grant("the code is unknown, used or expired"),
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
    let expires = now_secs() + server.settings.refresh_ttl.as_secs();
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
