//! What a token request is answered with: the gateway's access token (signed, `signing.rs`) and
//! a new refresh token of the sign-in's family; and the two refusals both grants share.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::AuthorizationServer;
use super::records::{self, Identity, Refresh};
use super::state::{Table, now_secs};
use super::wire;
use crate::http::body::Body;

pub fn invalid_grant(why: &str) -> Response<Body> {
    wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why)
}

pub fn unavailable(e: impl std::fmt::Display) -> Response<Body> {
    tracing::error!("{e}");
    wire::oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again")
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
