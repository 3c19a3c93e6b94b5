//! The admin API a supervising wrapper drives: identities listed (never a token), added or given
//! a new token, removed — over a Unix socket only its user can reach: created 0600 in a 0700
//! directory, and each connection's peer checked to be this user (`SO_PEERCRED`). Or, where a
//! socket cannot be used, over HTTP on loopback only, each request carrying a random secret that
//! is written to a 0600 file (`Authorization: Bearer …`; a browser's request, with an `Origin`,
//! or one naming a foreign `Host`, is refused).
//!
//! | request                          | does                                                  |
//! |----------------------------------|-------------------------------------------------------|
//! | `GET /identities`                | `{"identities": [{name, path, token, expiresAt, sessions}]}` |
//! | `PUT /identities/NAME` `{"token": "…"}` | sets NAME's token (adds NAME when new): 200 or 201 |
//! | `PUT /identities/NAME` `{"token": "…", "replaces": "OLD"}` | OLD re-registered as NAME: its sessions and its path kept |
//! | `DELETE /identities/NAME`        | removes NAME, ending its sessions: 200 or 404         |

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use super::identities::Identities;
use crate::http::body::{self, Body};

/// The largest request body read (a token and a little JSON).
const MAX_BODY: usize = 64 * 1024;

/// Where the socket goes when none is named: the user's runtime directory, else a directory of
/// the user's own in the temporary one.
pub fn default_socket(port: u16) -> PathBuf {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("mcpgate"),
        None => std::env::temp_dir().join(format!("mcpgate-{}", unsafe { libc::geteuid() })),
    };
    dir.join(format!("connect-{port}.sock"))
}

/// Binds the socket at `path` (its directory made 0700 if new; a stale socket replaced) and
/// serves the API until `shutdown`.
pub fn listen(path: &Path, identities: Arc<Identities>, shutdown: CancellationToken) -> Result<(), String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    private_dir(dir).map_err(|e| format!("--admin-socket: {e}"))?;
    if std::fs::symlink_metadata(path).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type())) {
        // Another connect's, alive: not ours to take over.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("--admin-socket {}: another process serves it", path.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("--admin-socket: cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("--admin-socket: {}: {e}", path.display()))?;
    tracing::info!("admin API on {}", path.display());
    let path = path.to_owned();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!("admin API: accept failed: {e}");
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            // Only this user: whatever the file's mode became meanwhile.
            let me = unsafe { libc::geteuid() };
            match stream.peer_cred() {
                Ok(c) if c.uid() == me => {}
                other => {
                    tracing::warn!(peer = ?other.map(|c| c.uid()).ok(), "admin API: refused a connection of another user");
                    continue;
                }
            }
            let ids = identities.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let ids = ids.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&ids, req).await) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(())
}

/// Makes `dir` (0700) if it is missing, and makes sure it is this user's alone: a real directory
/// (not a link), owned by this user, which nobody else may enter — else another user could put
/// their own socket or file where the wrapper sends tokens.
fn private_dir(dir: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let me = unsafe { libc::geteuid() };
    if !m.is_dir() || std::os::unix::fs::MetadataExt::uid(&m) != me || m.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} must be a directory of this user's that nobody else may enter (mode 0700)",
            dir.display()
        ));
    }
    Ok(())
}

