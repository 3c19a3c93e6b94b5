//! `${VAR}` and `${VAR:-default}` in configuration strings, from the environment; `${env:VAR}` too,
//! as Cursor and VS Code write it. `$$` is a literal `$`; a `$` not followed by `{` stays as it is
//! (shell commands in args keep working).
//! Errors never quote the string: it may be a header or `env` value, that is, a secret. They
//! say where in the value the problem is instead.

/// Expands `s`; `lookup` answers a variable's value. An unset variable without a default is an
/// error naming it (a name is not a secret; it is checked to be one before it is shown).
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
            // Where this `${` is, in characters from the value's start (1-based).
            let at = || s[..s.len() - after.len()].chars().count();
            let end = body.find('}').ok_or_else(|| format!("unclosed \"${{\" at character {} of the value", at()))?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.starts_with("input:") {
                return Err(format!(
                    "the \"${{input:…}}\" at character {} of the value is VS Code's, asked of its user; mcpgate asks nobody: write the value, or ${{VAR}} for an environment variable",
                    at()
                ));
            }
            let name = name.strip_prefix("env:").unwrap_or(name);
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "the \"${{…}}\" at character {} of the value does not hold a variable name (letters, digits, _)",
                    at()
                ));
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
        assert_eq!(ok("Bearer ${env:TOKEN}"), "Bearer t0k", "Cursor's and VS Code's form");
        assert_eq!(ok("${env:MISSING:-d}"), "d");
        let e = expand("${input:api-key}", &env).unwrap_err();
        assert!(e.contains("VS Code's") && e.contains("at character 1"), "{e}");
        assert!(expand("${MISSING}", &env).unwrap_err().contains("MISSING is not set"));
        // The value is never quoted back: it may be a secret.
        assert_eq!(expand("Bearer ${SECRET", &env).unwrap_err(), "unclosed \"${\" at character 8 of the value");
        let e = expand("é ${SECRET VALUE}", &env).unwrap_err();
        assert!(e.contains("at character 3") && !e.contains("SECRET"), "{e}");
    }
}
