//! `application/x-www-form-urlencoded` and URL query strings: encoding what we send to an
//! authorization server, decoding the query of the redirect it sends the browser back with.
//! A few lines instead of the `url` crate and its IDNA tables.

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k1=v1&k2=v2`, each part encoded.
pub fn form<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs.into_iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// `base` with the pairs appended to its query.
pub fn with_query<'a>(base: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", form(pairs))
}

/// Decodes `%XX` and `+`; invalid escapes stay as they are; invalid UTF-8 is replaced.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The decoded pairs of a query string (without the `?`).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for s in ["plain", "a b+c&d=e/f?g#h", "ü€", "%", "http://127.0.0.1:3000/cb?x=1"] {
            assert_eq!(decode(&encode(s)), s);
        }
        assert_eq!(form([("scope", "a b"), ("x", "&")]), "scope=a%20b&x=%26");
        assert_eq!(with_query("https://as/authorize?tenant=1", [("a", "b")]), "https://as/authorize?tenant=1&a=b");
        assert_eq!(decode("a+b%2"), "a b%2");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%41%4a"), "AJ");
        let q = parse_query("code=abc%2F1&state=s+t&&iss=https%3A%2F%2Fas&flag");
        assert_eq!(
            q,
            [("code", "abc/1"), ("state", "s t"), ("iss", "https://as"), ("flag", "")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }
}
