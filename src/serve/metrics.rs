//! `/metrics` in the Prometheus text format: requests by server, method and outcome, their
//! latency as a histogram, restarts of stdio servers, listing-cache hits and misses, and the
//! gateway's limits with what they turned away (sessions evicted and refused, notifications
//! dropped, stderr lines cut). A few counters under one lock: the hot path records one entry per
//! request.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use rustc_hash::FxBuildHasher;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
pub struct Metrics {
    /// By server, then method: server keys are allocated once, on first sight, not per request.
    /// Configured names and a fixed set of method labels: the Fx hash is safe here (see
    /// `mcp::session`'s table).
    by: Mutex<HashMap<String, HashMap<&'static str, Entry, FxBuildHasher>, FxBuildHasher>>,
}

#[derive(Clone)]
struct Entry {
    ok: u64,
    error: u64,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
}

impl Default for Entry {
    fn default() -> Self {
        Entry { ok: 0, error: 0, buckets: [0; BUCKETS.len()], sum: 0.0 }
    }
}

/// The methods counted under their own name. A client may send any method name (the server
/// answers "method not found"): counted each under its own label, they would grow the table
/// and the scrape without bound, so the rest are `other`.
const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
];

fn method_label(method: &str) -> &'static str {
    METHODS.iter().find(|m| **m == method).copied().unwrap_or("other")
}

impl Metrics {
    pub fn record(&self, server: &str, method: &str, outcome: &'static str, took: Duration) {
        let mut by = self.by.lock().unwrap_or_else(|p| p.into_inner());
        let methods = match by.get_mut(server) {
            Some(m) => m,
            None => by.entry(server.to_owned()).or_default(),
        };
        let e = methods.entry(method_label(method)).or_default();
        if outcome == "ok" {
            e.ok += 1;
        } else {
            e.error += 1;
        }
        let secs = took.as_secs_f64();
        // Buckets are cumulative; the first bound that holds and all above it count the request.
        if let Some(first) = BUCKETS.iter().position(|b| secs <= *b) {
            for c in &mut e.buckets[first..] {
                *c += 1;
            }
        }
        e.sum += secs;
    }

    /// (server, method, entry), sorted, for rendering.
    fn rows(&self) -> Vec<(String, &'static str, Entry)> {
        let by = self.by.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<_> =
            by.iter().flat_map(|(s, m)| m.iter().map(move |(k, e)| (s.clone(), *k, e.clone()))).collect();
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        rows
    }

    pub fn render(&self, gateway: &super::Gateway) -> String {
        let router = &gateway.router;
        let mut out = String::new();
        // The text format's escapes: a server's name is any name a client accepts.
        let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let rows = self.rows();
        out.push_str("# HELP mcpgate_requests_total Requests answered, by server, method and outcome.\n# TYPE mcpgate_requests_total counter\n");
        for (server, method, e) in &rows {
            let (s, m) = (label(server), label(method));
            for (outcome, n) in [("ok", e.ok), ("error", e.error)] {
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "mcpgate_requests_total{{server=\"{s}\",method=\"{m}\",outcome=\"{outcome}\"}} {n}"
                    );
                }
            }
        }
        out.push_str("# HELP mcpgate_request_duration_seconds Time to the response, by server and method.\n# TYPE mcpgate_request_duration_seconds histogram\n");
        for (server, method, e) in &rows {
            let (s, m) = (label(server), label(method));
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "mcpgate_request_duration_seconds_bucket{{server=\"{s}\",method=\"{m}\",le=\"{b}\"}} {}",
                    e.buckets[i]
                );
            }
            let total = e.ok + e.error;
            let _ = writeln!(
                out,
                "mcpgate_request_duration_seconds_bucket{{server=\"{s}\",method=\"{m}\",le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(out, "mcpgate_request_duration_seconds_sum{{server=\"{s}\",method=\"{m}\"}} {}", e.sum);
            let _ = writeln!(out, "mcpgate_request_duration_seconds_count{{server=\"{s}\",method=\"{m}\"}} {total}");
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
        limits(&mut out, gateway);
        out
    }
}

