//! URLs mcpgate is given (a config's `url`s, OAuth URLs, the command line): checked whole —
//! scheme, host and port — and printed only without the parts that may hold a secret.
//!
//! The printing rule, written once for every message, log line and `check` output: a URL is
//! shown as `scheme://host[:port]/path`, never with its user info (`user:password@`) or its
//! query (`?key=…`), and a text that does not even parse as a URL is not shown at all (where its
//! user info ends cannot be known, so no part of it is safe).

use http::Uri;

/// Parses a URL mcpgate is to send requests to: `http` or `https`, a host, and a port (if one
/// is written) within 1..=65535. The error names what is wrong and shows the URL as `display`
/// does; the caller prefixes where the URL came from (a config path, a flag).
pub fn parse(raw: &str) -> Result<Uri, String> {
    let uri: Uri = raw.parse().map_err(|e| format!("not a valid URL ({e})"))?;
    check(&uri)?;
    Ok(uri)
}

/// What `parse` requires of a URL already parsed.
pub fn check(uri: &Uri) -> Result<(), String> {
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("{}: the scheme must be http or https, not {other}", display(uri))),
        None => return Err("not an absolute URL (expected http://host/path or https://host/path)".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{}: the URL has no host", display(uri)));
    }
    match port(uri)? {
        Some(0) => Err(format!("{}: port 0 is not a port to connect to (use 1 to 65535)", display(uri))),
        _ => Ok(()),
    }
}

/// The port as written, `None` when the URL has none. `http::Uri` accepts any text after the
/// host's `:` and then reports no port at all (so a client would silently use the scheme's
/// default, 80 or 443, with the credentials meant for another port): here a port must be
/// digits worth at most 65535. A port that is not digits is not shown: in
/// `http://user:pass/word@host/` the password is what `http::Uri` takes for a port.
pub fn port(uri: &Uri) -> Result<Option<u16>, String> {
    let Some(written) = port_text(uri) else { return Ok(None) };
    if written.is_empty() {
        return Err(format!("{}: the port after ':' is empty", display(uri)));
    }
    if !written.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port must be a number from 1 to 65535".into());
    }
    match written.parse::<u16>() {
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(format!("{}: port {written} is out of range (1 to 65535)", display(uri))),
    }
}

/// The text after the host's `:` in the authority, user info and IPv6 brackets skipped.
fn port_text(uri: &Uri) -> Option<&str> {
    let authority = uri.authority()?.as_str();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let after_host = match host_port.strip_prefix('[') {
        Some(v6) => &v6[v6.find(']')? + 1..],
        None => &host_port[host_port.find(':')?..],
    };
    after_host.strip_prefix(':')
}

/// A resource indicator (RFC 8707) or similar identifier: an absolute URI; one that is `http`
/// or `https` is checked as `parse` checks it (others, such as Azure's `api://…`, are names).
pub fn check_identifier(raw: &str) -> Result<(), String> {
    let uri: Uri = raw.parse().map_err(|e| format!("not a valid URI ({e})"))?;
    match uri.scheme_str() {
        Some("http" | "https") => check(&uri),
        Some(_) => Ok(()),
        None => Err("not an absolute URI (expected https://host/path)".into()),
    }
}

/// `scheme://host[:port]/path`: the URL without user info or query (either may hold a secret).
/// A port of digits is shown as written, so a message about one out of range shows it.
pub fn display(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or("");
    let port = port_text(uri)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    format!("{scheme}://{host}{port}{}", uri.path())
}

/// A URL given as text, for a message: as `display` shows it when it parses, else a
/// placeholder (nothing of a text that is not a URL can be shown safely).
pub fn display_text(raw: &str) -> String {
    raw.parse::<Uri>().map(|u| display(&u)).unwrap_or_else(|_| "<not a URL>".into())
}

