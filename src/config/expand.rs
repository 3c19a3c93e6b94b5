//! `${VAR}` and `${VAR:-default}` in configuration strings, from the environment. `$$` is a
//! literal `$`; a `$` not followed by `{` stays as it is (shell commands in args keep working).

/// Expands `s`; `lookup` answers a variable's value. An unset variable without a default is an
/// error naming it.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("${{{inner}}} is not a variable name"));
            }
            match (lookup(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "the environment variable {name} is not set (use ${{{name}:-default}} for a default)"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let env = |k: &str| match k {
            "TOKEN" => Some("t0k".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let ok = |s: &str| expand(s, &env).unwrap();
        assert_eq!(ok("Bearer ${TOKEN}"), "Bearer t0k");
        assert_eq!(ok("${MISSING:-fallback}/x"), "fallback/x");
        assert_eq!(ok("${EMPTY:-d}"), "d", "an empty value takes the default, as in the shell");
        assert_eq!(ok("${EMPTY}"), "");
        assert_eq!(ok("$$HOME and $PATH stay"), "$HOME and $PATH stay");
        assert_eq!(ok("no vars"), "no vars");
        assert!(expand("${MISSING}", &env).unwrap_err().contains("MISSING is not set"));
        assert!(expand("${unclosed", &env).is_err());
        assert!(expand("${a b}", &env).is_err());
    }
}
