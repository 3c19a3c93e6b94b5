//! `/metrics` in the Prometheus text format: requests by server, method and outcome, their
//! latency as a histogram, restarts of stdio servers, listing-cache hits and misses. A few
//! counters under one lock: the hot path records one entry per request.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::router::Router;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
}

#[derive(Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    total: u64,
}

impl Metrics {
    pub fn record(&self, server: &str, method: &str, outcome: &'static str, took: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((server.to_owned(), method.to_owned(), outcome))
            .or_default() += 1;
        let mut lat = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = lat.entry((server.to_owned(), method.to_owned())).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.total += 1;
    }

    pub fn render(&self, router: &Router) -> String {
        let mut out = String::new();
        let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str("# HELP mcpgate_requests_total Requests answered, by server, method and outcome.\n# TYPE mcpgate_requests_total counter\n");
        for ((server, method, outcome), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "mcpgate_requests_total{{server=\"{}\",method=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(server),
                label(method)
            );
        }
        out.push_str("# HELP mcpgate_request_duration_seconds Time to the response, by server and method.\n# TYPE mcpgate_request_duration_seconds histogram\n");
        for ((server, method), h) in self.latency.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let (s, m) = (label(server), label(method));
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "mcpgate_request_duration_seconds_bucket{{server=\"{s}\",method=\"{m}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "mcpgate_request_duration_seconds_bucket{{server=\"{s}\",method=\"{m}\",le=\"+Inf\"}} {}",
                h.total
            );
            let _ = writeln!(out, "mcpgate_request_duration_seconds_sum{{server=\"{s}\",method=\"{m}\"}} {}", h.sum);
            let _ =
                writeln!(out, "mcpgate_request_duration_seconds_count{{server=\"{s}\",method=\"{m}\"}} {}", h.total);
        }
        out.push_str("# HELP mcpgate_upstream_restarts_total Restarts of stdio servers.\n# TYPE mcpgate_upstream_restarts_total counter\n");
        for (name, n) in router.restarts() {
            let _ = writeln!(out, "mcpgate_upstream_restarts_total{{server=\"{}\"}} {n}", label(&name));
        }
        out.push_str(
            "# HELP mcpgate_upstream_up Whether a server is ready (1) or not (0).\n# TYPE mcpgate_upstream_up gauge\n",
        );
        for b in router.visible(&super::session::View::All) {
            let up = u8::from(b.link.health() == super::backend::Health::Ready);
            let _ = writeln!(out, "mcpgate_upstream_up{{server=\"{}\"}} {up}", label(&b.cfg.name));
        }
        let hits = router.cache_hits.load(std::sync::atomic::Ordering::Relaxed);
        let misses = router.cache_misses.load(std::sync::atomic::Ordering::Relaxed);
        let _ = write!(
            out,
            "# HELP mcpgate_listing_cache_hits_total Listings answered from the cache.\n# TYPE mcpgate_listing_cache_hits_total counter\nmcpgate_listing_cache_hits_total {hits}\n\
             # HELP mcpgate_listing_cache_misses_total Listings fetched from a server.\n# TYPE mcpgate_listing_cache_misses_total counter\nmcpgate_listing_cache_misses_total {misses}\n"
        );
        out
    }
}