/// The limits, how full they are, and what they turned away.
fn limits(out: &mut String, gateway: &super::Gateway) {
    use std::sync::atomic::Ordering::Relaxed;
    let sessions = &gateway.sessions;
    let l = sessions.limits();
    let rows: [(&str, &str, &str, String); 18] = [
        ("mcpgate_sessions_open", "gauge", "Client sessions open.", sessions.len().to_string()),
        (
            "mcpgate_modern_sessions_open",
            "gauge",
            "Sessions held at the servers for 2026-07-28 callers (per view and user, and per set of roots given).",
            gateway.sessions_modern.len().to_string(),
        ),
        ("mcpgate_sessions_max", "gauge", "maxSessions: client sessions open at most.", l.total.to_string()),
        (
            "mcpgate_sessions_per_client_max",
            "gauge",
            "maxSessionsPerClient: sessions of one client address at most.",
            l.per_client.to_string(),
        ),
        (
            "mcpgate_sessions_evicted_total",
            "counter",
            "Idle sessions ended to make room for new ones.",
            sessions.evicted.load(Relaxed).to_string(),
        ),
        (
            "mcpgate_sessions_refused_total",
            "counter",
            "New sessions refused (503): over a limit with none idle.",
            sessions.refused.load(Relaxed).to_string(),
        ),
        (
            "mcpgate_notifications_dropped_total",
            "counter",
            "Notifications dropped from a full queue (logs and progress first).",
            super::queue::DROPPED.load(Relaxed).to_string(),
        ),
        (
            "mcpgate_notifications_superseded_total",
            "counter",
            "Notifications replaced in a queue by a newer one saying the same.",
            super::queue::SUPERSEDED.load(Relaxed).to_string(),
        ),
        (
            "mcpgate_server_requests_refused_total",
            "counter",
            "Server→client requests refused: a queue already held as many as it may.",
            super::queue::REFUSED.load(Relaxed).to_string(),
        ),
        (
            "mcpgate_notifications_queued",
            "gauge",
            "Droppable notifications waiting for clients, in all queues.",
            super::queue::CLIENTS.queued().to_string(),
        ),
        (
            "mcpgate_notifications_queued_max",
            "gauge",
            "Droppable notifications waiting for clients at most (then each queue keeps its floor).",
            super::queue::CLIENTS.limit().to_string(),
        ),
        (
            "mcpgate_session_queue_max",
            "gauge",
            "Messages waiting for one client's GET stream at most.",
            super::queue::SESSION.to_string(),
        ),
        (
            "mcpgate_call_queue_max",
            "gauge",
            "Messages of one call waiting for its client at most.",
            super::queue::CALL.to_string(),
        ),
        (
            "mcpgate_child_stdin_max_bytes",
            "gauge",
            "Bytes waiting for a stdio server to read its stdin at most (then calls fail at once).",
            crate::transport::stdio_child::STDIN_AHEAD.to_string(),
        ),
        (
            "mcpgate_child_stdin_refused_total",
            "counter",
            "Messages not sent to a stdio server that was not reading its stdin.",
            crate::transport::stdio_child::STDIN_REFUSED.load(Relaxed).to_string(),
        ),
        (
            "mcpgate_child_stderr_line_max_bytes",
            "gauge",
            "Bytes of a stdio server's stderr line logged at most.",
            crate::transport::stdio_child::STDERR_LINE.to_string(),
        ),
        (
            "mcpgate_child_stderr_lines_cut_total",
            "counter",
            "Stdio servers' stderr lines cut at the limit.",
            crate::transport::stdio_child::STDERR_TRUNCATED.load(Relaxed).to_string(),
        ),
        (
            "mcpgate_listing_cache_entries",
            "gauge",
            "Listings cached (one per server and kind at most).",
            gateway.router.cached_listings().to_string(),
        ),
    ];
    for (name, kind, help, value) in rows {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_bounded() {
        let m = Metrics::default();
        for i in 0..1000 {
            m.record("s", &format!("made/up/{i}"), "error", Duration::from_millis(1));
        }
        m.record("s", "tools/call", "ok", Duration::from_millis(1));
        let rows = m.rows();
        let labels: Vec<&str> = rows.iter().map(|r| r.1).collect();
        assert_eq!(labels, ["other", "tools/call"]);
        assert_eq!(rows[0].2.error, 1000);
    }
}
