//! How the authorization server answers: JSON documents and OAuth errors (RFC 6749 §5.2) never
//! cached, HTML pages that cannot be framed or leak their URL, redirects, and the parameters of
//! a request read once, with a repeated parameter refused (RFC 6749 §3.1).

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION};
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use serde_json::{Value, json};

use crate::http::body::{self, Body};

pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    /// The query's parameters (GET) or the form's (POST `application/x-www-form-urlencoded`).
    pub fn params(&self) -> Result<Params, String> {
        let raw: &[u8] = if self.method == Method::POST {
            let ct = self.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let essence = ct.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                return Err("the body must be application/x-www-form-urlencoded".into());
            }
            &self.body
        } else {
            self.uri.query().unwrap_or("").as_bytes()
        };
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw) {
            if map.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                return Err(format!("the parameter {k:?} is given more than once"));
            }
        }
        Ok(Params(map))
    }

    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct Params(HashMap<String, String>);

impl Params {
    /// A parameter, empty counting as absent (RFC 6749 §3.1).
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// A JSON document, never cached (RFC 6749 §5.1).
pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(body::full(value.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// An OAuth error answer (RFC 6749 §5.2): the code a client acts on, and words for its log.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    let mut r = json(status, &json!({"error": error, "error_description": description}));
    if status == StatusCode::UNAUTHORIZED {
        // RFC 6749 §5.2: a failed client authentication names its scheme.
        r.headers_mut().insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"mcpgate\""));
    }
    r
}

/// An HTML page: not framed (clickjacking the consent), no scripts, no referrer beyond the
/// gateway, never cached.
pub fn page(status: StatusCode, title: &str, body_html: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>{title}</title><style>body{{font-family:system-ui,sans-serif;\
         max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}button{{font-size:1rem;padding:.5rem 1.2rem;\
         margin-right:.5rem}}code{{background:#eee;padding:0 .2rem}}</style></head><body>{body_html}</body></html>",
        title = escape(title)
    );
    let mut r = Response::new(body::full(html));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // No `form-action`: the consent form's answer redirects to the identity provider, and
    // browsers hold redirects after a form to that directive too.
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    // Not `no-referrer`: under it a browser sends `Origin: null` with the consent form's POST.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

/// A page saying what went wrong, for errors that must not be sent to a redirect URI (an
/// unknown client, a redirect URI not registered: RFC 6749 §4.1.2.1).
pub fn error_page(status: StatusCode, message: &str) -> Response<Body> {
    page(status, "Sign-in failed", &format!("<h1>Sign-in failed</h1><p>{}</p>", escape(message)))
}

/// Sends the browser on (303: the next request is a GET, whatever this one was).
pub fn redirect(location: &str) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(LOCATION, v);
            r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut().insert("referrer-policy", HeaderValue::from_static("no-referrer"));
            r
        }
        Err(_) => error_page(StatusCode::BAD_REQUEST, "the redirect address cannot be sent"),
    }
}

/// `base` with `params` appended to its query.
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()));
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", q.finish())
}

/// 429, with when to try again.
pub fn too_many(wait: std::time::Duration) -> Response<Body> {
    let mut r = oauth_error(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        "too many requests from this address; try again later",
    );
    let secs = wait.as_secs().max(1).to_string();
    if let Ok(v) = HeaderValue::from_str(&secs) {
        r.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    r
}

pub fn not_found() -> Response<Body> {
    oauth_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = oauth_error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", &format!("use {allow}"));
    r.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// SHA-256, base64url (PKCE's S256): how codes and refresh tokens are looked up (the store holds
/// no token).
/// RFC 9207 §2.4: an authorization response's `iss` names the issuer asked (mix-up), and is there
/// when that issuer says it sends it (`must`).
pub fn iss_ok(given: Option<&str>, must: bool, issuer: &str) -> bool {
    !(must && given.is_none()) && given.is_none_or(|g| g == issuer)
}

pub fn digest(s: &str) -> String {
    crate::oauth_client::pkce::s256(s)
}

/// The host a URI names (what a user is told they will be sent back to); empty if none.
pub fn host_of(uri: &str) -> String {
    uri.parse::<http::Uri>().ok().and_then(|u| u.host().map(str::to_owned)).unwrap_or_default()
}

/// Whether the space-separated scopes `granted` include every one of `asked`.
pub fn scope_covers(granted: &str, asked: &str) -> bool {
    asked.split(' ').filter(|s| !s.is_empty()).all(|s| granted.split(' ').any(|g| g == s))
}

/// A new random value (codes, tokens, ids): 32 bytes, base64url.
pub fn random() -> String {
    crate::oauth_client::pkce::random_token(32).expect("the OS random generator")
}