/// Serves the API over HTTP on `addr` (loopback only), guarded by a new random secret written to
/// `secret_file` (0600). The address bound.
pub async fn listen_http(
    addr: std::net::SocketAddr,
    secret_file: &Path,
    identities: Arc<Identities>,
    shutdown: CancellationToken,
) -> Result<std::net::SocketAddr, String> {
    if !addr.ip().is_loopback() {
        return Err(format!("--admin-listen {addr}: the admin API listens on loopback only"));
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| format!("the OS random generator failed: {e}"))?;
    let secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = secret_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir).map_err(|e| format!("--admin-secret-file: {e}"))?;
    }
    let _ = std::fs::remove_file(secret_file);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(secret_file)
        .map_err(|e| format!("--admin-secret-file {}: {e}", secret_file.display()))?;
    std::io::Write::write_all(&mut f, secret.as_bytes()).map_err(|e| format!("--admin-secret-file: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("--admin-listen {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("admin API on http://{local} (its secret in {})", secret_file.display());
    let expected: Arc<str> = format!("Bearer {secret}").into();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("admin API: accept failed: {e}");
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            if !peer.ip().is_loopback() {
                continue;
            }
            let (ids, expected) = (identities.clone(), expected.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (ids, expected) = (ids.clone(), expected.clone());
                    async move {
                        let resp = match refusal(req.headers(), &expected) {
                            Some(r) => r,
                            None => answer(&ids, req).await,
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(local)
}

/// Why an HTTP request to the API is refused: a browser's (an `Origin`), a foreign `Host` (DNS
/// rebinding), or no secret (compared in constant time).
fn refusal(headers: &http::HeaderMap, expected: &str) -> Option<Response<Body>> {
    if headers.contains_key(http::header::ORIGIN) {
        return Some(reply(StatusCode::FORBIDDEN, json!({"error": "not for browsers"})));
    }
    let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()?.parse::<http::uri::Authority>().ok());
    if !host.is_some_and(|a| matches!(a.host(), "127.0.0.1" | "localhost" | "[::1]")) {
        return Some(reply(StatusCode::FORBIDDEN, json!({"error": "a loopback Host only"})));
    }
    let given = headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or(b"");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(given, expected.as_bytes())) {
        return Some(reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "the secret (Authorization: Bearer …) is missing or wrong"}),
        ));
    }
    None
}

async fn answer(ids: &Identities, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let path = parts.uri.path();
    if path == "/identities" {
        return match parts.method {
            Method::GET => reply(StatusCode::OK, ids.status()),
            _ => reply(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "GET only"})),
        };
    }
    let Some(name) = path.strip_prefix("/identities/").and_then(crate::url::decode_segment) else {
        return reply(StatusCode::NOT_FOUND, json!({"error": "no such endpoint: see GET /identities"}));
    };
    match parts.method {
        Method::PUT => {
            let body = match http_body_util::Limited::new(incoming, MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return reply(StatusCode::PAYLOAD_TOO_LARGE, json!({"error": "a body of at most 64 KiB"}));
                }
                Err(_) => return reply(StatusCode::BAD_REQUEST, json!({"error": "the body could not be read"})),
            };
            let body: Value = serde_json::from_slice(&body).unwrap_or_default();
            let Some(token) = body["token"].as_str() else {
                return reply(StatusCode::BAD_REQUEST, json!({"error": "the body is {\"token\": \"…\"}"}));
            };
            let at = json!({"name": name, "path": super::identities::path(&name)});
            if let Some(old) = body["replaces"].as_str() {
                return match ids.rename(old, &name, token) {
                    Ok(()) => reply(StatusCode::OK, at),
                    Err(e) => refused(&e),
                };
            }
            match ids.set_token(&name, token).await {
                Ok(true) => reply(StatusCode::CREATED, at),
                Ok(false) => reply(StatusCode::OK, at),
                Err(e) => refused(&e),
            }
        }
        Method::DELETE if ids.remove(&name).await => reply(StatusCode::OK, json!({"removed": name})),
        Method::DELETE => reply(StatusCode::NOT_FOUND, json!({"error": format!("no identity {name}")})),
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "PUT or DELETE"})),
    }
}

/// A refused change: 400 for a bad request, 404 for an identity that is not there, 409 for a
/// clash with one that is.
fn refused(e: &super::identities::Refused) -> Response<Body> {
    use super::identities::Refused;
    let status = match e {
        Refused::Invalid(_) => StatusCode::BAD_REQUEST,
        Refused::Unknown(_) => StatusCode::NOT_FOUND,
        Refused::Conflict(_) => StatusCode::CONFLICT,
    };
    reply(status, json!({"error": e.to_string()}))
}

fn reply(status: StatusCode, v: Value) -> Response<Body> {
    let mut resp = Response::new(body::full(Bytes::from(v.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}
