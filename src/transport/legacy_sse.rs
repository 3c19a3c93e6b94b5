//! The legacy HTTP+SSE transport (protocol 2024-11-05), client side: one long-lived GET whose
//! event stream carries every server→client message, and whose first `endpoint` event names
//! the URL to POST client messages to.
//!
//! A `Link` is one such connection. It hands every message it receives to a bounded channel
//! (when it is full, the link stops reading and the upstream's sends wait, as TCP makes them);
//! who waits for what is the business of the session that owns the link.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Uri};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::transport::sse;
use crate::upstream::Upstream;

pub struct Link {
    /// Where client messages are POSTed (from the `endpoint` event).
    pub endpoint: Uri,
    alive: Arc<AtomicBool>,
    reader: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Link {
    /// Opens the event stream and waits for the `endpoint` event. Every later `message` event's
    /// data goes to `sink`; the sink is dropped when the stream ends.
    pub async fn open(upstream: &Upstream, sink: mpsc::Sender<Bytes>) -> Result<Link, Error> {
        let mut hdrs = HeaderMap::new();
        hdrs.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        let resp = upstream.send(Method::GET, &upstream.url, hdrs, Bytes::new()).await?;
        let is_sse = super::answer::is_event_stream(resp.headers());
        if !resp.status().is_success() || !is_sse {
            return Err(Error::protocol(
                &upstream.display,
                format!(
                    "GET answered {} ({}), not an HTTP+SSE event stream",
                    resp.status(),
                    content_type(resp.headers())
                ),
            ));
        }
        let mut body = resp.into_body();
        let mut parser = sse::Parser::new();
        let mut events = Vec::new();
        let wait_endpoint = async {
            loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            parser.feed(data, &mut events);
                        }
                        if let Some(i) = events.iter().position(|e| e.event.as_deref() == Some("endpoint")) {
                            let endpoint = events.remove(i).data;
                            return Ok(endpoint);
                        }
                    }
                    Some(Err(e)) => return Err(Error::unreachable(&upstream.display, crate::error::chain(&*e))),
                    None => {
                        return Err(Error::protocol(
                            &upstream.display,
                            "the event stream ended before its endpoint event",
                        ));
                    }
                }
            }
        };
        let endpoint = tokio::time::timeout(upstream.timeout, wait_endpoint)
            .await
            .map_err(|_| Error::timeout(&upstream.display, upstream.timeout))??;
        let endpoint = resolve_endpoint(&upstream.url, &endpoint).map_err(|e| Error::protocol(&upstream.display, e))?;
        // Messages that came in the same chunk as the endpoint event.
        for ev in events.drain(..) {
            if is_message(&ev) {
                let _ = sink.send(Bytes::from(ev.data)).await;
            }
        }
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let name = upstream.display.clone();
        let reader = tokio::spawn(async move {
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    parser.feed(data, &mut events);
                    for ev in events.drain(..) {
                        if is_message(&ev) && sink.send(Bytes::from(ev.data)).await.is_err() {
                            flag.store(false, Ordering::Release);
                            return;
                        }
                    }
                }
            }
            tracing::info!(upstream = %name, "the upstream event stream ended");
            flag.store(false, Ordering::Release);
        });
        Ok(Link { endpoint, alive, reader })
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// POSTs one client message to the endpoint (answered 202; the reply comes on the stream).
    pub async fn post(&self, upstream: &Upstream, body: Bytes) -> Result<(), Error> {
        let mut hdrs = HeaderMap::new();
        hdrs.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let resp = upstream.send(Method::POST, &self.endpoint, hdrs, body).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let text = String::from_utf8_lossy(&text[..text.len().min(300)]).into_owned();
            return Err(Error::protocol(&upstream.display, format!("its message endpoint answered {status}: {text}")));
        }
        Ok(())
    }
}

fn is_message(ev: &sse::Event) -> bool {
    matches!(ev.event.as_deref(), None | Some("message")) && !ev.data.trim().is_empty()
}

fn content_type(h: &HeaderMap) -> String {
    h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("no content type").to_owned()
}

/// The POST URL from the `endpoint` event, resolved against the stream's URL. It must stay on
/// the same origin: credentials go with every POST, and an upstream must not be able to send
/// them elsewhere.
pub fn resolve_endpoint(base: &Uri, endpoint: &str) -> Result<Uri, String> {
    let endpoint = endpoint.trim();
    let resolved: Uri = if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.parse().map_err(|_| format!("endpoint {endpoint:?} is not a URL"))?
    } else {
        let path = if endpoint.starts_with('/') {
            endpoint.to_owned()
        } else {
            let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
            format!("{dir}/{endpoint}")
        };
        let scheme = base.scheme_str().unwrap_or("http");
        let authority = base.authority().map_or("", |a| a.as_str());
        format!("{scheme}://{authority}{path}")
            .parse()
            .map_err(|_| format!("endpoint {endpoint:?} is not a valid path"))?
    };
    let same_origin =
        resolved.scheme() == base.scheme() && resolved.host() == base.host() && resolved.port_u16() == base.port_u16();
    if !same_origin {
        return Err(format!("endpoint {endpoint:?} is on another origin than the event stream; refused"));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let base: Uri = "http://127.0.0.1:3001/sse".parse().unwrap();
        let ok = |e: &str| resolve_endpoint(&base, e).unwrap().to_string();
        assert_eq!(ok("/message?sessionId=abc"), "http://127.0.0.1:3001/message?sessionId=abc");
        assert_eq!(ok("messages?sessionId=1"), "http://127.0.0.1:3001/messages?sessionId=1");
        assert_eq!(ok("http://127.0.0.1:3001/m"), "http://127.0.0.1:3001/m");
        assert!(resolve_endpoint(&base, "http://169.254.169.254/latest").is_err());
        assert!(resolve_endpoint(&base, "http://127.0.0.1:9999/m").is_err());
        assert!(resolve_endpoint(&base, "https://127.0.0.1:3001/m").is_err());
    }
}
