//! Client ID Metadata Documents (the MCP 2025-11-25 authorization spec; the IETF draft
//! `draft-ietf-oauth-client-id-metadata-document`): a client whose `client_id` is an https URL is
//! described by the JSON document at that URL. The gateway fetches it when the client first
//! appears — with the outbound SSRF policy (no link-local or metadata addresses; private ones
//! only when the gateway itself is private), no redirects, bounded in size and time — checks
//! it, and keeps it for `KEEP` in the state, so a restart or another replica need not fetch it
//! again.

use std::time::Duration;

use serde_json::Value;

use super::AuthorizationServer;
use super::records::{self, Client};
use super::redirect_uri::check_redirect_uri;
use super::state::{Table, now_secs};

/// How long a fetched document is kept.
pub const KEEP: Duration = Duration::from_secs(3600);

/// Whether `client_id` names a metadata document: an https URL with a path (RFC 3986 §6 normal
/// form: no dot segments, no fragment, no user info).
pub fn is_document_url(client_id: &str) -> bool {
    let Some(rest) = client_id.strip_prefix("https://") else { return false };
    let Some((authority, path)) = rest.split_once('/') else { return false };
    client_id.len() <= 2000
        && !authority.is_empty()
        && !authority.contains('@')
        && !path.is_empty()
        && !client_id.contains('#')
        && !path.split('/').any(|seg| seg == "." || seg == "..")
        && client_id.parse::<http::Uri>().is_ok()
}

/// How long a document that could not be used is not fetched again.
const REFUSED_FOR: Duration = Duration::from_secs(60);

/// The client `url` describes, fetched and checked (or why it cannot be used). Why a fetch
/// failed is logged, not told (it would say what the gateway's network holds); a document that
/// failed is not fetched again for a minute.
pub async fn fetch(server: &AuthorizationServer, url: &str) -> Result<Client, String> {
    let refused = |server: &AuthorizationServer, why: String| {
        let until = std::time::Instant::now() + REFUSED_FOR;
        server.refused_documents.lock().unwrap_or_else(|p| p.into_inner()).insert(url.to_owned(), why.clone(), until);
        why
    };
    if let Some(why) = server.refused_documents.lock().unwrap_or_else(|p| p.into_inner()).get(url) {
        return Err(why);
    }
    if server.document_fetches.check(std::net::Ipv4Addr::UNSPECIFIED.into()).is_err() {
        tracing::warn!("refused to fetch a client metadata document: too many fetched this minute");
        return Err("its metadata document cannot be fetched now; try again in a minute".into());
    }
    let reply = match server.fetch.get(url).await {
        Ok(r) if r.status.is_success() => r,
        Ok(r) => return Err(refused(server, format!("its metadata document answered {}", r.status))),
        Err(e) => {
            tracing::info!(client = %url, "a client metadata document cannot be fetched: {}", e.message);
            return Err(refused(server, "its metadata document cannot be fetched".into()));
        }
    };
    let doc: Value = match serde_json::from_slice(&reply.body) {
        Ok(doc) => doc,
        Err(_) => return Err(refused(server, "its metadata document is not JSON".into())),
    };
    let client = check(url, &doc).map_err(|e| refused(server, e))?;
    records::write(&*server.state, Table::Client, url, &client, Some(KEEP)).await.map_err(|e| e.to_string())?;
    tracing::info!(client = %url, name = client.client_name.as_deref().unwrap_or("-"), "fetched a client metadata document");
    Ok(client)
}

/// The document's client: it must name itself, list its redirect URIs, and be a public client
/// (it can hold no secret the gateway issued).
fn check(url: &str, doc: &Value) -> Result<Client, String> {
    let bad = |why: &str| Err(format!("its metadata document {why}"));
    let Some(obj) = doc.as_object() else { return bad("is not a JSON object") };
    if obj.get("client_id").and_then(Value::as_str) != Some(url) {
        return bad("does not name its own URL as client_id");
    }
    if obj.contains_key("client_secret") || obj.contains_key("client_secret_expires_at") {
        return bad("carries a client secret (a document client is public)");
    }
    match obj.get("token_endpoint_auth_method").and_then(Value::as_str) {
        None | Some("none") => {}
        Some(m) => return Err(format!("its metadata document asks for {m}; only \"none\" is supported")),
    }
    let uris: Vec<String> = match obj.get("redirect_uris").and_then(Value::as_array) {
        Some(list) if !list.is_empty() && list.len() <= 10 => {
            list.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        _ => return bad("lists no redirect_uris (1 to 10)"),
    };
    for uri in &uris {
        check_redirect_uri(uri).map_err(|e| format!("its metadata document: {e}"))?;
    }
    let name = obj
        .get("client_name")
        .and_then(Value::as_str)
        .map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect());
    Ok(Client {
        client_id: url.to_owned(),
        client_name: name,
        redirect_uris: uris,
        auth_method: "none".into(),
        secret_hash: None,
        application_type: obj.get("application_type").and_then(Value::as_str).unwrap_or("web").to_owned(),
        issued_at: now_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_https_urls_with_a_clean_path_are_document_ids() {
        for ok in ["https://app.example/client.json", "https://127.0.0.1:8443/c/meta"] {
            assert!(is_document_url(ok), "{ok}");
        }
        for no in [
            "http://app.example/client.json",
            "https://app.example",
            "https://app.example/",
            "https://u@app.example/c",
            "https://app.example/a/../c",
            "https://app.example/c#x",
            "abc123",
            "https:///c",
        ] {
            assert!(!is_document_url(no), "{no}");
        }
    }

    #[test]
    fn a_document_must_name_itself_and_be_a_public_client() {
        let url = "https://app.example/c.json";
        let good = json!({"client_id": url, "client_name": "App", "redirect_uris": ["http://127.0.0.1/cb"]});
        assert_eq!(check(url, &good).unwrap().redirect_uris, vec!["http://127.0.0.1/cb"]);
        let cases = [
            json!({"client_id": "https://other.example/c.json", "redirect_uris": ["http://127.0.0.1/cb"]}),
            json!({"client_id": url, "redirect_uris": []}),
            json!({"client_id": url, "redirect_uris": ["http://evil.example/cb"]}),
            json!({"client_id": url, "redirect_uris": ["http://127.0.0.1/cb"], "client_secret": "x"}),
            json!({"client_id": url, "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            json!([url]),
        ];
        for doc in cases {
            assert!(check(url, &doc).is_err(), "{doc}");
        }
    }
}
