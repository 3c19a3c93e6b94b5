//! Redirect URIs: what a client may register (https, or http to loopback: RFC 8252 §7.3), and
//! when a request's redirect URI is one it registered (exactly, a loopback IP's port aside).

use http::Uri;

/// Loopback host names: a redirect there stays on the user's machine.
fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "::1" | "localhost")
}

/// Whether `raw` may be registered as a redirect URI: an absolute https URL, or http to
/// loopback (a native client's listener, RFC 8252 §7.3); no fragment, no user info.
pub fn check_redirect_uri(raw: &str) -> Result<(), String> {
    if raw.len() > 2000 {
        return Err("a redirect URI is longer than 2000 characters".into());
    }
    if raw.contains('#') {
        return Err(format!("{raw:?} has a fragment"));
    }
    let uri: Uri = raw.parse().map_err(|_| format!("{raw:?} is not an absolute URL"))?;
    let host = uri.host().unwrap_or("");
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!("{raw:?} carries user info"));
    }
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err(format!("{raw:?}: plain http is only for loopback (127.0.0.1, [::1], localhost)")),
        _ => Err(format!("{raw:?} must be an https URL, or http to loopback")),
    }
}

/// Whether `given` names `registered`: the same string, except that a loopback redirect may use
/// any port (a native client listens on whatever port is free: RFC 8252 §7.3).
pub fn redirect_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let (Ok(r), Ok(g)) = (registered.parse::<Uri>(), given.parse::<Uri>()) else { return false };
    r.scheme_str() == Some("http")
        && g.scheme_str() == Some("http")
        && r.host().is_some_and(|h| is_loopback(h) && h != "localhost")
        && r.host() == g.host()
        && !given.contains('#')
        && !g.authority().is_some_and(|a| a.as_str().contains('@'))
        && r.path_and_query().map(|p| p.as_str()) == g.path_and_query().map(|p| p.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_redirects_register() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1:3000/cb",
            "http://localhost/cb",
            "http://[::1]:9/x?y=1",
        ] {
            assert_eq!(check_redirect_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://evil.example/cb",
            "https://a.example/cb#frag",
            "https://user@a.example/cb",
            "javascript:alert(1)",
            "/relative",
            "cursor://callback",
            "",
            "http://127.0.0.1.evil.example/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_loopback_redirect_may_change_its_port_and_nothing_else() {
        assert!(redirect_matches("http://127.0.0.1/cb", "http://127.0.0.1:51000/cb"));
        assert!(redirect_matches("http://127.0.0.1:1/cb", "http://127.0.0.1:2/cb"));
        assert!(!redirect_matches("http://127.0.0.1/cb", "http://127.0.0.1:51000/cb2"));
        assert!(!redirect_matches("http://127.0.0.1/cb", "http://127.0.0.2/cb"));
        assert!(!redirect_matches("https://a.example/cb", "https://a.example:444/cb"));
        assert!(!redirect_matches("http://localhost/cb", "http://localhost:9/cb"));
    }
}
