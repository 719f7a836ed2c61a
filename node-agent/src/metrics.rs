//! Prometheus metrics of the agent: a counter and a latency histogram per gRPC operation,
//! labelled by outcome (`ok` or the error's stable label), in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket bounds in seconds: snapshot operations take milliseconds, imports seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Operation counters and latencies; cheap to record from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    outcomes: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl Metrics {
    /// Records one finished operation.
    pub fn record(&self, op: &'static str, outcome: &'static str, took: Duration) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        *outcomes.entry((op, outcome)).or_default() += 1;
        drop(outcomes);
        let secs = took.as_secs_f64();
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = latency.entry(op).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP forkr_agent_operations_total Storage operations served, by outcome.\n",
        );
        out.push_str("# TYPE forkr_agent_operations_total counter\n");
        for ((op, outcome), n) in self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "forkr_agent_operations_total{{op=\"{op}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP forkr_agent_operation_seconds Time to serve a storage operation.\n");
        out.push_str("# TYPE forkr_agent_operation_seconds histogram\n");
        for (op, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "forkr_agent_operation_seconds_bucket{{op=\"{op}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "forkr_agent_operation_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "forkr_agent_operation_seconds_sum{{op=\"{op}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "forkr_agent_operation_seconds_count{{op=\"{op}\"}} {}",
                h.count
            );
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    metrics: std::sync::Arc<Metrics>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    m.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.record("create_root", "ok", Duration::from_millis(2));
        m.record("create_root", "not_found", Duration::from_millis(40));
        let text = m.render();
        assert!(
            text.contains("forkr_agent_operations_total{op=\"create_root\",outcome=\"ok\"} 1\n")
        );
        assert!(text.contains(
            "forkr_agent_operations_total{op=\"create_root\",outcome=\"not_found\"} 1\n"
        ));
        assert!(text.contains(
            "forkr_agent_operation_seconds_bucket{op=\"create_root\",le=\"0.0025\"} 1\n"
        ));
        assert!(
            text.contains(
                "forkr_agent_operation_seconds_bucket{op=\"create_root\",le=\"0.05\"} 2\n"
            )
        );
        assert!(text.contains("forkr_agent_operation_seconds_count{op=\"create_root\"} 2\n"));
    }
}
