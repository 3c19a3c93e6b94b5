//! An upstream MCP server as the gateway sees it: where it is, how to reach it, and the
//! credential to present. Every request to it goes through `send` (or `send_direct`), which
//! injects the credential — with a fresh DPoP proof when the token is DPoP-bound — bounds the
//! wait, and answers a 401 with one refresh and one retry (`recover`).

mod direct;

use std::time::Duration;

use crate::transport::http_client::ResponseBody;
use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;

use crate::credentials::Credentials;
use crate::error::{Error, Kind, chain};
use crate::oauth_client::Challenge;
use crate::oauth_client::dpop::DPOP;
use crate::transport::http_client::HttpClient;

pub use direct::{Rule, Varying, fits};

pub struct Upstream {
    pub url: Uri,
    /// The URL without user info or query, safe to print.
    pub display: std::sync::Arc<str>,
    client: HttpClient,
    credentials: Credentials,
    /// Static `--header`s, set on every request (they win over the client's).
    headers: HeaderMap,
    /// How long to wait for an answer (response headers; for streams, between events).
    pub timeout: Duration,
    /// For `send_direct`: the fixed part of a POST's head, rendered once.
    direct: Option<Box<[u8]>>,
    /// The latest refusal of the credential (401/403) and when: what a wrapper rotating tokens
    /// looks at (`connect`'s admin API). Written on refusals only, off the hot path.
    last_refusal: std::sync::Mutex<Option<(u16, std::time::SystemTime)>>,
}

