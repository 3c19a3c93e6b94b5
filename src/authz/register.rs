//! RFC 7591 dynamic client registration: what older MCP clients use to get a `client_id`
//! (deprecated in 2026-07-28 for metadata documents, still the common case). Open registration,
//! as MCP clients expect; what a client may register is narrow: the code flow only, redirect
//! URIs to https or loopback, a public client or one with a secret the gateway generates.

use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::AuthorizationServer;
use super::records::{self, Client};
use super::redirect_uri::check_redirect_uri;
use super::state::{Table, now_secs};
use super::wire::{self, Request};
use crate::http::body::Body;

const MAX_REDIRECTS: usize = 10;

/// A registered client is forgotten this long after its last sign-in (each sign-in renews it):
/// registrations nobody uses do not pile up. A client forgotten gets `invalid_client` and
/// registers again, as MCP clients do.
pub const CLIENT_TTL: std::time::Duration = std::time::Duration::from_secs(90 * 86400);

fn invalid(error: &str, why: impl Into<String>) -> Response<Body> {
    wire::oauth_error(StatusCode::BAD_REQUEST, error, &why.into())
}

fn strings<'a>(doc: &'a Value, key: &str) -> Result<Option<Vec<&'a str>>, String> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or_else(|| format!("{key} must hold strings")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("{key} must be an array of strings")),
    }
}

pub async fn answer(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    if req.method != Method::POST {
        return wire::method_not_allowed("POST");
    }
    let doc: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return invalid("invalid_client_metadata", "the body must be a JSON object of client metadata"),
    };
    let redirect_uris = match strings(&doc, "redirect_uris") {
        Ok(Some(uris)) if !uris.is_empty() && uris.len() <= MAX_REDIRECTS => uris,
        Ok(_) => return invalid("invalid_redirect_uri", format!("redirect_uris must list 1 to {MAX_REDIRECTS} URIs")),
        Err(e) => return invalid("invalid_redirect_uri", e),
    };
    for uri in &redirect_uris {
        if let Err(e) = check_redirect_uri(uri) {
            return invalid("invalid_redirect_uri", e);
        }
    }
    let method = match doc.get("token_endpoint_auth_method") {
        None => "client_secret_basic", // RFC 7591 §2's default
        Some(Value::String(m)) if matches!(m.as_str(), "none" | "client_secret_post" | "client_secret_basic") => m,
        Some(other) => {
            return invalid(
                "invalid_client_metadata",
                format!(
                    "token_endpoint_auth_method {other} is not supported (none, client_secret_post, client_secret_basic)"
                ),
            );
        }
    };
    match strings(&doc, "grant_types") {
        Ok(None) => {}
        Ok(Some(g)) if g.iter().all(|g| matches!(*g, "authorization_code" | "refresh_token")) => {}
        _ => {
            return invalid(
                "invalid_client_metadata",
                "grant_types may hold authorization_code and refresh_token only",
            );
        }
    }
    match strings(&doc, "response_types") {
        Ok(None) => {}
        Ok(Some(r)) if r.iter().all(|r| *r == "code") => {}
        _ => return invalid("invalid_client_metadata", "response_types may hold code only"),
    }
    let application_type = match doc.get("application_type").and_then(Value::as_str) {
        None => "web",
        Some(t @ ("web" | "native")) => t,
        Some(_) => return invalid("invalid_client_metadata", "application_type must be web or native"),
    };
    let client_name = match doc.get("client_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if n.chars().count() <= 200 => Some(n.chars().filter(|c| !c.is_control()).collect()),
        Some(_) => return invalid("invalid_client_metadata", "client_name must be a string of at most 200 characters"),
    };
    let client_id = wire::random();
    let secret = (method != "none").then(wire::random);
    let client = Client {
        client_id: client_id.clone(),
        client_name,
        redirect_uris: redirect_uris.iter().map(|s| s.to_string()).collect(),
        auth_method: method.to_owned(),
        secret_hash: secret.as_deref().map(wire::digest),
        application_type: application_type.to_owned(),
        issued_at: now_secs(),
    };
    if let Err(e) = records::write(&*server.state, Table::Client, &client_id, &client, Some(CLIENT_TTL)).await {
        tracing::error!("{e}");
        return wire::oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "cannot register now");
    }
    tracing::info!(client = %client_id, name = client.client_name.as_deref().unwrap_or("-"), "registered a client");
    let mut out = json!({
        "client_id": client_id,
        "client_id_issued_at": client.issued_at,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "application_type": application_type,
    });
    if let Some(name) = &client.client_name {
        out["client_name"] = json!(name);
    }
    if let Some(secret) = secret {
        out["client_secret"] = json!(secret);
        out["client_secret_expires_at"] = json!(0);
    }
    wire::json(StatusCode::CREATED, &out)
}
