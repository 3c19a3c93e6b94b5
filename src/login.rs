//! `mcpgate login`, `logout` and `status`: the stored upstream credentials, seen and managed by
//! the user. Nothing here prints a secret: `status` reads only the public part of each record.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;

use crate::cli::{LogoutArgs, StatusArgs};
use crate::connect::UpstreamOptions;
use crate::credentials::Source;
use crate::oauth_client::record::Public;
use crate::oauth_client::{Challenge, OAuth};
use crate::store::{Kind, Store};
use crate::token::rfc3339;

/// Signs in now: asks the server (unauthenticated) for its challenge, then runs the sign-in.
pub async fn login(up: UpstreamOptions) -> Result<(), String> {
    let Some(Source::OAuth(cfg)) = up.credential.clone() else {
        return Err("`login` signs in with OAuth; drop --bearer-env/--bearer-file/--token-command".into());
    };
    let oauth = OAuth::new(*cfg).map_err(|e| e.to_string())?;
    let challenge = if oauth.has_issuer() { None } else { Some(probe(&up).await?) };
    oauth.login_now(challenge.as_ref()).await.map_err(|e| e.to_string())?;
    match oauth.describe() {
        Some((issuer, expires, scope)) => {
            let until = expires.map(|t| format!(", valid until {}", rfc3339(t))).unwrap_or_default();
            let scope = scope.map(|s| format!(", scope {s:?}")).unwrap_or_default();
            eprintln!("mcpgate: signed in to {} at {issuer}{until}{scope}", oauth.server_name());
        }
        None => eprintln!("mcpgate: signed in to {}", oauth.server_name()),
    }
    Ok(())
}

/// The server's challenge to an unauthenticated request (Streamable HTTP POST, else an SSE GET).
async fn probe(up: &UpstreamOptions) -> Result<Challenge, String> {
    let client = crate::transport::http_client::build(up.connect_timeout);
    let shown = crate::url::display(&up.url);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-login","version":"1"}}}"#;
    let mut last = StatusCode::OK;
    for (method, accept, body) in
        [(Method::POST, "application/json, text/event-stream", init), (Method::GET, "text/event-stream", "")]
    {
        let mut req = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
        *req.method_mut() = method.clone();
        *req.uri_mut() = up.url.clone();
        let h = req.headers_mut();
        for (k, v) in &up.headers {
            h.insert(k, v.clone());
        }
        h.insert(ACCEPT, HeaderValue::from_static(accept));
        if method == Method::POST {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let resp = tokio::time::timeout(up.timeout, client.request(req))
            .await
            .map_err(|_| format!("{shown} did not answer within {:?}", up.timeout))?
            .map_err(|e| format!("{shown} is unreachable: {}", crate::error::chain(&*e)))?;
        last = resp.status();
        if matches!(last, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Ok(Challenge::from_headers(resp.headers()).unwrap_or_default());
        }
        // A Streamable HTTP server answered: the GET probe is only for legacy SSE servers.
        if last.is_success() {
            break;
        }
    }
    Err(format!(
        "{shown} did not ask for a sign-in (it answered {last}); pass --issuer to sign in at an OpenID provider anyway"
    ))
}

pub fn logout(args: LogoutArgs) -> Result<(), String> {
    let store = open(args.store_dir)?;
    let mut removed = 0;
    let wanted = match &args.url {
        Some(url) => Some(crate::oauth_client::discovery::canonical_resource(
            &crate::url::parse(url).map_err(|e| format!("URL: {e}"))?,
        )),
        None => None,
    };
    for record in store.list(Kind::Token).map_err(|e| e.to_string())? {
        let server = record.public.get("server").and_then(|s| s.as_str()).unwrap_or_default().to_owned();
        if wanted.as_ref().is_none_or(|w| *w == server)
            && store.delete(Kind::Token, &record.id).map_err(|e| e.to_string())?
        {
            removed += 1;
            eprintln!("mcpgate: removed the credential for {server}");
        }
    }
    if args.all {
        for record in store.list(Kind::Client).map_err(|e| e.to_string())? {
            store.delete(Kind::Client, &record.id).map_err(|e| e.to_string())?;
        }
    }
    if removed == 0 {
        let shown = args.url.as_deref().map(|u| format!(" for {}", crate::url::display_text(u)));
        eprintln!("mcpgate: nothing stored{}", shown.unwrap_or_default());
    }
    Ok(())
}

pub fn status(args: StatusArgs) -> Result<(), String> {
    let store = open(args.store_dir)?;
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for record in store.list(Kind::Token).map_err(|e| e.to_string())? {
        let Ok(p) = serde_json::from_value::<Public>(record.public) else { continue };
        // A record whose secrets no longer open (damaged, or the key changed) holds nothing usable.
        let usable = record.secret.is_some();
        let expires = p.expires_at.map(|s| UNIX_EPOCH + Duration::from_secs(s));
        rows.push(serde_json::json!({
            "server": p.server,
            "issuer": p.issuer,
            "client_id": p.client.client_id,
            "resource": p.resource,
            "scope": p.scope,
            "expires_at": expires.map(rfc3339),
            "expired": expires.is_some_and(|t| t <= now),
            "refresh_token": p.has_refresh_token,
            "usable": usable,
        }));
    }
    if args.json {
        println!("{}", serde_json::json!({ "store": store.dir().display().to_string(), "credentials": rows }));
        return Ok(());
    }
    println!("credential store: {} (key: {})", store.dir().display(), store.key_location());
    if rows.is_empty() {
        println!("no stored credentials");
    }
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
        let expiry = match (r["expires_at"].as_str(), r["expired"].as_bool()) {
            (Some(t), Some(true)) => format!("expired {t}"),
            (Some(t), _) => format!("valid until {t}"),
            (None, _) => "no expiry given".into(),
        };
        let refresh = if r["refresh_token"].as_bool() == Some(true) { "refreshable" } else { "not refreshable" };
        let damaged = if r["usable"].as_bool() == Some(true) { "" } else { " (damaged: sign in again)" };
        println!(
            "\n{}\n  issuer   {}\n  client   {}\n  scope    {}\n  token    {expiry}, {refresh}{damaged}",
            s("server"),
            s("issuer"),
            s("client_id"),
            s("scope")
        );
    }
    Ok(())
}

fn open(dir: Option<std::path::PathBuf>) -> Result<Store, String> {
    dir.or_else(Store::default_dir)
        .map(Store::new)
        .ok_or_else(|| "no credential store directory: set MCPGATE_STORE_DIR or HOME".to_owned())
}
