//! The loopback redirect listener (RFC 8252 §7.3): where the browser brings the authorization
//! code back. Bound to 127.0.0.1 only, on the configured port or any free one; it checks
//! `state` (a request with another state is refused and the wait goes on: it is not the
//! user's), the RFC 9207 `iss`, shows the user a page saying they may close the tab, and gives
//! up at the login time limit with a message saying what to do.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::AuthError;

pub struct Listener {
    listener: TcpListener,
    pub redirect_uri: String,
    path: String,
}

/// What the redirect must carry besides the code.
pub struct Expect {
    pub state: String,
    pub issuer: String,
    /// The server promised `iss` (RFC 9207 §3): its absence is an error too.
    pub iss_required: bool,
    /// Shown on the page.
    pub server_name: String,
}

impl Listener {
    /// Binds the listener for `redirect` (`http://127.0.0.1:PORT/path` or `http://localhost:…`;
    /// port 0 or none: any free port; default path `/callback`).
    pub async fn bind(redirect: Option<&str>) -> Result<Listener, AuthError> {
        let (host, port, path) = match redirect {
            None => ("127.0.0.1".to_owned(), 0, "/callback".to_owned()),
            Some(url) => parse_redirect(url).map_err(|e| AuthError::refused(format!("--redirect-url: {e}")))?,
        };
        let listener = match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => {
                return Err(AuthError::refused(format!(
                    "cannot listen for the sign-in redirect on 127.0.0.1:{port}: {e} (is another login running? choose another port with --redirect-url)"
                )));
            }
        };
        let port = listener.local_addr().map_err(|e| AuthError::refused(e.to_string()))?.port();
        Ok(Listener { listener, redirect_uri: format!("http://{host}:{port}{path}"), path })
    }

    /// Waits for the redirect; returns the authorization code.
    pub async fn wait(self, expect: Expect, limit: Duration) -> Result<String, AuthError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Result<String, AuthError>>();
        let expect = Arc::new(expect);
        let path = Arc::new(self.path);
        let accept = async {
            loop {
                let Ok((stream, _)) = self.listener.accept().await else { continue };
                let (tx, expect, path) = (tx.clone(), expect.clone(), path.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let answer = handle(&req, &path, &expect);
                        if let Some(outcome) = answer.1 {
                            let _ = tx.send(outcome);
                        }
                        std::future::ready(Ok::<_, Infallible>(answer.0))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        };
        tokio::select! {
            outcome = rx.recv() => {
                // Give the browser a moment to receive its page before the listener goes away.
                tokio::time::sleep(Duration::from_millis(50)).await;
                outcome.unwrap_or_else(|| Err(AuthError::login("the sign-in listener stopped")))
            }
            () = accept => unreachable!("the accept loop never ends"),
            () = tokio::time::sleep(limit) => Err(AuthError::login(format!(
                "no sign-in arrived within {limit:?}; open the printed URL in a browser, or sign in ahead of time with `mcpgate login`"
            ))),
        }
    }
}

/// Checks a `--redirect-url` (the command line checks it before anything starts): host, port
/// (0: any free one) and path. Errors show the URL only as `crate::url::display` does.
pub fn parse_redirect(url: &str) -> Result<(String, u16, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a valid URL ({e})"))?;
    let bad = |why: &str| format!("{}: {why}", crate::url::display(&uri));
    if uri.scheme_str() != Some("http") {
        return Err(bad("a loopback redirect uses http (RFC 8252 §7.3)"));
    }
    let host = uri.host().unwrap_or("");
    if host != "127.0.0.1" && host != "localhost" {
        return Err(bad("the host must be 127.0.0.1 or localhost: mcpgate listens on loopback only"));
    }
    let port = crate::url::port(&uri)?.unwrap_or(0);
    let path = match uri.path() {
        "" | "/" => "/callback".to_owned(),
        p => p.to_owned(),
    };
    Ok((host.to_owned(), port, path))
}

type Answer = (Response<Full<Bytes>>, Option<Result<String, AuthError>>);

/// One request to the listener: the page to show and, if it settles the login, the outcome.
fn handle(req: &Request<Incoming>, path: &str, expect: &Expect) -> Answer {
    if req.uri().path() != path {
        return (page(StatusCode::NOT_FOUND, "Not found", "This address is only for signing in."), None);
    }
    let query: Vec<_> = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).collect();
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_ref());
    // A redirect for another login (or forged): refuse it and keep waiting for the user's.
    // In time independent of where they differ.
    if !get("state").is_some_and(|s| bool::from(s.as_bytes().ct_eq(expect.state.as_bytes()))) {
        tracing::warn!("refused a sign-in redirect whose state does not match this login");
        return (
            page(
                StatusCode::BAD_REQUEST,
                "Sign-in refused",
                "This sign-in response does not belong to the login mcpgate started. Close this tab.",
            ),
            None,
        );
    }
    match get("iss") {
        Some(iss) if iss != expect.issuer => {
            let e = AuthError::refused(format!(
                "the sign-in response names the issuer {iss:?}, not {:?} (RFC 9207: a mix-up attack, or a misconfigured server); refusing it",
                expect.issuer
            ));
            return (
                page(
                    StatusCode::BAD_REQUEST,
                    "Sign-in refused",
                    "The response came from an unexpected authorization server.",
                ),
                Some(Err(e)),
            );
        }
        None if expect.iss_required => {
            let e = AuthError::refused(
                "the authorization server promised an `iss` parameter (RFC 9207) and sent none; refusing the response",
            );
            return (
                page(StatusCode::BAD_REQUEST, "Sign-in refused", "The response lacks the issuer it must carry."),
                Some(Err(e)),
            );
        }
        _ => {}
    }
    if let Some(error) = get("error") {
        let desc = get("error_description")
            .map(|d| format!(": {}", d.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        let e = AuthError::login(format!("the authorization server refused the sign-in ({error}{desc})"));
        return (
            page(
                StatusCode::OK,
                "Sign-in failed",
                &format!("The authorization server said: {error}. You may close this tab."),
            ),
            Some(Err(e)),
        );
    }
    match get("code").filter(|c| !c.is_empty()) {
        Some(code) => {
            let text = format!("You are signed in to {}. You may close this tab.", expect.server_name);
            (page(StatusCode::OK, "Signed in", &text), Some(Ok(code.to_owned())))
        }
        None => {
            (page(StatusCode::BAD_REQUEST, "Sign-in incomplete", "The response carries no authorization code."), None)
        }
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response<Full<Bytes>> {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mcpgate: {t}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;max-width:32em;margin:4em auto\"><h1>{t}</h1><p>{x}</p></body></html>",
        t = escape(title),
        x = escape(text)
    );
    let mut resp = Response::new(Full::new(Bytes::from(html)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    // The URL carries the code: no Referer to anything the page could load, no framing.
    h.insert(http::header::REFERRER_POLICY, http::HeaderValue::from_static("no-referrer"));
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    resp
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_urls() {
        assert_eq!(
            parse_redirect("http://127.0.0.1:33418/oauth/cb").unwrap(),
            ("127.0.0.1".into(), 33418, "/oauth/cb".into())
        );
        assert_eq!(parse_redirect("http://localhost:0").unwrap(), ("localhost".into(), 0, "/callback".into()));
        for bad in [
            "https://127.0.0.1:1/cb",
            "http://evil.example:1/cb",
            "http://0.0.0.0:1/",
            "nope",
            "http://127.0.0.1:65616/cb",
            "http://127.0.0.1:x/cb",
        ] {
            assert!(parse_redirect(bad).is_err(), "{bad}");
        }
        assert_eq!(escape("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
