//! RFC 9728: the gateway as a protected resource says where its tokens come from — the metadata
//! document, and the `WWW-Authenticate` challenge that points at it.

use serde_json::{Value, json};

use super::Settings;

/// The well-known path (RFC 9728 §3); the path-suffixed forms (`…/mcp`,
/// `…/servers/<name>/mcp`) serve the same document: every endpoint is the same resource.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Whether `path` is the metadata document's.
pub fn is_metadata_path(path: &str) -> bool {
    path.strip_prefix(WELL_KNOWN).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub fn document(settings: &Settings) -> Value {
    let mut doc = json!({
        "resource": settings.public_url,
        "authorization_servers": [settings.issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": "mcpgate",
    });
    if !settings.scopes.is_empty() {
        doc["scopes_supported"] = json!(settings.scopes);
    }
    doc
}

/// The challenge for a request to `endpoint` (its path): where the metadata is, the scopes
/// needed, and what was wrong with the token given (`error`, RFC 6750 §3), if one was.
pub fn challenge(settings: &Settings, endpoint: &str, error: Option<(&str, &str)>) -> String {
    let mut c = format!("Bearer resource_metadata=\"{}{WELL_KNOWN}{endpoint}\"", settings.public_url);
    if !settings.scopes.is_empty() {
        c.push_str(&format!(", scope=\"{}\"", settings.scopes.join(" ")));
    }
    if let Some((error, description)) = error {
        // A quoted-string: the description is ours, but quotes and backslashes are kept out anyway.
        let description: String = description.chars().filter(|c| !matches!(c, '"' | '\\')).collect();
        c.push_str(&format!(", error=\"{error}\", error_description=\"{description}\""));
    }
    c
}
