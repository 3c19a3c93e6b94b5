//! SEP-2243's custom headers, on the client side: a 2026-07-28 tool's `inputSchema` may mark
//! properties with `x-mcp-header: Name`, and a client calling the tool mirrors those arguments
//! into `Mcp-Param-Name` headers (so that intermediaries can route on them without reading the
//! body). A tool whose marks break the revision's rules is invalid, and clients must not offer it.
//! Pure functions; the bridge that speaks for a legacy client (`connect::modern`) uses them.

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

const KEY: &str = "x-mcp-header";
const PREFIX: &str = "mcp-param-";

/// One marked property: where its value is in the arguments, and the header's name suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    path: Vec<String>,
    header: String,
}

/// Keywords whose subschemas are not reached through a chain of `properties`: a mark under one
/// of them makes the tool invalid (the header could not be tied to one argument).
const UNREACHABLE: &[&str] = &[
    "items",
    "prefixItems",
    "contains",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "propertyNames",
    "patternProperties",
    "dependentSchemas",
    "oneOf",
    "anyOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "$defs",
    "definitions",
];

/// The marks of a tool's `inputSchema`, or why the tool is invalid: a mark must be a non-empty
/// RFC 9110 token, unique in any case, on a `string`, `integer` or `boolean` property (not
/// `number`: its text form is not one value), reached from the root through `properties` only.
pub fn scan(input_schema: &Value) -> Result<Vec<Declaration>, String> {
    let mut found = Vec::new();
    visit(input_schema, &mut Vec::new(), true, &mut found)?;
    let mut seen = std::collections::HashSet::new();
    for d in &found {
        if !seen.insert(d.header.to_ascii_lowercase()) {
            return Err(format!("{KEY} {:?} is declared twice (names are case-insensitive)", d.header));
        }
    }
    Ok(found)
}

fn visit(node: &Value, path: &mut Vec<String>, reachable: bool, found: &mut Vec<Declaration>) -> Result<(), String> {
    let Some(schema) = node.as_object() else { return Ok(()) };
    let at = || if path.is_empty() { "<root>".to_owned() } else { path.join(".") };
    if let Some(mark) = schema.get(KEY) {
        if !reachable || path.is_empty() {
            return Err(format!("{}: {KEY} is allowed only on properties reached through `properties`", at()));
        }
        let header = mark
            .as_str()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| format!("{}: {KEY} must be a non-empty string", at()))?;
        if !header.bytes().all(is_tchar) {
            return Err(format!("{}: {KEY} {header:?} is not an HTTP token", at()));
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string" | "integer" | "boolean") => {}
            other => {
                return Err(format!("{}: {KEY} on a property of type {other:?}, not string, integer or boolean", at()));
            }
        }
        found.push(Declaration { path: path.clone(), header: header.to_owned() });
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (key, child) in props {
            path.push(key.clone());
            let r = visit(child, path, reachable, found);
            path.pop();
            r?;
        }
    }
    for keyword in UNREACHABLE {
        let Some(sub) = schema.get(*keyword) else { continue };
        let branches: Vec<&Value> = match sub {
            Value::Array(items) => items.iter().collect(),
            Value::Object(map)
                if matches!(*keyword, "patternProperties" | "dependentSchemas" | "$defs" | "definitions") =>
            {
                map.values().collect()
            }
            other => vec![other],
        };
        for branch in branches {
            path.push(format!("<{keyword}>"));
            let r = visit(branch, path, false, found);
            path.pop();
            r?;
        }
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The `Mcp-Param-*` headers of one call: a declared argument that is absent, null or not a
/// primitive has none.
pub fn headers(declarations: &[Declaration], arguments: &Value) -> HeaderMap {
    let mut out = HeaderMap::new();
    for d in declarations {
        let value = d.path.iter().try_fold(arguments, |v, key| v.get(key));
        let text = match value {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        let (Ok(name), Ok(value)) =
            (HeaderName::try_from(format!("{PREFIX}{}", d.header)), HeaderValue::try_from(encode(&text)))
        else {
            continue;
        };
        out.insert(name, value);
    }
    out
}

/// A value as a header value: as it is when it is visible ASCII (spaces and tabs inside), else
/// `=?base64?…?=` of its UTF-8 — also when empty, when it has whitespace at either end (which
/// header parsing strips), or when it already looks like that form.
pub fn encode(value: &str) -> String {
    let plain = !value.is_empty()
        && value.trim() == value
        && value.bytes().all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        value.to_owned()
    } else {
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(value))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn marks_are_found_through_properties_and_mirrored_encoded() {
        let schema = json!({"type":"object","properties":{
            "region":{"type":"string","x-mcp-header":"Region"},
            "priority":{"type":"integer","x-mcp-header":"Priority"},
            "verbose":{"type":"boolean","x-mcp-header":"Verbose"},
            "where":{"type":"object","properties":{"zone":{"type":"string","x-mcp-header":"Zone"}}},
            "query":{"type":"string"}}});
        let d = scan(&schema).unwrap();
        assert_eq!(d.len(), 4);
        let args = json!({"region":"us-west1","priority":42,"verbose":null,"where":{"zone":"Hello, 世界"},"query":"x"});
        let h = headers(&d, &args);
        assert_eq!(h["mcp-param-region"], "us-west1");
        assert_eq!(h["mcp-param-priority"], "42");
        assert!(h.get("mcp-param-verbose").is_none(), "null arguments have no header");
        assert_eq!(h["mcp-param-zone"], "=?base64?SGVsbG8sIOS4lueVjA==?=");
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn values_that_would_not_survive_as_they_are_go_in_base64() {
        assert_eq!(encode("us west 1"), "us west 1");
        assert_eq!(encode("\tindented"), "=?base64?CWluZGVudGVk?=");
        assert_eq!(encode(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(encode(""), "=?base64??=");
        assert_eq!(encode("=?base64?eA==?="), "=?base64?PT9iYXNlNjQ/ZUE9PT89?=");
    }

    #[test]
    fn invalid_marks_make_the_tool_invalid() {
        let prop = |p: Value| json!({"type":"object","properties":{"a":p}});
        for bad in [
            prop(json!({"type":"string","x-mcp-header":""})),
            prop(json!({"type":"object","x-mcp-header":"Data"})),
            prop(json!({"type":"array","items":{"type":"string"},"x-mcp-header":"Items"})),
            prop(json!({"type":"null","x-mcp-header":"Nil"})),
            prop(json!({"type":"number","x-mcp-header":"Score"})),
            prop(json!({"type":"string","x-mcp-header":"My Field"})),
            prop(json!({"type":"string","x-mcp-header":"My:Field"})),
            prop(json!({"type":"string","x-mcp-header":"Régión"})),
            prop(json!({"type":"array","items":{"type":"string","x-mcp-header":"Item"}})),
            json!({"type":"object","properties":{"a":{"type":"string","x-mcp-header":"F"},"b":{"type":"string","x-mcp-header":"f"}}}),
            json!({"type":"object","x-mcp-header":"Root"}),
        ] {
            assert!(scan(&bad).is_err(), "{bad}");
        }
        assert_eq!(scan(&json!({"type":"object"})), Ok(vec![]));
    }
}
