//! `WWW-Authenticate: Bearer …` challenges (RFC 6750 §3, RFC 9728 §5.1): what the resource
//! server asks for — where its metadata is, which scopes, and why the token was refused.

/// The parameters of a `Bearer` challenge the client acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// RFC 9728: the protected-resource metadata URL.
    pub resource_metadata: Option<String>,
    /// Space-separated scopes the resource wants.
    pub scope: Option<String>,
    /// `invalid_token`, `insufficient_scope`, …
    pub error: Option<String>,
}

impl Challenge {
    pub fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }

    /// The `Bearer` challenge among every `WWW-Authenticate` value of a response (a response
    /// may carry several challenges, in several headers or comma-separated in one).
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Challenge> {
        headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Self::from_value)
    }

    /// The `Bearer` challenge in one `WWW-Authenticate` value.
    pub fn from_value(value: &str) -> Option<Challenge> {
        let (_, params) = parse(value).into_iter().find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))?;
        let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
        Some(Challenge { resource_metadata: get("resource_metadata"), scope: get("scope"), error: get("error") })
    }
}

type Params = Vec<(String, String)>;

/// Parses a `WWW-Authenticate` value into (scheme, auth-params) pairs (RFC 9110 §11.6.1).
/// Lenient: an unparsable tail ends the list instead of failing the whole header.
pub fn parse(value: &str) -> Vec<(String, Params)> {
    let mut out: Vec<(String, Params)> = Vec::new();
    let mut rest = value.trim_start();
    while !rest.is_empty() {
        let (token, after) = take_token(rest);
        if token.is_empty() {
            // Stray separators between challenges.
            rest = after.strip_prefix(',').unwrap_or(&after[after.len().min(1)..]).trim_start();
            continue;
        }
        let after_ws = after.trim_start();
        if let Some(value_part) = after_ws.strip_prefix('=').filter(|_| !out.is_empty() && !after_ws.starts_with("=="))
        {
            // `name = value`: a parameter of the current challenge.
            let (v, tail) = take_value(value_part.trim_start());
            if let Some((_, params)) = out.last_mut() {
                params.push((token.to_owned(), v));
            }
            rest = tail.trim_start();
        } else {
            // A new scheme (possibly followed by a token68, which we skip).
            out.push((token.to_owned(), Vec::new()));
            rest = after_ws;
            let (maybe_param, after_param) = take_token(rest);
            if !maybe_param.is_empty() && !after_param.trim_start().starts_with('=') {
                rest = after_param.trim_start();
            }
        }
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        }
    }
    out
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/".contains(c)
}

fn take_token(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_tchar(c)).unwrap_or(s.len());
    s.split_at(end)
}

/// A token or a quoted-string (with `\` escapes).
fn take_value(s: &str) -> (String, &str) {
    let Some(body) = s.strip_prefix('"') else {
        let (t, rest) = take_token(s);
        return (t.to_owned(), rest);
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
            }
            '"' => return (out, &body[i + 1..]),
            _ => out.push(c),
        }
    }
    (out, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(v: &str) -> Option<Challenge> {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::WWW_AUTHENTICATE, v.parse().unwrap());
        Challenge::from_headers(&h)
    }

    #[test]
    fn table() {
        let c = bearer(r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="files:read files:write""#).unwrap();
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://mcp.example/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        let c = bearer(r#"Basic realm="x", Bearer error="insufficient_scope", scope="admin""#).unwrap();
        assert!(c.insufficient_scope());
        assert_eq!(c.scope.as_deref(), Some("admin"));
        let c = bearer(r#"bearer error=invalid_token, error_description="The \"token\" expired""#).unwrap();
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        assert_eq!(bearer("Bearer").unwrap(), Challenge::default());
        assert!(bearer(r#"Basic realm="only basic""#).is_none());
        assert!(bearer(r#"Negotiate abc123=="#).is_none());
        // Garbage never panics.
        for junk in ["", ",,,", "=", "Bearer =", "Bearer a=\"unterminated", "Bearer ,, a=b,, ,c=\"d\"", "\"x\" Bearer"]
        {
            let _ = parse(junk);
        }
        let c = bearer(r#"Bearer ,, scope=b,, ,error="d""#).unwrap();
        assert_eq!((c.scope.as_deref(), c.error.as_deref()), (Some("b"), Some("d")));
    }
}
