//! Accepting connections (HTTP/1.x and h2c) within the connection limits, spreading them over
//! event loops, and draining them on shutdown.
//!
//! One thread accepts; each connection then lives on one event loop (a single-threaded runtime)
//! for its whole life, so a request never crosses threads on its way through — the same loop
//! reads it, calls the upstream (each loop has its own upstream connections, see
//! `transport::http_client`) and writes the answer. A new connection goes to the loop with the
//! fewest open ones. This is nginx's worker model inside one process: cross-thread wake-ups
//! happen once per connection, not once per request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;

use http::{Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::http::body::{Body, RequestBody};
use crate::http::conns::{Conns, Ticket};
use crate::http::h1::{self, Ended};
use crate::http::limits::{self, Edge};

/// A connection accepted and admitted, on its way to an event loop.
type Accepted = (std::net::TcpStream, SocketAddr, Ticket);

/// What every connection of a listener shares: shutdown, limits, the table of open ones.
#[derive(Clone)]
pub struct Front {
    pub shutdown: CancellationToken,
    pub edge: Edge,
    pub conns: Arc<Conns>,
}

/// The event loops a `serve` started beyond the caller's own. They keep running what requests
/// spawned on them (a stateful server's child, say) until this is dropped, so that the caller can
/// stop its backends first; dropping it ends and joins them.
pub struct Loops {
    finish: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Loops {
    fn drop(&mut self) {
        self.finish.cancel();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One event loop's inbox and how many connections it has open.
struct Lane {
    inbox: mpsc::UnboundedSender<Accepted>,
    open: Arc<AtomicUsize>,
}

/// Serves `handler` on `listener` with `threads` event loops (the caller's and `threads - 1`
/// more) until `front.shutdown` fires, then stops accepting and waits up to the limits' `shutdown_grace`
/// (as it is then: a reload may have changed it) for in-flight requests to finish.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F, front: Front, threads: usize) -> Loops
where
    F: Fn(Request<RequestBody>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let mut loops = Loops { finish: CancellationToken::new(), threads: Vec::new() };
    let mut lanes = Vec::new();
    let mut drained = Vec::new();
    for i in 0..threads.max(1) {
        let (inbox, rx) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        let work = lane(rx, handler.clone(), front.clone(), open.clone());
        let (done, done_rx) = oneshot::channel::<()>();
        if i == 0 {
            tokio::spawn(async move {
                work.await;
                let _ = done.send(());
            });
        } else {
            let finish = loops.finish.clone();
            let spawned = std::thread::Builder::new().name(format!("mcpgate-loop-{i}")).spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return tracing::error!("cannot start event loop {i}: {e}"),
                };
                runtime.block_on(async move {
                    work.await;
                    let _ = done.send(());
                    finish.cancelled().await;
                });
                // Tasks still running (a child's reader, say) are dropped; none may hold us up.
                runtime.shutdown_timeout(Duration::from_secs(1));
            });
            match spawned {
                Ok(t) => loops.threads.push(t),
                Err(e) => {
                    tracing::error!("cannot start event loop {i}: {e}; serving with fewer");
                    continue;
                }
            }
        }
        lanes.push(Lane { inbox, open });
        drained.push(done_rx);
    }
    // The descriptors allow so many connections; the configured cap may be lower.
    let descriptors = limits::descriptors();
    // Idle connections past their limit are closed by one sweep, four times a second.
    let sweeper = tokio::spawn(front.conns.clone().sweep(Duration::from_millis(250), front.shutdown.clone()));
    let mut noisy = Noisy::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors: close the connection idle the longest and try again at
                    // once; with none idle, back off briefly instead of spinning.
                    let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    noisy.warn(|n| format!("accept failed: {e} ({n} time(s) in the last second)"));
                    if out_of_fds && front.conns.shed_one() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            () = front.shutdown.cancelled() => break,
        };
        let limits = front.edge.get();
        let cap = limits::connection_cap(limits.max_connections, descriptors);
        let ticket = match front.conns.admit(peer.ip(), &limits, cap) {
            Ok(t) => t,
            Err(full) => {
                noisy.warn(|n| {
                    format!("connection from {peer} refused: {full:?} is at its limit ({n} in the last second)")
                });
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, "cannot hand the connection over: {e}");
                continue;
            }
        };
        hand_over(&lanes, (stream, peer, ticket));
    }
    drop(listener);
    drop(lanes);
    sweeper.abort();
    tracing::info!("stopped accepting; draining in-flight requests (up to {:?})", front.edge.get().shutdown_grace);
    for d in drained {
        let _ = d.await;
    }
    loops
}

