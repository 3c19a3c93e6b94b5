//! The outbound HTTP client every HTTP transport shares: connection reuse, HTTP/2 by ALPN or
//! HTTP/1.1, rustls with the system's roots, TCP_NODELAY (a proxy must not add Nagle delays).
//!
//! Each thread keeps its own pool of connections: `serve` runs an event loop per core, and a
//! connection opened by one loop but used by another would wake the first for every read and
//! write — the cross-thread hand-off the single-threaded design exists to avoid.
//!
//! TLS is set up on the first https connection, not before: reading and parsing the system's
//! roots costs milliseconds and megabytes a bridge to an http:// upstream never needs (its cold
//! start is measured in milliseconds).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

pub use super::http1::ResponseBody;
use super::http1::{self, Pool};

pub use crate::http::body::BoxError;

pub type Pending = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>;

type Legacy = Client<Connector, Full<Bytes>>;

/// A client; clones share its settings, and on each thread its connections.
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Settings>,
}

struct Settings {
    connector: Connector,
    connect_timeout: Duration,
    policy: Option<AddressPolicy>,
    /// Itself, to register a thread's connections under (`Home::with_pool` gets `&self` only).
    me: Weak<Settings>,
}

/// A client's connections on one thread: `http://` ones in our pool, the rest (TLS, HTTP/2 by
/// ALPN) in hyper-util's.
struct Local {
    plain: Pool,
    other: Legacy,
}

thread_local! {
    /// This thread's connections of each client in use here. The `Weak` keeps its client's
    /// address from being reused while the entry exists, so comparing addresses is sound.
    static LOCAL: RefCell<Vec<(Weak<Settings>, Local)>> = const { RefCell::new(Vec::new()) };
}

impl HttpClient {
    /// Boxed, as hyper-util's own future is: every future awaiting this one would otherwise
    /// carry its kilobytes, copied each time one of them is boxed or moved.
    pub fn request(&self, req: Request<Full<Bytes>>) -> Pending {
        if req.uri().scheme_str() == Some("http") {
            let (home, timeout): (Arc<dyn http1::Home>, _) = (self.shared.clone(), self.shared.connect_timeout);
            return Box::pin(async move { http1::send(&home, req, timeout).await });
        }
        let pending = self.local(|l| l.other.request(req));
        Box::pin(async move { Ok(pending.await?.map(ResponseBody::hyper)) })
    }

    /// Sends a request encoded by the caller to an `http://` URL, on this thread's pool.
    pub async fn send_plain(&self, wire: http1::Wire<'_>) -> Result<Response<ResponseBody>, BoxError> {
        let home: Arc<dyn http1::Home> = self.shared.clone();
        http1::send_encoded(&home, wire, self.shared.connect_timeout).await
    }

    fn local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> R {
        self.shared.local(f)
    }
}

impl Settings {
    /// This thread's connections of this client, made on first use here.
    fn local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> R {
        let me: *const Settings = self;
        LOCAL.with_borrow_mut(|all| {
            if let Some(i) = all.iter().position(|(w, _)| std::ptr::eq(w.as_ptr(), me)) {
                return f(&mut all[i].1);
            }
            // First use on this thread; forget the connections of clients gone since.
            all.retain(|(w, _)| w.strong_count() > 0);
            let mut local = Local { plain: Pool::default(), other: legacy(self.connector.clone()) };
            let r = f(&mut local);
            all.push((self.me.clone(), local));
            r
        })
    }
}

impl http1::Home for Settings {
    fn with_pool(&self, f: &mut dyn FnMut(&mut Pool)) {
        self.local(|l| f(&mut l.plain));
    }

    fn policy(&self) -> Option<AddressPolicy> {
        self.policy.clone()
    }
}

pub use super::address::{AddressPolicy, admitted};

/// Name resolution for TLS connections, through the client's address policy: what is checked is
/// what is connected to.
#[derive(Clone)]
pub struct Resolver(Option<AddressPolicy>);

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for Resolver {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let policy = self.0.clone();
        Box::pin(async move {
            let addrs = match &policy {
                Some(p) => admitted(name.as_str(), 0, p).await?,
                None => tokio::net::lookup_host((name.as_str(), 0)).await?.collect(),
            };
            Ok(addrs.into_iter())
        })
    }
}

type Tcp = HttpConnector<Resolver>;

/// Plain TCP for http, rustls (built once, on first use) for https.
#[derive(Clone)]
pub struct Connector {
    http: Tcp,
    tls: Arc<OnceLock<HttpsConnector<Tcp>>>,
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

fn https(http: Tcp) -> HttpsConnector<Tcp> {
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
    build_with(connect_timeout, None)
}

/// A client that connects only to addresses `policy` admits, checked on the addresses it
/// actually connects to (names resolved once).
pub fn build_guarded(connect_timeout: Duration, policy: AddressPolicy) -> HttpClient {
    build_with(connect_timeout, Some(policy))
}

fn build_with(connect_timeout: Duration, policy: Option<AddressPolicy>) -> HttpClient {
    let mut http = HttpConnector::new_with_resolver(Resolver(policy.clone()));
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = Connector { http, tls: Arc::new(OnceLock::new()) };
    HttpClient { shared: Arc::new_cyclic(|me| Settings { connector, connect_timeout, policy, me: me.clone() }) }
}

fn legacy(connector: Connector) -> Legacy {
    Client::builder(TokioExecutor::new())
        // Below the keep-alive timeout of the servers MCP runs on (Node's and uvicorn's: 5 s): a
        // connection the server closes just as it is reused fails its request with "connection
        // closed before message completed", and a POST must not be sent twice on a guess.
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(256)
        .build(connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guarded client checks the addresses it connects to, for names (resolved once) on both
    /// its paths: plain HTTP (its own pool) and TLS (hyper-util's connector).
    #[tokio::test]
    async fn a_guarded_client_connects_only_where_its_policy_admits() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let request = |scheme: &str| {
            let uri = format!("{scheme}://localhost:{port}/x");
            Request::get(uri).body(Full::new(Bytes::new())).unwrap()
        };
        let deny_loopback: AddressPolicy = Arc::new(|ip: std::net::IpAddr| !ip.is_loopback());
        let guarded = build_guarded(Duration::from_secs(2), deny_loopback.clone());
        for scheme in ["http", "https"] {
            let err = guarded.request(request(scheme)).await.err().unwrap_or_else(|| panic!("{scheme}: connected"));
            let text = crate::error::chain(&*err);
            assert!(text.contains("no address this client may connect to"), "{scheme}: {text}");
        }
        let allowed = build_guarded(Duration::from_secs(2), Arc::new(|_| true));
        assert_eq!(allowed.request(request("http")).await.unwrap().status(), 204);
        assert!(admitted("localhost", port, &deny_loopback).await.is_err());
    }
}
