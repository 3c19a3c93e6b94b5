//! HTTP to authorization servers and metadata endpoints: small JSON documents, bounded in size
//! and time, no redirects followed, and an address policy against SSRF: a server cannot make
//! mcpgate fetch from link-local or cloud-metadata addresses, nor from private or loopback ones
//! unless the MCP server itself lives there (local development).

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};

use super::AuthError;
use crate::transport::http_client::HttpClient;

/// Largest metadata or token document read.
const MAX_DOCUMENT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct Http {
    client: HttpClient,
    timeout: Duration,
    /// Private, loopback and unique-local targets are allowed (the MCP server is one).
    allow_private: bool,
    /// Plain http is allowed (the MCP server uses it).
    allow_http: bool,
}

pub struct Reply {
    pub status: StatusCode,
    /// The answer's headers (a token endpoint's `DPoP-Nonce`).
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl Http {
    /// The policy follows the MCP server's own address: a server on loopback (local
    /// development) may point at an authorization server on loopback; a public one may not. The
    /// client is its own, connecting only where the policy admits, on the addresses it checked
    /// (a name is resolved once: a DNS answer changing in between cannot slip past it).
    pub fn for_server(server: &Uri, timeout: Duration) -> Http {
        Http::for_server_with(server, timeout, timeout)
    }

    /// `for_server`, with connections given `connect_timeout` of the request's `timeout`.
    pub fn for_server_with(server: &Uri, connect_timeout: Duration, timeout: Duration) -> Http {
        let host = server.host().unwrap_or("");
        let allow_private = match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => !is_public(ip),
            Err(_) => {
                host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost") || host.ends_with(".local")
            }
        };
        let policy: crate::transport::http_client::AddressPolicy =
            std::sync::Arc::new(move |ip| !is_forbidden(ip) && (allow_private || is_public(ip)));
        let client = crate::transport::http_client::build_guarded(connect_timeout, policy);
        Http { client, timeout, allow_private, allow_http: server.scheme_str() == Some("http") }
    }

    pub async fn get(&self, url: &str) -> Result<Reply, AuthError> {
        self.send(Method::GET, url, None, None, None).await
    }

    /// POSTs a form (token and other OAuth endpoints), optionally with HTTP Basic client auth
    /// and a DPoP proof.
    pub async fn post_form(
        &self,
        url: &str,
        form: String,
        basic: Option<HeaderValue>,
        dpop: Option<HeaderValue>,
    ) -> Result<Reply, AuthError> {
        self.send(Method::POST, url, Some(("application/x-www-form-urlencoded", form.into())), basic, dpop).await
    }

    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<Reply, AuthError> {
        self.send(Method::POST, url, Some(("application/json", body.to_string().into())), None, None).await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<(&'static str, Bytes)>,
        auth: Option<HeaderValue>,
        dpop: Option<HeaderValue>,
    ) -> Result<Reply, AuthError> {
        let uri = self.check(url).await?;
        let shown = crate::url::display(&uri);
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        req.headers_mut().insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some((content_type, bytes)) = body {
            req.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            *req.body_mut() = Full::new(bytes);
        }
        if let Some(mut auth) = auth {
            auth.set_sensitive(true);
            req.headers_mut().insert(AUTHORIZATION, auth);
        }
        if let Some(proof) = dpop {
            req.headers_mut().insert(super::dpop::DPOP, proof);
        }
        let work = async {
            let resp =
                self.client.request(req).await.map_err(|e| {
                    AuthError::transient(format!("{shown} is unreachable: {}", crate::error::chain(&*e)))
                })?;
            let status = resp.status();
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_DOCUMENT)
                .collect()
                .await
                .map_err(|e| AuthError::transient(format!("reading the answer of {shown} failed: {e}")))?
                .to_bytes();
            Ok(Reply { status, headers: parts.headers, body })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| AuthError::transient(format!("{shown} did not answer within {:?}", self.timeout)))?
    }

    /// The URL, if the policy allows fetching it.
    async fn check(&self, url: &str) -> Result<Uri, AuthError> {
        let refuse =
            |why: String| AuthError::refused(format!("will not fetch {}: {why}", crate::url::display_text(url)));
        let uri: Uri = url.parse().map_err(|_| refuse("not a URL".into()))?;
        let host = uri.host().ok_or_else(|| refuse("no host".into()))?.to_owned();
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if self.allow_http => {}
            Some("http") => return Err(refuse("an https server's authorization must use https".into())),
            _ => return Err(refuse("the scheme must be https".into())),
        }
        // A port out of range would otherwise be taken for no port: the request would go to 80/443.
        let port =
            crate::url::port(&uri).map_err(refuse)?.unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| AuthError::transient(format!("cannot resolve {bare}: {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in addrs {
            if is_forbidden(ip) {
                return Err(refuse(format!("{ip} is a link-local or metadata address")));
            }
            if !self.allow_private && !is_public(ip) {
                return Err(refuse(format!("{ip} is a private address and the MCP server is not")));
            }
        }
        Ok(uri)
    }
}

/// Never fetched: link-local (169.254.0.0/16 holds the cloud metadata services), unspecified,
/// multicast, broadcast.
fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80
                // AWS's IPv6 metadata endpoint fd00:ec2::254
                || v6.segments()[..2] == [0xfd00, 0x0ec2]
        }
    }
}

/// A globally routable address (not loopback, private, shared, unique-local or documentation).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || v4.is_documentation())
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_for(server: &str) -> Http {
        Http::for_server(&server.parse().unwrap(), Duration::from_secs(1))
    }

    #[tokio::test]
    async fn ssrf_policy() {
        let public = http_for("https://mcp.example.com/mcp");
        let local = http_for("http://127.0.0.1:3000/mcp");
        let table: &[(&Http, &str, bool)] = &[
            (&public, "http://169.254.169.254/latest/meta-data/", false),
            (&public, "https://169.254.169.254/", false),
            (&public, "https://[fe80::1]/", false),
            (&public, "https://[::ffff:169.254.169.254]/", false),
            (&public, "https://[fd00:ec2::254]/", false),
            (&public, "https://127.0.0.1/token", false),
            (&public, "https://10.0.0.5/token", false),
            (&public, "https://192.168.1.1/", false),
            (&public, "https://[::1]/", false),
            (&public, "http://93.184.215.14/", false),
            (&public, "https://93.184.215.14/.well-known/oauth-authorization-server", true),
            (&public, "ftp://93.184.215.14/", false),
            (&local, "http://127.0.0.1:9000/token", true),
            (&local, "http://169.254.169.254/", false),
            (&local, "https://0.0.0.0/", false),
        ];
        for (client, url, allowed) in table {
            assert_eq!(client.check(url).await.is_ok(), *allowed, "{url}");
        }
    }
}
