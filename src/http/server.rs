//! Accepting connections (HTTP/1.1 and h2c), spreading them over event loops, and draining them
//! on shutdown.
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
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::http::body::{Body, RequestBody};
use crate::http::h1::{self, Ended};

type Accepted = (std::net::TcpStream, SocketAddr);

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
/// more) until `shutdown` fires, then stops accepting and waits up to `grace` for in-flight
/// requests to finish.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    handler: F,
    shutdown: CancellationToken,
    grace: Duration,
    threads: usize,
) -> Loops
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
        let work = lane(rx, handler.clone(), shutdown.clone(), grace, open.clone());
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
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, "cannot hand the connection over: {e}");
                continue;
            }
        };
        hand_over(&lanes, (stream, peer));
    }
    drop(listener);
    drop(lanes);
    tracing::info!("stopped accepting; draining in-flight requests (up to {grace:?})");
    for d in drained {
        let _ = d.await;
    }
    loops
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
async fn lane<F, Fut>(
    mut inbox: mpsc::UnboundedReceiver<Accepted>,
    handler: F,
    shutdown: CancellationToken,
    grace: Duration,
    open: Arc<AtomicUsize>,
) where
    F: Fn(Request<RequestBody>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    // Each connection holds a clone; the receiver learns when the last one is gone.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        let (stream, peer) = tokio::select! {
            conn = inbox.recv() => match conn {
                Some(c) => c,
                None => break,
            },
            () = shutdown.cancelled() => break,
        };
        let stream = match TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                open.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(%peer, "cannot take the connection: {e}");
                continue;
            }
        };
        let (handler, builder, shutdown, open, alive) =
            (handler.clone(), builder.clone(), shutdown.clone(), open.clone(), alive.clone());
        tokio::spawn(async move {
            let _alive = alive;
            // Our HTTP/1.1 codec first; hyper for what it hands over.
            if let Ended::Handoff(stream, read) = h1::serve(stream, peer, &handler, &shutdown).await {
                by_hyper(&builder, Prefixed { read, stream }, handler, peer, &shutdown).await;
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(alive);
    tokio::select! {
        _ = all_closed.recv() => tracing::debug!("all connections drained"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}

/// The rest of a connection, served by hyper (HTTP/1.1 or h2c); on shutdown it finishes what is
/// in flight and closes.
async fn by_hyper<F, Fut>(
    builder: &auto::Builder<TokioExecutor>,
    io: Prefixed,
    handler: F,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) where
    F: Fn(Request<RequestBody>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req.map(RequestBody::hyper), peer).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
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
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
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
