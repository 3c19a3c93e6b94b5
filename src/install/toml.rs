//! Codex's `config.toml` edited in place: one `[mcp_servers.NAME]` table set or taken out; every
//! other table, key, comment and blank line as it was.

use serde_json::Value;
use toml_edit::{DocumentMut, Item, Table};

const KEY: &str = "mcp_servers";

/// `text` with `entry` (a JSON object of strings) as `[mcp_servers.NAME]`, or `text` itself when
/// it is there already.
pub fn upsert(text: &str, name: &str, entry: &Value, force: bool) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| e.to_string())?;
    let want = table(entry)?;
    let servers = doc.entry(KEY).or_insert_with(|| {
        let mut t = Table::new();
        // No bare `[mcp_servers]` header: only the server's own.
        t.set_implicit(true);
        Item::Table(t)
    });
    let Some(servers) = servers.as_table_mut() else { return Err(format!("its {KEY} is not a table")) };
    if let Some(have) = servers.get(name) {
        if have.as_table().is_some_and(|have| same(have, &want)) {
            return Ok(text.to_owned());
        }
        if !force && !super::ours(&as_json(have), entry) {
            return Err(format!("its server {name:?} is not mcpgate's: give another --name, or --force to replace it"));
        }
    }
    servers.insert(name, Item::Table(want));
    Ok(doc.to_string())
}

/// `text` without `[mcp_servers.NAME]` (nor an `mcp_servers` left empty and implicit); `None`
/// when it has no such server.
pub fn remove(text: &str, name: &str, entry: &Value, force: bool) -> Result<Option<String>, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| e.to_string())?;
    let Some(servers) = doc.get_mut(KEY).and_then(Item::as_table_mut) else { return Ok(None) };
    let Some(have) = servers.get(name) else { return Ok(None) };
    if !force && !super::ours(&as_json(have), entry) {
        return Err(format!("its server {name:?} is not mcpgate's: give another --name, or --force to take it out"));
    }
    servers.remove(name);
    if servers.is_empty() && servers.is_implicit() {
        doc.remove(KEY);
    }
    Ok(Some(doc.to_string()))
}

/// A table's string values as JSON (what `ours` compares).
fn as_json(item: &Item) -> Value {
    let Some(t) = item.as_table() else { return Value::Null };
    Value::Object(t.iter().map(|(k, v)| (k.to_owned(), v.as_str().map_or(Value::Null, Value::from))).collect())
}

fn table(entry: &Value) -> Result<Table, String> {
    let Some(fields) = entry.as_object() else { return Err("a server entry is an object".into()) };
    let mut t = Table::new();
    for (k, v) in fields {
        let Some(s) = v.as_str() else { return Err(format!("{k}: only strings are written to TOML")) };
        t.insert(k, toml_edit::value(s));
    }
    Ok(t)
}

fn same(have: &Table, want: &Table) -> bool {
    have.len() == want.len() && want.iter().all(|(k, v)| have.get(k).and_then(Item::as_str) == v.as_str())
}
