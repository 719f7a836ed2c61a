//! Prometheus metrics of the controllers: reconciles, their durations, errors by label, and API
//! writes by kind (so "nothing to do means zero writes" can be watched in production).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram buckets of reconcile durations, seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    reconciles: BTreeMap<&'static str, u64>,
    errors: BTreeMap<(&'static str, &'static str), u64>,
    writes: BTreeMap<(&'static str, &'static str), u64>,
    durations: BTreeMap<&'static str, Histogram>,
}

/// Shared by every controller; rendered by `/metrics`.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One reconcile of `controller` that took `took`, failed with `error` when set.
    pub fn reconciled(
        &self,
        controller: &'static str,
        took: Duration,
        error: Option<&'static str>,
    ) {
        let mut m = self.lock();
        *m.reconciles.entry(controller).or_default() += 1;
        if let Some(label) = error {
            *m.errors.entry((controller, label)).or_default() += 1;
        }
        let h = m.durations.entry(controller).or_default();
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// One API write (apply, patch, create, delete) of a `kind` object by `controller`.
    pub fn wrote(&self, controller: &'static str, kind: &'static str) {
        *self.lock().writes.entry((controller, kind)).or_default() += 1;
    }

    /// All writes so far.
    pub fn total_writes(&self) -> u64 {
        self.lock().writes.values().sum()
    }

    /// All reconciles so far.
    pub fn total_reconciles(&self) -> u64 {
        self.lock().reconciles.values().sum()
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let m = self.lock();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP forkr_operator_reconciles_total Reconciles run."
        );
        let _ = writeln!(out, "# TYPE forkr_operator_reconciles_total counter");
        for (c, n) in &m.reconciles {
            let _ = writeln!(
                out,
                "forkr_operator_reconciles_total{{controller=\"{c}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP forkr_operator_reconcile_errors_total Failed reconciles by error label."
        );
        let _ = writeln!(out, "# TYPE forkr_operator_reconcile_errors_total counter");
        for ((c, l), n) in &m.errors {
            let _ = writeln!(
                out,
                "forkr_operator_reconcile_errors_total{{controller=\"{c}\",error=\"{l}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP forkr_operator_api_writes_total Writes to the Kubernetes API."
        );
        let _ = writeln!(out, "# TYPE forkr_operator_api_writes_total counter");
        for ((c, k), n) in &m.writes {
            let _ = writeln!(
                out,
                "forkr_operator_api_writes_total{{controller=\"{c}\",kind=\"{k}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP forkr_operator_reconcile_duration_seconds Reconcile durations."
        );
        let _ = writeln!(
            out,
            "# TYPE forkr_operator_reconcile_duration_seconds histogram"
        );
        for (c, h) in &m.durations {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "forkr_operator_reconcile_duration_seconds_bucket{{controller=\"{c}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "forkr_operator_reconcile_duration_seconds_bucket{{controller=\"{c}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "forkr_operator_reconcile_duration_seconds_sum{{controller=\"{c}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "forkr_operator_reconcile_duration_seconds_count{{controller=\"{c}\"}} {}",
                h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_errors_and_histograms() {
        let m = Metrics::default();
        m.reconciled("box", Duration::from_millis(20), None);
        m.reconciled("box", Duration::from_secs(2), Some("agent"));
        m.wrote("box", "Deployment");
        let text = m.render();
        assert!(text.contains("forkr_operator_reconciles_total{controller=\"box\"} 2"));
        assert!(text.contains(
            "forkr_operator_reconcile_errors_total{controller=\"box\",error=\"agent\"} 1"
        ));
        assert!(text.contains("le=\"0.025\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert_eq!(m.total_writes(), 1);
    }
}
