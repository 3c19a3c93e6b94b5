//! A client's JSON file (comments allowed, as VS Code's and Gemini's are) edited in place: one
//! entry under the servers key set or taken out; every other byte — other servers, other keys,
//! comments, layout — as it was.

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstRootNode};
use serde_json::Value;

/// `text` with `entry` as server `name` under `key` (the key's object made when missing), or
/// `text` itself when the entry is there already. An entry of that name that is not mcpgate's
/// (see `ours`) is replaced only when `force`.
pub fn upsert(text: &str, key: &str, name: &str, entry: &Value, force: bool) -> Result<String, String> {
    let blank = text.trim().is_empty();
    let root = parse(if blank { "{}\n" } else { text })?;
    let top = root.object_value().ok_or("the file holds no JSON object")?;
    if top.get(key).is_some() && top.object_value(key).is_none() {
        return Err(format!("its \"{key}\" is not an object"));
    }
    let servers = top.object_value_or_set(key);
    match servers.get(name) {
        Some(prop) if prop.value().and_then(|v| v.to_serde_value()).as_ref() == Some(entry) => {
            return Ok(text.to_owned());
        }
        Some(prop) => {
            let have = prop.value().and_then(|v| v.to_serde_value()).unwrap_or_default();
            if !force && !super::ours(&have, entry) {
                return Err(foreign(name));
            }
            prop.set_value(input(entry));
        }
        None => drop(servers.append(name, input(entry))),
    }
    Ok(root.to_string())
}

/// `text` without server `name` under `key` (an emptied servers object stays: it may have been
/// there before); `None` when it has no such server. One that is not mcpgate's is taken out
/// only when `force`.
pub fn remove(text: &str, key: &str, name: &str, entry: &Value, force: bool) -> Result<Option<String>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let root = parse(text)?;
    let Some(top) = root.object_value() else { return Ok(None) };
    let Some(servers) = top.object_value(key) else { return Ok(None) };
    let Some(prop) = servers.get(name) else { return Ok(None) };
    let have = prop.value().and_then(|v| v.to_serde_value()).unwrap_or_default();
    if !force && !super::ours(&have, entry) {
        return Err(foreign(name));
    }
    prop.remove();
    Ok(Some(root.to_string()))
}

fn foreign(name: &str) -> String {
    format!("its server {name:?} is not mcpgate's: give another --name, or --force to replace it")
}

fn parse(text: &str) -> Result<CstRootNode, String> {
    CstRootNode::parse(text, &ParseOptions::default()).map_err(|e| e.to_string())
}

fn input(v: &Value) -> CstInputValue {
    match v {
        Value::Null => CstInputValue::Null,
        Value::Bool(b) => CstInputValue::Bool(*b),
        Value::Number(n) => CstInputValue::Number(n.to_string()),
        Value::String(s) => CstInputValue::String(s.clone()),
        Value::Array(a) => CstInputValue::Array(a.iter().map(input).collect()),
        Value::Object(o) => CstInputValue::Object(o.iter().map(|(k, v)| (k.clone(), input(v))).collect()),
    }
}