/// A warning that may come thousands of times a second (a flood): said at most once a second,
/// with how often it happened.
#[derive(Default)]
struct Noisy {
    since: Option<std::time::Instant>,
    count: u64,
}

impl Noisy {
    fn warn(&mut self, say: impl FnOnce(u64) -> String) {
        self.count += 1;
        let now = std::time::Instant::now();
        if self.since.is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1)) {
            tracing::warn!("{}", say(self.count));
            self.since = Some(now);
            self.count = 0;
        }
    }
}

/// To the loop with the fewest open connections (a loop that died is skipped).
fn hand_over(lanes: &[Lane], mut conn: Accepted) {
    let mut order: Vec<&Lane> = lanes.iter().collect();
    order.sort_by_key(|l| l.open.load(Ordering::Relaxed));
    for lane in order {
        lane.open.fetch_add(1, Ordering::Relaxed);
        match lane.inbox.send(conn) {
            Ok(()) => return,
            Err(mpsc::error::SendError(back)) => {
                lane.open.fetch_sub(1, Ordering::Relaxed);
                conn = back;
            }
        }
    }
    tracing::warn!(peer = %conn.1, "no event loop is running; connection dropped");
}

/// One event loop: serves the connections handed to it, then drains them.
async fn lane<F, Fut>(mut inbox: mpsc::UnboundedReceiver<Accepted>, handler: F, front: Front, open: Arc<AtomicUsize>)
where
    F: Fn(Request<RequestBody>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    // Each connection holds a clone; the receiver learns when the last one is gone.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        let (stream, peer, ticket) = tokio::select! {
            conn = inbox.recv() => match conn {
                Some(c) => c,
                None => break,
            },
            () = front.shutdown.cancelled() => break,
        };
        let stream = match TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                open.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(%peer, "cannot take the connection: {e}");
                continue;
            }
        };
        let (handler, front, open, alive) = (handler.clone(), front.clone(), open.clone(), alive.clone());
        tokio::spawn(async move {
            let _alive = alive;
            let conn = h1::Conn { peer, ticket: &ticket, edge: &front.edge, shutdown: &front.shutdown };
            // Our HTTP/1.x codec; hyper for HTTP/2 with prior knowledge.
            if let Ended::H2c(stream, read) = h1::serve(stream, conn, &handler).await {
                let limits = front.edge.get();
                let io = Prefixed { read, stream, write_timeout: limits.write_timeout, stalled: None };
                h2c(io, handler, peer, &front).await;
            }
            drop(ticket);
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(alive);
    tokio::select! {
        _ = all_closed.recv() => tracing::debug!("all connections drained"),
        () = tokio::time::sleep(front.edge.get().shutdown_grace) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}

/// The rest of an HTTP/2 connection, served by hyper; on shutdown it finishes what is in
/// flight and closes. Pings find a peer that went away; a body must arrive within the body
/// limits, and the peer must take what is written within `write_timeout` (`Prefixed`).
async fn h2c<F, Fut>(io: Prefixed, handler: F, peer: SocketAddr, front: &Front)
where
    F: Fn(Request<RequestBody>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let edge = front.edge.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        let limits = edge.get();
        let within = limits.body_deadline(req.body().size_hint().lower());
        async move { Ok::<_, Infallible>(handler(req.map(|b| RequestBody::hyper(b, within)), peer).await) }
    });
    let limits = front.edge.get();
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout / 3))
        .keep_alive_timeout(limits.head_timeout)
        .max_concurrent_streams(128);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        () = front.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, "connection ended with an error: {e}");
    }
}

/// A connection hyper takes over: first the bytes our codec had read, then the socket.
struct Prefixed {
    read: Bytes,
    stream: TcpStream,
    write_timeout: Duration,
    /// Since when a write has been waiting for the peer to read.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Prefixed {
    /// A write that cannot go on: fails once it has waited `write_timeout`.
    fn waited(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let limit = self.write_timeout;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if stalled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        Poll::Pending
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Pending => self.waited(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.waited(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
