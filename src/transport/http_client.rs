//! The outbound HTTP client every HTTP transport shares: connection reuse, HTTP/2 by ALPN or
//! HTTP/1.1, rustls with the system's roots, TCP_NODELAY (a proxy must not add Nagle delays).
//!
//! TLS is set up on the first https connection, not before: reading and parsing the system's
//! roots costs milliseconds and megabytes a bridge to an http:// upstream never needs (its cold
//! start is measured in milliseconds).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type HttpClient = Client<Connector, Full<Bytes>>;

/// Plain TCP for http, rustls (built once, on first use) for https.
#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    tls: Arc<OnceLock<HttpsConnector<HttpConnector>>>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if uri.scheme_str() == Some("https") {
            let mut tls = self.tls.get_or_init(|| https(self.http.clone())).clone();
            Box::pin(async move { tls.call(uri).await })
        } else {
            let mut http = self.http.clone();
            Box::pin(async move { Ok(MaybeHttpsStream::Http(http.call(uri).await?)) })
        }
    }
}

fn https(http: HttpConnector) -> HttpsConnector<HttpConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider.clone()) {
        Ok(b) => b,
        Err(e) => {
            // No system roots (a minimal container): https fails per request with a
            // certificate error that says why.
            tracing::warn!("no system TLS roots found ({e}); https upstreams will fail certificate checks");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    builder.https_only().enable_http1().enable_http2().wrap_connector(http)
}

pub fn build(connect_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    Client::builder(TokioExecutor::new())
        // Below the keep-alive timeout of the servers MCP runs on (Node's and uvicorn's: 5 s): a
        // connection the server closes just as it is reused fails its request with "connection
        // closed before message completed", and a POST must not be sent twice on a guess.
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(256)
        .build(Connector { http, tls: Arc::new(OnceLock::new()) })
}
