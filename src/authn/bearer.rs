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
    let Ok(value) = value.to_str() else { return Bearer::Malformed("the Authorization header is not text") };
    let Some((scheme, token)) = value.split_once(' ') else {
        return Bearer::Malformed("the Authorization header is not \"Bearer <token>\"");
    };
    let token = token.trim_start_matches(' ');
    // RFC 6750's b64token: what a JWT is made of, and '=' only at the end.
    let b64token = !token.is_empty()
        && token.trim_end_matches('=').bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !scheme.eq_ignore_ascii_case("bearer") || !b64token {
        return Bearer::Malformed("the Authorization header is not \"Bearer <token>\"");
    }
    Bearer::Token(token)
}

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
