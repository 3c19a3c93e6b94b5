//! Plain-http upstream connections: HTTP/1.1 keep-alive, one pool per thread and client.
//!
//! hyper's connection API does the wire work; this file only keeps connections. It replaces
//! hyper-util's general pool for `http://` upstreams (a gateway's usual case: a sidecar or a
//! service on the same network), where that pool's bookkeeping — a hashed key per checkout, a
//! task per request to notice the connection is free again — cost as much as hyper's own HTTP
//! work. Here a connection stays in its thread's list while a request is on it; hyper says when
//! it is ready again (the answer's body fully read), so nothing has to hand it back.
//!
//! A request on a kept-alive connection the server closed before reading it (Node and uvicorn
//! drop idle connections after 5 s) is sent again on a fresh one: hyper returns a request it
//! never wrote, so the retry cannot repeat a call. Connections idle for longer than
//! `MAX_IDLE` are not reused, which keeps that race rare.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::http_client::BoxError;

type Sender = http1::SendRequest<Full<Bytes>>;

/// Below the keep-alive timeout of the servers MCP runs on (Node's and uvicorn's: 5 s). Counted
/// from the last request's start, so a connection that carried a long stream is not reused
/// either: being wrong that way costs one handshake.
const MAX_IDLE: Duration = Duration::from_secs(4);

/// One connection: where it goes, and when a request last went on it.
struct Conn {
    authority: Authority,
    sender: Sender,
    used: Instant,
}

/// A thread's connections for one client.
#[derive(Default)]
pub struct Pool {
    conns: Vec<Conn>,
}

/// Reaches this thread's pool (again after each wait: a task may not hold it across one).
pub trait Pools {
    fn with_pool<R>(&self, f: impl FnOnce(&mut Pool) -> R) -> R;
}

impl Pool {
    /// A free connection to `authority`, if there is one; the closed and the stale are dropped
    /// on the way.
    fn free(&mut self, authority: &Authority, now: Instant) -> Option<&mut Sender> {
        let stale = |c: &Conn| c.sender.is_ready() && now - c.used > MAX_IDLE;
        self.conns.retain(|c| !(c.sender.is_closed() || stale(c)));
        let c = self.conns.iter_mut().find(|c| c.sender.is_ready() && c.authority == *authority)?;
        c.used = now;
        Some(&mut c.sender)
    }
}

/// Sends `req` (an `http://` URI) on one of this thread's connections, opening one if none is
/// free.
pub async fn send(
    pools: &impl Pools,
    mut req: Request<Full<Bytes>>,
    connect_timeout: Duration,
) -> Result<Response<Incoming>, BoxError> {
    let uri = req.uri().clone();
    let authority = uri.authority().cloned().ok_or("the URL has no host")?;
    // Origin form on the wire, the authority in Host (what a client library sends).
    *req.uri_mut() = Uri::from(uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
    if !req.headers().contains_key(HOST) {
        req.headers_mut().insert(HOST, host_header(&uri)?);
    }
    // A kept-alive connection first; a request it gives back unsent goes on a fresh one.
    let mut req = Some(req);
    let reused = pools.with_pool(|pool| {
        let sender = pool.free(&authority, Instant::now())?;
        req.take().map(|r| sender.try_send_request(r))
    });
    if let Some(pending) = reused {
        match pending.await {
            Ok(resp) => return Ok(resp),
            Err(mut e) => match e.take_message() {
                Some(unsent) => {
                    tracing::debug!(
                        "a kept-alive connection closed before the request went out ({}); opening another",
                        e.error()
                    );
                    req = Some(unsent);
                }
                None => return Err(e.into_error().into()),
            },
        }
    }
    let req = req.ok_or("no request to send")?;
    // Boxed: connecting is rare and its future large, and every future that awaits this one
    // would carry (and copy) that size on every request.
    let mut sender = Box::pin(open(&uri, connect_timeout)).await?;
    let pending = sender.send_request(req);
    pools.with_pool(|pool| pool.conns.push(Conn { authority, sender, used: Instant::now() }));
    Ok(pending.await?)
}

/// `Host` for `uri`: its host and a port other than 80 — never the authority as written, which
/// may hold user info (`http://user:secret@host/`), a secret the upstream must not see there.
fn host_header(uri: &Uri) -> Result<HeaderValue, BoxError> {
    let host = uri.host().ok_or("the URL has no host")?;
    let value = match uri.port_u16() {
        Some(p) if p != 80 => HeaderValue::from_str(&format!("{host}:{p}")),
        _ => HeaderValue::from_str(host),
    };
    value.map_err(|_| "the URL's host is not a valid Host header".into())
}

/// A new connection to `uri`'s host, its HTTP/1.1 state machine running as a task here.
async fn open(uri: &Uri, connect_timeout: Duration) -> Result<Sender, BoxError> {
    let host = uri.host().ok_or("the URL has no host")?;
    // An IPv6 literal comes bracketed in a URL, bare in a socket address.
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = uri.port_u16().unwrap_or(80);
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Box::new(e)),
        Err(_) => return Err(format!("connecting took longer than {connect_timeout:?}").into()),
    };
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream connection ended: {e}");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_never_carries_user_info() {
        for (url, host) in [
            ("http://user:secret@example.com:8080/mcp", "example.com:8080"),
            ("http://token@example.com/mcp", "example.com"),
            ("http://example.com:80/mcp", "example.com"),
            ("http://[::1]:3000/mcp", "[::1]:3000"),
            ("http://127.0.0.1:9/mcp?key=v", "127.0.0.1:9"),
        ] {
            let uri: Uri = url.parse().unwrap();
            assert_eq!(host_header(&uri).unwrap(), host, "{url}");
        }
    }
}
