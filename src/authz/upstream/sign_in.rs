//! `GET /upstream/<server>/sign-in?ticket=…`: the link a user was given for a server they must
//! sign in to. The browser must be the ticket's user's — signed in to the gateway as them (else
//! it signs in first, and comes back): a link forwarded to someone else, or planted in their
//! browser, never puts their account behind another user's requests. Then on to the server's
//! authorization server (code + PKCE), as a client the gateway is there.

use http::{Method, Response, StatusCode};

use super::super::state::{Table, now_secs};
use super::super::wire::{self, Request};
use super::super::{AuthorizationServer, cookies, handoff, records};
use super::callback::{CALLBACK, Login};
use super::ticket::Ticket;
use super::{Registration, UserTokens, owner};
use crate::http::body::Body;
use crate::oauth_client::discovery::{self, ServerMetadata};
use crate::oauth_client::token::{self, AuthMethod};

/// `/upstream/<server>/sign-in`.
pub const PATH_PREFIX: &str = "/upstream/";

/// Whether `path` is a sign-in link's.
pub fn is_sign_in_path(path: &str) -> bool {
    path.strip_prefix(PATH_PREFIX).is_some_and(|rest| rest.ends_with("/sign-in") && rest.len() > "/sign-in".len())
}

pub async fn answer(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    if req.method != Method::GET {
        return wire::method_not_allowed("GET");
    }
    let expired = || {
        wire::error_page(
            StatusCode::BAD_REQUEST,
            "this sign-in link is unknown or expired; use the tool again in your client for a new one",
        )
    };
    let params = match req.params() {
        Ok(p) => p,
        Err(e) => return wire::error_page(StatusCode::BAD_REQUEST, &e),
    };
    let path = req.uri.path();
    let name = path.strip_prefix(PATH_PREFIX).and_then(|r| r.strip_suffix("/sign-in")).unwrap_or_default();
    let Some(name) = crate::url::decode_segment(name) else { return expired() };
    let Some(ticket) = params.get("ticket").and_then(|t| Ticket::open(&server.sealer, t, now_secs())) else {
        return expired();
    };
    if ticket.server != name {
        return expired();
    }
    // Who the browser's user is: the gateway's own sign-in says, and is had first if need be.
    let names = cookies::names(&server.settings.public_url);
    let user = cookies::get(req, names.user).and_then(|v| cookies::user_of(&server.cookie_key, v, now_secs()));
    match user {
        Some(sub) if sub == ticket.sub => {}
        Some(_) => {
            tracing::warn!(server = %name, "refused a sign-in link opened by another user than the one it was given to");
            return wire::error_page(
                StatusCode::FORBIDDEN,
                "this sign-in link was given to another user: open it where you use your own client",
            );
        }
        None => {
            let here = req.uri.path_and_query().map_or(path, |p| p.as_str());
            return handoff::sign_in_then(server, req, here).await;
        }
    }
    let tokens = server.upstreams.lock().unwrap_or_else(|p| p.into_inner()).get(&*name).and_then(|w| w.upgrade());
    let Some(tokens) = tokens else { return expired() };
    let (browser, set_cookie) = cookies::browser(req, &names);
    let mut resp = match authorize_url(server, &tokens, &ticket, &browser).await {
        Ok(url) => wire::redirect(&url),
        Err(e) => {
            tracing::warn!(server = %name, "an upstream sign-in could not start: {e}");
            wire::error_page(
                StatusCode::BAD_GATEWAY,
                &format!("the sign-in to {name} cannot start now: its authorization server could not be used"),
            )
        }
    };
    if let Some(c) = set_cookie {
        resp.headers_mut().append(http::header::SET_COOKIE, c);
    }
    resp
}

/// The server's authorization URL for this user's sign-in, its answer expected at the gateway's
/// callback (in this browser).
async fn authorize_url(
    server: &AuthorizationServer,
    tokens: &UserTokens,
    ticket: &Ticket,
    browser: &str,
) -> Result<String, String> {
    let found = match &tokens.settings.issuer {
        Some(issuer) => {
            let meta = discovery::server_metadata(&tokens.http, issuer)
                .await
                .map_err(|e| e.message)?
                .ok_or_else(|| format!("the issuer {issuer} publishes no metadata"))?;
            (meta, discovery::canonical_resource(&tokens.server), None)
        }
        None => {
            let f = discovery::discover(&tokens.http, &tokens.server, None).await.map_err(|e| e.message)?;
            (f.server, f.resource, f.resource_scopes)
        }
    };
    let (meta, resource, resource_scopes) = found;
    let resource = tokens.settings.resource.clone().unwrap_or(resource);
    // OAuth 2.1 / MCP: no S256, no sign-in.
    if !meta.supports_s256() {
        return Err(format!("{} does not support PKCE with S256", meta.issuer));
    }
    let endpoint = meta.authorization_endpoint.clone().ok_or("no authorization endpoint")?;
    let redirect_uri = format!("{}{CALLBACK}", server.settings.public_url);
    let scope = tokens.settings.scopes.clone().or_else(|| resource_scopes.map(|s| s.join(" ")));
    let (client_id, method) = client_identity(server, tokens, &meta, &redirect_uri, scope.as_deref()).await?;
    let pkce = crate::oauth_client::pkce::Pkce::new()?;
    let state = wire::random();
    let verifier = server.sealer.seal(&owner(&state, "verifier"), pkce.verifier.as_bytes())?;
    let login = Login {
        server: ticket.server.clone(),
        sub: ticket.sub.clone(),
        verifier,
        browser: wire::digest(browser),
        metadata: meta.clone(),
        client_id: client_id.clone(),
        method,
        resource: Some(resource.clone()).filter(|r| !r.is_empty()),
    };
    records::write(&*server.state, Table::UpstreamLogin, &state, &login, Some(handoff::REQUEST_TTL))
        .await
        .map_err(|e| e.to_string())?;
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", state.as_str()),
    ];
    if let Some(s) = scope.as_deref().filter(|s| !s.is_empty()) {
        params.push(("scope", s));
    }
    if !resource.is_empty() {
        params.push(("resource", resource.as_str()));
    }
    Ok(wire::with_query(&endpoint, &params))
}

/// Who the gateway is at the authorization server: the configured client, or its registration
/// there (made once, RFC 7591, for the gateway's callback; its secret kept sealed).
async fn client_identity(
    server: &AuthorizationServer,
    tokens: &UserTokens,
    meta: &ServerMetadata,
    redirect_uri: &str,
    scope: Option<&str>,
) -> Result<(String, AuthMethod), String> {
    if let Some(id) = &tokens.settings.client_id {
        let method = token::choose_method(None, tokens.settings.client_secret.is_some(), false, meta);
        return Ok((id.clone(), method));
    }
    if let Some(r) = tokens.registration(&meta.issuer).await.filter(|r| r.redirect_uri == redirect_uri) {
        return Ok((r.client_id, r.method));
    }
    let (reg, secret) = crate::oauth_client::registration::register(&tokens.http, meta, redirect_uri, scope)
        .await
        .map_err(|e| e.message)?;
    let key = wire::digest(&meta.issuer);
    let secret = secret.map(|s| server.sealer.seal(&owner(&key, "secret"), s.as_bytes())).transpose()?;
    let record = Registration {
        client_id: reg.client_id.clone(),
        method: reg.method,
        redirect_uri: redirect_uri.to_owned(),
        secret,
    };
    records::write(&*server.state, Table::UpstreamClient, &key, &record, None).await.map_err(|e| e.to_string())?;
    Ok((reg.client_id, reg.method))
}
