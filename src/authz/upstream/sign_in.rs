//! `GET /upstream/<server>/sign-in?ticket=…`: the link a user was given for a server they must
//! sign in to (and the routing of `/upstream/<server>/…`). The browser must be the ticket's user's — signed in to the gateway as them (else
//! it signs in first, and comes back): a link forwarded to someone else, or planted in their
//! browser, never puts their account behind another user's requests. Then on to the server's
//! authorization server (code + PKCE), as a client the gateway is there.

use http::{Method, Response, StatusCode};

use super::super::state::{Table, now_secs};
use super::super::wire::{self, Request};
use super::super::{AuthorizationServer, cookies, handoff};
use super::UserTokens;
use super::callback::Login;
use super::held::{self, Registration};
use super::ticket::Ticket;
use crate::http::body::Body;
use crate::oauth_client::discovery::{self, ServerMetadata};
use crate::oauth_client::token::{self, AuthMethod};

const PREFIX: &str = "/upstream/";

/// `/upstream/<server>/<leaf>`, the server's name as a path segment.
pub fn path(server: &str, leaf: &str) -> String {
    format!("{PREFIX}{}/{leaf}", crate::url::encode_segment(server))
}

/// The server and leaf (`sign-in`, `callback`) an upstream sign-in path names.
fn parse(path: &str) -> Option<(std::borrow::Cow<'_, str>, &str)> {
    let (name, leaf) = path.strip_prefix(PREFIX)?.split_once('/')?;
    matches!(leaf, "sign-in" | "callback").then_some(())?;
    Some((crate::url::decode_segment(name).filter(|n| !n.is_empty())?, leaf))
}

/// Whether the authorization server answers `path` here.
pub fn is_upstream_path(path: &str) -> bool {
    parse(path).is_some()
}

pub async fn answer(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    if req.method != Method::GET {
        return wire::method_not_allowed("GET");
    }
    let Some((name, leaf)) = parse(req.uri.path()) else { return wire::not_found() };
    if leaf == "callback" {
        return super::callback::answer(server, req, &name).await;
    }
    sign_in(server, req, &name).await
}

async fn sign_in(server: &AuthorizationServer, req: &Request, name: &str) -> Response<Body> {
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
            // Back here once signed in: a path of the gateway's own, never another origin.
            let here = req.uri.path_and_query().map_or(req.uri.path(), |p| p.as_str());
            return handoff::sign_in_then(server, req, here).await;
        }
    }
    let tokens = server.upstreams.lock().unwrap_or_else(|p| p.into_inner()).get(name).and_then(|w| w.upgrade());
    let Some(tokens) = tokens else { return expired() };
    let (browser, set_cookie) = cookies::browser(req, &names);
    let resp = match authorize_url(server, &tokens, &ticket, &browser).await {
        Ok(url) => wire::redirect(&url),
        Err(e) => {
            tracing::warn!(server = %name, "an upstream sign-in could not start: {e}");
            wire::error_page(
                StatusCode::BAD_GATEWAY,
                &format!("the sign-in to {name} cannot start now: its authorization server could not be used"),
            )
        }
    };
    cookies::with_browser(resp, set_cookie)
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
    let redirect_uri = tokens.redirect_uri();
    let scope = tokens.settings.scopes.clone().or_else(|| resource_scopes.map(|s| s.join(" ")));
    let (client_id, method) = client_identity(tokens, &meta, &redirect_uri, scope.as_deref()).await?;
    let pkce = crate::oauth_client::pkce::Pkce::new()?;
    let state = wire::random();
    let login = Login {
        server: ticket.server.clone(),
        sub: ticket.sub.clone(),
        verifier: pkce.verifier.clone(),
        browser: wire::digest(browser),
        client: held::Client { metadata: meta, client_id: client_id.clone(), method },
        resource: Some(resource.clone()).filter(|r| !r.is_empty()),
    };
    held::write(server, Table::UpstreamLogin, &state, &login, Some(handoff::REQUEST_TTL)).await?;
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
/// there for this server's redirect URI (made once, RFC 7591, one at a time; its secret kept
/// sealed).
async fn client_identity(
    tokens: &UserTokens,
    meta: &ServerMetadata,
    redirect_uri: &str,
    scope: Option<&str>,
) -> Result<(String, AuthMethod), String> {
    if let Some(id) = &tokens.settings.client_id {
        let method = token::choose_method(None, tokens.settings.client_secret.is_some(), false, meta);
        return Ok((id.clone(), method));
    }
    let _one = tokens.registering.lock().await;
    if let Some(r) = tokens.registration(&meta.issuer).await {
        return Ok((r.client_id, r.method));
    }
    let (reg, secret) = crate::oauth_client::registration::register(&tokens.http, meta, redirect_uri, scope)
        .await
        .map_err(|e| e.message)?;
    let record = Registration { client_id: reg.client_id.clone(), method: reg.method, secret };
    held::write(&tokens.authz, Table::UpstreamClient, &tokens.registration_key(&meta.issuer), &record, None).await?;
    Ok((reg.client_id, reg.method))
}
