//! `WWW-Authenticate: Bearer …` and `DPoP …` challenges (RFC 6750 §3, RFC 9449 §7.1, RFC 9728
//! §5.1): what the resource server asks for — where its metadata is, which scopes, why the
//! token was refused, and whether it takes DPoP-bound tokens.

/// The parameters of a `Bearer` or `DPoP` challenge the client acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// RFC 9728: the protected-resource metadata URL.
    pub resource_metadata: Option<String>,
    /// Space-separated scopes the resource wants.
    pub scope: Option<String>,
    /// `invalid_token`, `insufficient_scope`, `use_dpop_nonce`, …
    pub error: Option<String>,
    /// The server offered the `DPoP` scheme (RFC 9449 §7.1), with the `algs` it accepts if it
    /// said (`Some("")` when it did not).
    pub dpop_algs: Option<String>,
    /// The server offered the `Bearer` scheme too (or only).
    pub bearer: bool,
}

impl Challenge {
    pub fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }

    /// RFC 9449 §9: the resource server wants a proof with its nonce (in `DPoP-Nonce`).
    pub fn use_dpop_nonce(&self) -> bool {
        self.error.as_deref() == Some("use_dpop_nonce")
    }

    /// The server takes DPoP-bound tokens with proofs mcpgate can sign (ES256, or no `algs` said).
    pub fn offers_dpop(&self) -> bool {
        self.dpop_algs.as_deref().is_some_and(|a| a.is_empty() || a.split_whitespace().any(|x| x == super::dpop::ALG))
    }

    /// The server takes DPoP-bound tokens mcpgate can prove, and offered no `Bearer` scheme: a
    /// Bearer token, however fresh, is refused.
    pub fn dpop_only(&self) -> bool {
        self.offers_dpop() && !self.bearer
    }

    /// The `Bearer` and `DPoP` challenges among every `WWW-Authenticate` value of a response (a
    /// response may carry several challenges, in several headers or comma-separated in one).
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Challenge> {
        let mut found: Option<Challenge> = None;
        for value in headers.get_all(http::header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()) {
            if let Some(c) = Self::from_value(value) {
                found = Some(match found {
                    Some(f) => f.merge(c),
                    None => c,
                });
            }
        }
        found
    }

    /// The `Bearer` and `DPoP` challenges in one `WWW-Authenticate` value, as one: the `Bearer`
    /// one's parameters first, the `DPoP` one's where it has none (a server that takes only
    /// DPoP says everything there, `error="use_dpop_nonce"` included).
    pub fn from_value(value: &str) -> Option<Challenge> {
        let mut found: Option<Challenge> = None;
        for (scheme, params) in parse(value) {
            let dpop = scheme.eq_ignore_ascii_case("dpop");
            if !dpop && !scheme.eq_ignore_ascii_case("bearer") {
                continue;
            }
            let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
            let c = Challenge {
                resource_metadata: get("resource_metadata"),
                scope: get("scope"),
                error: get("error"),
                dpop_algs: dpop.then(|| get("algs").unwrap_or_default()),
                bearer: !dpop,
            };
            found = Some(match found {
                Some(f) => f.merge(c),
                None => c,
            });
        }
        found
    }

    /// `self`, with `other`'s parameters where `self` has none. A `Bearer` challenge's parameters
    /// win over a `DPoP` one's, whichever came first.
    fn merge(self, other: Challenge) -> Challenge {
        let (first, second) =
            if self.dpop_algs.is_some() && other.dpop_algs.is_none() { (other, self) } else { (self, other) };
        // `use_dpop_nonce` is the DPoP challenge's word whatever the Bearer one says: it is the
        // one refusal a retry with a nonce cures.
        let error = if second.use_dpop_nonce() { second.error } else { first.error.or(second.error) };
        Challenge {
            resource_metadata: first.resource_metadata.or(second.resource_metadata),
            scope: first.scope.or(second.scope),
            error,
            dpop_algs: first.dpop_algs.or(second.dpop_algs),
            bearer: first.bearer || second.bearer,
        }
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
        assert_eq!(bearer("Bearer").unwrap(), Challenge { bearer: true, ..Challenge::default() });
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

    #[test]
    fn dpop_challenges() {
        // A server that takes only DPoP-bound tokens says everything in its DPoP challenge.
        let c = bearer(r#"DPoP resource_metadata="https://mcp.example/prm""#).unwrap();
        assert_eq!(c.resource_metadata.as_deref(), Some("https://mcp.example/prm"));
        assert!(c.offers_dpop() && !c.use_dpop_nonce() && c.dpop_only());
        let c =
            bearer(r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#)
                .unwrap();
        assert!(c.use_dpop_nonce());
        // Both schemes: Bearer's parameters, DPoP's algs; none of ours among them means no DPoP.
        let c = bearer(r#"Bearer scope="a", resource_metadata="https://b/prm", DPoP algs="RS256 PS256", scope="x""#)
            .unwrap();
        assert_eq!((c.scope.as_deref(), c.dpop_algs.as_deref()), (Some("a"), Some("RS256 PS256")));
        assert!(!c.offers_dpop() && !c.dpop_only());
        assert!(bearer(r#"DPoP algs="ES256 PS256""#).unwrap().offers_dpop());
        assert!(!bearer(r#"Bearer, DPoP algs="ES256""#).unwrap().dpop_only(), "Bearer taken too");
        assert!(!bearer(r#"Bearer scope="a""#).unwrap().offers_dpop());
        // In two headers, DPoP first: the same.
        let mut h = http::HeaderMap::new();
        h.append(http::header::WWW_AUTHENTICATE, r#"DPoP error="use_dpop_nonce""#.parse().unwrap());
        h.append(http::header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token", scope="s""#.parse().unwrap());
        let c = Challenge::from_headers(&h).unwrap();
        assert!(c.use_dpop_nonce() && c.offers_dpop() && !c.dpop_only());
        assert_eq!(c.scope.as_deref(), Some("s"));
    }
}
