//! The caller's bearer token (RFC 6750 §2.1): from the `Authorization` header only — a token in
//! the query (`?access_token=`) or a form body is never looked at, so it cannot end up in a log
//! line or a `Referer`.

use http::HeaderMap;
use http::header::AUTHORIZATION;

pub enum Bearer<'a> {
    None,
    Token(&'a str),
    /// An `Authorization` header that is not one bearer token.
    Malformed(&'static str),
}

pub fn of(headers: &HeaderMap) -> Bearer<'_> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = all.next() else { return Bearer::None };
    if all.next().is_some() {
        return Bearer::Malformed("more than one Authorization header");
    }
    let malformed = Bearer::Malformed("the Authorization header is not \"Bearer <token>\"");
    let Ok(value) = value.to_str() else { return malformed };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => match token.trim_start_matches(' ') {
            "" => malformed,
            token => Bearer::Token(token),
        },
        _ => malformed,
    }
}

/// Whether `token` is RFC 6750's b64token (what a JWT is made of, `=` only at the end): asked
/// of a token before its first verification only — one verified lately is the same bytes.
pub fn well_formed(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !token.is_empty() && body.bytes().all(|b| B64TOKEN[usize::from(b)])
}

/// The bytes of RFC 6750's b64token but its trailing '=': `A-Z a-z 0-9 - . _ ~ + /`.
const B64TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_bearer_header_is_a_token() {
        let of_values = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(AUTHORIZATION, v.parse().unwrap());
            }
            match of(&h) {
                Bearer::None => "none".to_owned(),
                Bearer::Token(t) if !well_formed(t) => "malformed".to_owned(),
                Bearer::Token(t) => t.to_owned(),
                Bearer::Malformed(_) => "malformed".to_owned(),
            }
        };
        assert_eq!(of_values(&[]), "none");
        assert_eq!(of_values(&["Bearer a.b.c"]), "a.b.c");
        assert_eq!(of_values(&["bearer  a.b-c_d"]), "a.b-c_d");
        assert_eq!(of_values(&["Basic dXNlcjpwYXNz"]), "malformed");
        assert_eq!(of_values(&["Bearer"]), "malformed");
        assert_eq!(of_values(&["Bearer a b"]), "malformed");
        assert_eq!(of_values(&["Bearer a=b"]), "malformed");
        assert_eq!(of_values(&["Bearer a.b.c", "Bearer d.e.f"]), "malformed");
    }
}
