//! Counters and histograms for `GET /metrics`, rendered in the Prometheus text
//! exposition format (version 0.0.4: `# HELP`, `# TYPE`, then samples; histograms
//! as cumulative `_bucket{le="..."}` series plus `_sum` and `_count`).
//!
//! Routes are a fixed set of labels (unknown paths count as `other`), so a client
//! cannot make the label set grow.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// The `route` label values; anything else is `other`.
pub const ROUTES: [&str; 7] = ["/", "/v1/predict", "/v1/generate", "/v1/model", "/healthz", "/metrics", "other"];

/// Upper bounds (seconds) of the request-latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Upper bounds (rows) of the batch-size histogram's buckets.
pub const BATCH_BUCKETS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// A histogram with fixed upper bounds: per-bucket counts (not cumulative; the
/// last slot counts values above every bound), the sum and the count.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram with these bucket upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    /// Records one observation `v`: it falls in the first bucket with `v <= bound`.
    pub fn observe(&mut self, v: f64) {
        let i = self.bounds.iter().position(|&b| v <= b).unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug)]
struct Inner {
    /// (route, status) → responses.
    requests: BTreeMap<(&'static str, u16), u64>,
    /// route → latency of its responses.
    latency: BTreeMap<&'static str, Histogram>,
    /// Rows per batch.
    batch_rows: Histogram,
    /// Rows predicted.
    rows: u64,
    /// Requests per batch (how many requests each batch gathered).
    batch_requests: Histogram,
    /// Seconds the inference thread spent per batch (scaling, forward passes, split).
    batch_seconds: Histogram,
}

/// The server's metrics, shared by the handlers and the inference thread.
#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
    parameters: usize,
    max_batch: usize,
    batch_wait: Duration,
}

/// The `route` label of a request path.
pub fn route_label(path: &str) -> &'static str {
    ROUTES.iter().copied().find(|r| *r == path && *r != "other").unwrap_or("other")
}

impl Metrics {
    /// Empty metrics for a model with `parameters` parameters served with these
    /// batching settings (exported as gauges).
    pub fn new(parameters: usize, max_batch: usize, batch_wait: Duration) -> Self {
        Metrics {
            inner: Mutex::new(Inner {
                requests: BTreeMap::new(),
                latency: BTreeMap::new(),
                batch_rows: Histogram::new(&BATCH_BUCKETS),
                rows: 0,
                batch_requests: Histogram::new(&BATCH_BUCKETS),
                batch_seconds: Histogram::new(&LATENCY_BUCKETS),
            }),
            parameters,
            max_batch,
            batch_wait,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere mid-update of plain counters.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one answered request.
    pub fn record_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        let mut m = self.lock();
        *m.requests.entry((route, status)).or_insert(0) += 1;
        m.latency.entry(route).or_insert_with(|| Histogram::new(&LATENCY_BUCKETS)).observe(elapsed.as_secs_f64());
    }

    /// Records one batch of `rows` rows gathered from `requests` requests, which
    /// kept the inference thread busy for `elapsed`.
    pub fn record_batch(&self, rows: usize, requests: usize, elapsed: Duration) {
        let mut m = self.lock();
        m.batch_rows.observe(rows as f64);
        m.batch_requests.observe(requests as f64);
        m.batch_seconds.observe(elapsed.as_secs_f64());
        m.rows += rows as u64;
    }

    /// Responses so far with this route and status.
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        self.lock().requests.iter().filter(|((r, s), _)| *r == route && *s == status).map(|(_, n)| n).sum()
    }

    /// Responses so far, all routes and statuses.
    pub fn total_requests(&self) -> u64 {
        self.lock().requests.values().sum()
    }

