//! The two cookies the gateway sets, and the values it signs for a browser. A fixed pair, so
//! their number never grows however many sign-ins a browser starts:
//! - the browser's id (random, for the session): what a consent form's token is bound to;
//! - the signed-in user (`sub`, 12 hours): lets a remembered consent skip the page.
//!
//! On https they are `__Host-` cookies (Secure, Path=/, no Domain: only this origin sets or reads
//! them); on a loopback http gateway (development) the prefix and Secure cannot apply.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use http::header::COOKIE;

use super::wire::Request;

pub struct Names {
    pub browser: &'static str,
    pub user: &'static str,
    secure: bool,
}

pub fn names(public_url: &str) -> Names {
    if public_url.starts_with("https://") {
        Names { browser: "__Host-mcpgate-browser", user: "__Host-mcpgate-user", secure: true }
    } else {
        Names { browser: "mcpgate-browser", user: "mcpgate-user", secure: false }
    }
}

impl Names {
    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax (sent on the top-level navigation back from
    /// the provider, never on a cross-site POST), `max_age` seconds or the browser's session.
    pub fn set(&self, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("mcpgate-invalid=1"))
    }
}

/// A cookie's value; `None` when absent, or sent twice (one of them planted by a sibling host).
pub fn get<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    let mut found = None;
    for header in req.headers.get_all(COOKIE) {
        for pair in header.to_str().ok()?.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else { continue };
            if k == name {
                if found.is_some() {
                    return None;
                }
                found = Some(v);
            }
        }
    }
    found.filter(|v| !v.is_empty() && v.len() <= 512)
}

/// The browser's id: its cookie's, or a new one with the `Set-Cookie` that gives it.
pub fn browser(req: &Request, names: &Names) -> (String, Option<HeaderValue>) {
    match get(req, names.browser) {
        Some(b) if b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') => (b.to_owned(), None),
        _ => {
            let id = super::wire::random();
            let cookie = names.set(names.browser, &id, None);
            (id, Some(cookie))
        }
    }
}

/// `resp`, with the `Set-Cookie` that gives the browser its id when `cookies::browser` made one.
pub fn with_browser(
    mut resp: http::Response<crate::http::body::Body>,
    set_cookie: Option<HeaderValue>,
) -> http::Response<crate::http::body::Body> {
    if let Some(cookie) = set_cookie {
        resp.headers_mut().append(http::header::SET_COOKIE, cookie);
    }
    resp
}

/// `data` signed for `purpose` with the gateway's browser key.
pub fn sign(key: &ring::hmac::Key, purpose: &str, data: &str) -> String {
    let tag = ring::hmac::sign(key, format!("{purpose}\0{data}").as_bytes());
    URL_SAFE_NO_PAD.encode(tag.as_ref())
}

pub fn verify(key: &ring::hmac::Key, purpose: &str, data: &str, signature: &str) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(signature) else { return false };
    ring::hmac::verify(key, format!("{purpose}\0{data}").as_bytes(), &tag).is_ok()
}

/// The signed-in user cookie's value: `sub` and expiry, signed.
pub fn user_value(key: &ring::hmac::Key, sub: &str, expires: u64) -> String {
    let data = URL_SAFE_NO_PAD.encode(format!("{expires}\0{sub}"));
    format!("{data}.{}", sign(key, "user", &data))
}

/// The `sub` a user cookie names, if it is ours and current.
pub fn user_of(key: &ring::hmac::Key, value: &str, now: u64) -> Option<String> {
    let (data, sig) = value.split_once('.')?;
    if !verify(key, "user", data, sig) {
        return None;
    }
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(data).ok()?).ok()?;
    let (expires, sub) = text.split_once('\0')?;
    (expires.parse::<u64>().ok()? > now).then(|| sub.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_https_the_cookies_are_host_only_secure_http_only_and_lax() {
        let n = names("https://gw.example");
        assert_eq!((n.browser, n.user), ("__Host-mcpgate-browser", "__Host-mcpgate-user"));
        let c = n.set(n.browser, "v", None);
        assert_eq!(c.to_str().unwrap(), "__Host-mcpgate-browser=v; Path=/; HttpOnly; SameSite=Lax; Secure");
        let n = names("http://127.0.0.1:8080");
        assert_eq!(
            n.set(n.user, "v", Some(60)).to_str().unwrap(),
            "mcpgate-user=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
    }

    #[test]
    fn a_user_cookie_holds_only_while_signed_and_current() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k");
        let v = user_value(&key, "alice", 100);
        assert_eq!(user_of(&key, &v, 99).as_deref(), Some("alice"));
        assert_eq!(user_of(&key, &v, 100), None, "expired");
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"other");
        assert_eq!(user_of(&other, &v, 1), None, "signed by another key");
        let (data, sig) = v.split_once('.').unwrap();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(format!("999\0{}", "mallory")));
        assert_eq!(user_of(&key, &forged, 1), None);
        assert!(user_of(&key, &format!("{data}.x{sig}"), 1).is_none());
    }
}