/// A path segment for a name (a server's in `/servers/<name>/mcp`): every byte outside RFC 3986's
/// unreserved characters percent-encoded (`my memory` → `my%20memory`; `time.v2` stays).
pub fn encode_segment(name: &str) -> std::borrow::Cow<'_, str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if name.bytes().all(unreserved) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if unreserved(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A path segment as the name it stands for: `%XX` decoded (either case); `None` for a broken
/// escape or bytes that are not UTF-8. Without a `%` it is the segment itself, unallocated.
pub fn decode_segment(segment: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !segment.contains('%') {
        return Some(std::borrow::Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_a_path_segment_both_ways() {
        for (name, segment) in
            [("time.v2", "time.v2"), ("my memory", "my%20memory"), ("a/b?c#d", "a%2Fb%3Fc%23d"), ("é", "%C3%A9")]
        {
            assert_eq!(encode_segment(name), segment);
            assert_eq!(decode_segment(segment).as_deref(), Some(name));
        }
        assert_eq!(decode_segment("my%20Memory%2f").as_deref(), Some("my Memory/"));
        for bad in ["%", "%2", "%zz", "%+1", "%C3"] {
            assert_eq!(decode_segment(bad), None, "{bad}");
        }
    }

    #[test]
    fn ports_hosts_and_schemes_are_checked_whole() {
        for ok in [
            "http://127.0.0.1:3000/mcp",
            "https://example.com/mcp",
            "https://example.com:1/",
            "https://example.com:65535/",
            "http://[::1]:8080/mcp",
            "http://[::1]/mcp",
            "https://user:pw@example.com:8443/mcp?key=secret",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
        }
        for (bad, says) in [
            ("http://127.0.0.1:65616/mcp", "http://127.0.0.1:65616/mcp: port 65616 is out of range (1 to 65535)"),
            ("http://127.0.0.1:65536/mcp", "port 65536 is out of range"),
            ("http://127.0.0.1:99999999999/mcp", "out of range"),
            ("http://127.0.0.1:0/mcp", "port 0"),
            ("http://127.0.0.1:+80/mcp", "port must be a number"),
            ("http://127.0.0.1:8o/mcp", "port must be a number"),
            ("http://[::1]:70000/mcp", "port 70000 is out of range"),
            ("http://u:p@h:65616/mcp", "http://h:65616/mcp: port 65616 is out of range"),
            ("http://h:/mcp", "port after ':' is empty"),
            ("", "not a valid URL"),
            ("/mcp", "not an absolute URL"),
            ("ftp://x/", "scheme must be http or https, not ftp"),
            ("http://:80/mcp", "no host"),
            ("http://user@/mcp", "not a valid URL"),
            ("not a url", "not a valid URL"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn printed_urls_hold_no_user_info_and_no_query() {
        let u: Uri = "https://user:pw@example.com:8443/mcp?key=secret".parse().unwrap();
        assert_eq!(display(&u), "https://example.com:8443/mcp");
        for raw in [
            "ftp://user:PASSWORD@example.com/x?key=PASSWORD",
            "http://user:PASSWORD@example.com:65616/mcp?key=PASSWORD",
            "http://user:PASSWORD@example.com:0/",
            "http://user:PASSWORD@/mcp",
            "http://user:PASS WORD@example.com/mcp",
            "http://user:PASS/WORD@example.com/mcp",
        ] {
            let message = parse(raw).expect_err(raw);
            assert!(!message.contains("PASS") && !message.contains("user"), "{raw}: {message}");
            assert!(!display_text(raw).contains("PASS"), "{raw}");
        }
        assert_eq!(display_text("http://u:p@h:65616/x?q"), "http://h:65616/x");
        assert_eq!(display_text("a b"), "<not a URL>");
    }

    #[test]
    fn identifiers_are_absolute_and_web_ones_are_checked_whole() {
        assert!(check_identifier("https://mcp.example.com/mcp").is_ok());
        assert!(check_identifier("api://0000-1111").is_ok());
        assert!(check_identifier("https://mcp.example.com:65616/mcp").is_err());
        assert!(check_identifier("/mcp").is_err());
    }
}
