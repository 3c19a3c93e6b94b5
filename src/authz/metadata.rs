//! RFC 8414: what the authorization server is and where its endpoints are. The issuer is the
//! gateway's public origin, exactly as the protected-resource metadata names it (clients compare
//! the two strings).

use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::AuthorizationServer;
use super::wire::{self, Request};
use crate::http::body::Body;

pub const WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";

/// Whether `path` is the metadata document's (the issuer has no path: no suffixed form).
pub fn is_metadata_path(path: &str) -> bool {
    path == WELL_KNOWN
}

pub fn document(server: &AuthorizationServer) -> Value {
    let s = &server.settings;
    let url = |p: &str| format!("{}{p}", s.public_url);
    let methods = json!(["none", "client_secret_post", "client_secret_basic"]);
    let mut doc = json!({
        "issuer": s.public_url,
        "authorization_endpoint": url("/authorize"),
        "token_endpoint": url("/token"),
        "registration_endpoint": url("/register"),
        "revocation_endpoint": url("/revoke"),
        "jwks_uri": url("/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
    });
    if !s.scopes.is_empty() {
        doc["scopes_supported"] = json!(s.scopes);
    }
    doc
}

pub fn answer(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return wire::method_not_allowed("GET");
    }
    wire::json(StatusCode::OK, &document(server))
}
