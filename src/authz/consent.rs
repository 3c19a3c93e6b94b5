//! The gateway's consent page: which client asks, where it sends the user back, for what. The
//! form's token is bound to the browser (a cookie set once and kept) and to the one pending
//! request, and checking it changes nothing: a page loaded twice, or prefetched before the user
//! opened it, still approves. The answer must come from the gateway's own page (`Origin`,
//! `Sec-Fetch-Site`), and the page cannot be framed (`wire::page`).

use http::header::HeaderValue;
use http::{Response, StatusCode};

use super::handoff::{back_with_error, sign_in};
use super::records::{self, Client, Pending};
use super::state::Table;
use super::wire::{self, Request, escape};
use super::{AuthorizationServer, cookies};
use crate::http::body::Body;

fn token(server: &AuthorizationServer, browser: &str, request: &str) -> String {
    cookies::sign(&server.cookie_key, "consent", &format!("{browser}\0{request}"))
}

/// The page for the pending request `id`.
pub fn page(server: &AuthorizationServer, req: &Request, id: &str, client: &Client, p: &Pending) -> Response<Body> {
    let names = cookies::names(&server.settings.public_url);
    let (browser, set_cookie) = cookies::browser(req, &names);
    let name = client.client_name.as_deref().unwrap_or("An unnamed client");
    let back_to = wire::host_of(&p.redirect_uri);
    let scopes = if p.scope.is_empty() {
        "<li>use the MCP servers of this gateway as you</li>".to_owned()
    } else {
        p.scope.split(' ').filter(|s| !s.is_empty()).map(|s| format!("<li><code>{}</code></li>", escape(s))).collect()
    };
    let html = format!(
        "<h1>Allow {name}?</h1>\
         <p><strong>{name}</strong> asks to:</p><ul>{scopes}</ul>\
         <p>You will be sent back to <strong>{host}</strong> after you sign in. Allow it only if you started this.</p>\
         <form method=\"post\" action=\"/authorize\">\
         <input type=\"hidden\" name=\"request\" value=\"{id}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        name = escape(name),
        host = escape(&back_to),
        id = escape(id),
        csrf = token(server, &browser, id),
    );
    let resp = wire::page(StatusCode::OK, &format!("Allow {name}?"), &html);
    cookies::with_browser(resp, set_cookie)
}

/// Whether a POST comes from a page of this gateway: `Origin` (when sent) is the gateway's,
/// `Sec-Fetch-Site` (when sent) says same-origin.
fn same_origin(server: &AuthorizationServer, req: &Request) -> bool {
    let origin_ok =
        req.header(http::header::ORIGIN).is_none_or(|o| o.eq_ignore_ascii_case(&server.settings.public_url));
    let site_ok = req.header("sec-fetch-site").is_none_or(|s| s == "same-origin");
    origin_ok && site_ok
}

/// `POST /authorize`: the user's answer.
pub async fn decide(server: &AuthorizationServer, req: &Request) -> Response<Body> {
    let refused = |why: &str| wire::error_page(StatusCode::FORBIDDEN, why);
    if !same_origin(server, req) {
        tracing::warn!("refused a consent answer from another site");
        return refused("this answer did not come from the gateway's consent page");
    }
    let params = match req.params() {
        Ok(p) => p,
        Err(e) => return wire::error_page(StatusCode::BAD_REQUEST, &e),
    };
    let (Some(id), Some(csrf)) = (params.get("request"), params.get("csrf")) else {
        return wire::error_page(StatusCode::BAD_REQUEST, "the consent form is incomplete");
    };
    let names = cookies::names(&server.settings.public_url);
    let bound = cookies::get(req, names.browser)
        .is_some_and(|b| cookies::verify(&server.cookie_key, "consent", &format!("{b}\0{id}"), csrf));
    if !bound {
        tracing::warn!("refused a consent answer whose token does not match this browser");
        return refused("this consent form was not shown in this browser; start the sign-in again from your client");
    }
    let pending: Pending = match records::read(&*server.state, Table::Request, id).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return wire::error_page(StatusCode::BAD_REQUEST, "this sign-in expired; start it again from your client");
        }
        Err(e) => {
            tracing::error!("{e}");
            return wire::error_page(StatusCode::SERVICE_UNAVAILABLE, "the gateway cannot sign anyone in now");
        }
    };
    match params.get("decision") {
        Some("approve") => {
            let mut resp = sign_in(server, req, id, &pending).await;
            resp.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
            resp
        }
        Some("deny") => {
            let _ = server.state.take(Table::Request, id).await;
            back_with_error(server, &pending, "access_denied", "the user denied the request")
        }
        _ => wire::error_page(StatusCode::BAD_REQUEST, "the consent form is incomplete"),
    }
}
