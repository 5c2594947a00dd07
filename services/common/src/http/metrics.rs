//! Prometheus metrics: request counts and latencies per service and route, and the
//! process's resident memory, served as text on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    counters: Mutex<BTreeMap<String, u64>>,
}

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    pub fn record_request(&self, service: &str, method: &str, route: &str, status: u16, elapsed: Duration) {
        *self.requests.lock().unwrap().entry((service.into(), method.into(), route.into(), status)).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let mut lat = self.latency.lock().unwrap();
        let h = lat.entry((service.into(), route.into())).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i] += 1;
            }
        }
    }

    /// Adds to a plain counter, named in Prometheus style (`stratus_tokens_issued_total`).
    pub fn incr(&self, name: &str) {
        *self.counters.lock().unwrap().entry(name.to_string()).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# TYPE http_requests_total counter\n");
        for ((service, method, route, status), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "http_requests_total{{service=\"{service}\",method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for ((service, route), h) in self.latency.lock().unwrap().iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{service=\"{service}\",route=\"{route}\",le=\"{b}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{service=\"{service}\",route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ =
                writeln!(out, "http_request_duration_seconds_sum{{service=\"{service}\",route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{service=\"{service}\",route=\"{route}\"}} {}",
                h.count
            );
        }
        for (name, n) in self.counters.lock().unwrap().iter() {
            let _ = writeln!(out, "# TYPE {name} counter\n{name} {n}");
        }
        crate::supervisor::SUPERVISOR.render_metrics(&mut out);
        if let Some(rss) = resident_memory_bytes() {
            let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}");
        }
        out
    }
}

/// Resident memory of this process, from `/proc/self/statm`.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Handler for `GET /metrics`.
pub async fn metrics_handler() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], METRICS.render())
}