    /// Renders everything in the Prometheus text format. `queued` is the number of
    /// requests waiting for the inference thread now.
    pub fn render(&self, queued: usize) -> String {
        let m = self.lock();
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP nn_serve_requests_total HTTP responses sent, by route and status code.\n");
        out.push_str("# TYPE nn_serve_requests_total counter\n");
        for ((route, status), n) in &m.requests {
            let _ = writeln!(out, "nn_serve_requests_total{{route=\"{route}\",code=\"{status}\"}} {n}");
        }
        out.push_str(
            "# HELP nn_serve_request_errors_total HTTP responses with a 4xx or 5xx status, by route and status code.\n",
        );
        out.push_str("# TYPE nn_serve_request_errors_total counter\n");
        for ((route, status), n) in m.requests.iter().filter(|((_, s), _)| *s >= 400) {
            let _ = writeln!(out, "nn_serve_request_errors_total{{route=\"{route}\",code=\"{status}\"}} {n}");
        }
        out.push_str(
            "# HELP nn_serve_request_duration_seconds Time from receiving a request to its response, by route.\n",
        );
        out.push_str("# TYPE nn_serve_request_duration_seconds histogram\n");
        for (route, h) in &m.latency {
            h.render(&mut out, "nn_serve_request_duration_seconds", &format!("route=\"{route}\""));
        }
        out.push_str("# HELP nn_serve_batch_rows Rows per batch (run at most max_batch rows per forward pass).\n");
        out.push_str("# TYPE nn_serve_batch_rows histogram\n");
        m.batch_rows.render(&mut out, "nn_serve_batch_rows", "");
        out.push_str("# HELP nn_serve_batch_requests Requests gathered into one batch.\n");
        out.push_str("# TYPE nn_serve_batch_requests histogram\n");
        m.batch_requests.render(&mut out, "nn_serve_batch_requests", "");
        out.push_str("# HELP nn_serve_batch_duration_seconds Time the inference thread spent on one batch.\n");
        out.push_str("# TYPE nn_serve_batch_duration_seconds histogram\n");
        m.batch_seconds.render(&mut out, "nn_serve_batch_duration_seconds", "");
        out.push_str("# HELP nn_serve_rows_predicted_total Rows the model has answered.\n");
        out.push_str("# TYPE nn_serve_rows_predicted_total counter\n");
        let _ = writeln!(out, "nn_serve_rows_predicted_total {}", m.rows);
        out.push_str("# HELP nn_serve_queue_depth Requests waiting for the inference thread.\n");
        out.push_str("# TYPE nn_serve_queue_depth gauge\n");
        let _ = writeln!(out, "nn_serve_queue_depth {queued}");
        out.push_str("# HELP nn_serve_model_parameters Parameters of the served model.\n");
        out.push_str("# TYPE nn_serve_model_parameters gauge\n");
        let _ = writeln!(out, "nn_serve_model_parameters {}", self.parameters);
        out.push_str("# HELP nn_serve_max_batch_rows The --max-batch setting.\n");
        out.push_str("# TYPE nn_serve_max_batch_rows gauge\n");
        let _ = writeln!(out, "nn_serve_max_batch_rows {}", self.max_batch);
        out.push_str("# HELP nn_serve_batch_wait_seconds The --batch-wait-ms setting, in seconds.\n");
        out.push_str("# TYPE nn_serve_batch_wait_seconds gauge\n");
        let _ = writeln!(out, "nn_serve_batch_wait_seconds {}", self.batch_wait.as_secs_f64());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_inclusive_bounds() {
        let mut h = Histogram::new(&[1.0, 2.0, 4.0]);
        for v in [0.5, 1.0, 1.5, 4.0, 9.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        let expected = "x_bucket{a=\"b\",le=\"1\"} 2\nx_bucket{a=\"b\",le=\"2\"} 3\nx_bucket{a=\"b\",le=\"4\"} 4\n\
                        x_bucket{a=\"b\",le=\"+Inf\"} 5\nx_sum{a=\"b\"} 16\nx_count{a=\"b\"} 5\n";
        assert_eq!(out, expected);
        assert_eq!((h.count(), h.sum()), (5, 16.0));
    }

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(route_label("/v1/predict"), "/v1/predict");
        assert_eq!(route_label("/v1/predict/"), "other");
        assert_eq!(route_label("/other"), "other");
        assert_eq!(route_label("/x/../metrics"), "other");
    }

    #[test]
    fn render_counts_requests_errors_and_batches() {
        let m = Metrics::new(1234, 64, Duration::from_millis(2));
        m.record_request("/v1/predict", 200, Duration::from_millis(3));
        m.record_request("/v1/predict", 200, Duration::from_micros(50));
        m.record_request("/v1/predict", 422, Duration::from_millis(1));
        m.record_batch(3, 2, Duration::from_millis(4));
        let text = m.render(5);
        for line in [
            "nn_serve_requests_total{route=\"/v1/predict\",code=\"200\"} 2",
            "nn_serve_requests_total{route=\"/v1/predict\",code=\"422\"} 1",
            "nn_serve_request_errors_total{route=\"/v1/predict\",code=\"422\"} 1",
            // 50 µs, 1 ms and 3 ms: one at or below 0.0001 s, two at or below 0.001 s, three at or below 0.005 s.
            "nn_serve_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.0001\"} 1",
            "nn_serve_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.001\"} 2",
            "nn_serve_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.0025\"} 2",
            "nn_serve_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.005\"} 3",
            "nn_serve_request_duration_seconds_count{route=\"/v1/predict\"} 3",
            "nn_serve_batch_rows_bucket{le=\"2\"} 0",
            "nn_serve_batch_rows_bucket{le=\"4\"} 1",
            "nn_serve_batch_requests_bucket{le=\"2\"} 1",
            "nn_serve_batch_duration_seconds_bucket{le=\"0.0025\"} 0",
            "nn_serve_batch_duration_seconds_bucket{le=\"0.005\"} 1",
            "nn_serve_batch_duration_seconds_sum 0.004",
            "nn_serve_rows_predicted_total 3",
            "nn_serve_queue_depth 5",
            "nn_serve_model_parameters 1234",
            "nn_serve_max_batch_rows 64",
            "nn_serve_batch_wait_seconds 0.002",
        ] {
            assert!(text.lines().any(|l| l == line), "`{line}` missing from\n{text}");
        }
        assert!(
            !text.contains("nn_serve_request_errors_total{route=\"/v1/predict\",code=\"200\"}"),
            "errors list only 4xx/5xx"
        );
        assert_eq!(m.requests("/v1/predict", 200), 2);
        assert_eq!(m.total_requests(), 3);
    }
}