impl Upstream {
    /// The latest refusal of the credential: its status and when.
    pub fn last_refusal(&self) -> Option<(u16, std::time::SystemTime)> {
        *self.last_refusal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The credential it injects (an identity's is set and read by the admin API).
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn new(url: Uri, client: HttpClient, credentials: Credentials, headers: HeaderMap, timeout: Duration) -> Self {
        let display = crate::url::display(&url).into();
        let direct = direct::render(&url, &headers);
        Upstream { url, display, client, credentials, headers, timeout, direct, last_refusal: Default::default() }
    }

    /// Whether mcpgate supplies `Authorization` itself (then the client's is dropped).
    pub fn supplies_authorization(&self) -> bool {
        self.credentials.supplies_authorization() || self.headers.contains_key(AUTHORIZATION)
    }

    /// Sends one request to `uri` (the upstream URL unless a transport says otherwise). The
    /// headers are moved into the request: they are copied only when a retry is possible.
    ///
    /// A refusal the credential may cure — 401, or 403 with an `insufficient_scope` challenge
    /// (step-up) — gets one renewal and one retry; otherwise the client sees the refusal as
    /// the upstream sent it, challenge included.
    pub async fn send(
        &self,
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<ResponseBody>, Error> {
        let auth = self.authorization().await?;
        let retry = self.credentials.may_recover(auth.as_ref()).then(|| (headers.clone(), body.clone()));
        let resp = self.send_once(method.clone(), uri, headers, auth.as_ref(), body).await?;
        self.recover(resp, method, uri, retry, auth).await
    }

    /// After `resp` answered a request sent with `auth`: when it is a refusal the credential
    /// may cure, one renewal and one retry with `retry` (the request's headers and body, kept
    /// when `may_recover` said so); otherwise `resp` as it came.
    ///
    /// A DPoP-bound token refused for want of the server's nonce (401, `use_dpop_nonce`, RFC
    /// 9449 §9) is sent once more with it, before or after a renewal, never twice: a server
    /// that asks again gets its refusal back to the client, not a loop.
    pub async fn recover(
        &self,
        mut resp: Response<ResponseBody>,
        method: Method,
        uri: &Uri,
        retry: Option<(HeaderMap, Bytes)>,
        mut auth: Option<HeaderValue>,
    ) -> Result<Response<ResponseBody>, Error> {
        let (mut renewed, mut nonce_sent) = (false, false);
        loop {
            let status = resp.status();
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                *self.last_refusal.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((status.as_u16(), std::time::SystemTime::now()));
            }
            let challenge = match status {
                StatusCode::UNAUTHORIZED => Challenge::from_headers(resp.headers()).unwrap_or_default(),
                StatusCode::FORBIDDEN => match Challenge::from_headers(resp.headers()) {
                    Some(c) if c.insufficient_scope() => c,
                    _ => return Ok(resp),
                },
                _ => return Ok(resp),
            };
            let Some((headers, body)) = &retry else { return Ok(resp) };
            if challenge.use_dpop_nonce() {
                // The nonce came with the refusal (`send_once` kept it); a proof without one is
                // all that was wrong, so the same token goes again.
                let ours = auth.as_ref().is_some_and(|a| a.as_bytes().starts_with(b"DPoP "));
                if nonce_sent || !ours || crate::oauth_client::dpop::nonce_of(resp.headers()).is_none() {
                    return Ok(resp);
                }
                nonce_sent = true;
                tracing::debug!(upstream = %self.display, "the upstream asks for a DPoP nonce; sending the request again with it");
                drop(resp);
                resp = self.send_once(method.clone(), uri, headers.clone(), auth.as_ref(), body.clone()).await?;
                continue;
            }
            if renewed {
                return Ok(resp);
            }
            renewed = true;
            // Boxed: rare, and large (a refresh, a step-up sign-in).
            match Box::pin(self.credentials.recover(auth.as_ref(), status, &challenge)).await {
                Ok(Some(fresh)) => {
                    tracing::info!(upstream = %self.display, status = status.as_u16(), "upstream refused the credential; retrying once with a renewed one");
                    drop(resp);
                    resp = self.send_once(method.clone(), uri, headers.clone(), Some(&fresh), body.clone()).await?;
                    auth = Some(fresh);
                }
                // Nothing better to offer: the client sees the upstream's own challenge.
                Ok(None) => return Ok(resp),
                Err(e) => {
                    return Err(Error::new(
                        Kind::Credential,
                        format!("upstream {} answered {} and {e}", self.display, status.as_u16()),
                    ));
                }
            }
        }
    }

    /// Whether a request sent with `auth` that is refused may succeed with another credential.
    pub fn may_recover(&self, auth: Option<&HeaderValue>) -> bool {
        self.credentials.may_recover(auth)
    }

    pub async fn authorization(&self) -> Result<Option<HeaderValue>, Error> {
        self.credentials
            .authorization()
            .await
            .map_err(|e| Error::new(Kind::Credential, format!("no credential for upstream {}: {e}", self.display)))
    }

    async fn send_once(
        &self,
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        auth: Option<&HeaderValue>,
        body: Bytes,
    ) -> Result<Response<ResponseBody>, Error> {
        for (k, v) in &self.headers {
            headers.insert(k, v.clone());
        }
        let mut proved = false;
        if let Some(auth) = auth {
            headers.insert(AUTHORIZATION, auth.clone());
            // A DPoP-bound token goes with a proof of this very request (RFC 9449 §7.1).
            if let Some(proof) = self.credentials.proof(&method, uri, auth) {
                headers.insert(DPOP, proof);
                proved = true;
            }
        }
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers;
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => {
                if proved {
                    self.credentials.note_nonce(uri, resp.headers());
                }
                Ok(resp)
            }
            Ok(Err(e)) => Err(Error::unreachable(&self.display, chain(&*e))),
            Err(_) => Err(Error::timeout(&self.display, self.timeout)),
        }
    }
}

/// Parses `K: V` as given to `--header`. Errors never show the text: a header that does not
/// parse may still hold its secret (`Authorization Bearer …` without the colon).
pub fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (k, v) = raw.split_once(':').ok_or("expected 'Name: value'")?;
    let name = HeaderName::try_from(k.trim()).map_err(|_| "the name before ':' is not a valid header name")?;
    let mut value = HeaderValue::try_from(v.trim())
        .map_err(|_| format!("{name}: the value is not a valid header value (control characters?)"))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Validates an upstream URL (scheme, host, port); the error never shows a secret of it.
pub use crate::url::parse as parse_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(parse_url("http://127.0.0.1:3000/mcp").is_ok());
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("/mcp").is_err());
        assert!(parse_url("not a url").is_err());
        assert!(parse_url("http://127.0.0.1:65616/mcp").is_err());
        let u = parse_url("https://user:pw@example.com:8443/mcp?key=secret").unwrap();
        assert_eq!(crate::url::display(&u), "https://example.com:8443/mcp");
    }

    #[test]
    fn headers() {
        let (k, v) = parse_header("X-Tenant:  acme ").unwrap();
        assert_eq!((k.as_str(), v.to_str().unwrap()), ("x-tenant", "acme"));
        for bad in ["Authorization Bearer SECRET", "Bearer SECRET: x", "Authorization: Bearer SECRET\u{1}"] {
            let e = parse_header(bad).expect_err(bad);
            assert!(!e.contains("SECRET"), "{bad:?}: {e}");
        }
    }
}
