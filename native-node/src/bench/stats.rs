//! Latency histograms and the summary of a run (throughput, p50/p99/p999).
//!
//! Each client records into its own [`Recorder`]; recorders are merged at the end, so the hot
//! path takes no lock.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies above this are clamped (recorded as the maximum).
const LATENCY_MAX_US: u64 = 60_000_000;

pub struct Recorder {
    latency_us: Histogram<u64>,
    pub errors: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                .expect("valid histogram bounds"),
            errors: 0,
        }
    }
}

impl Recorder {
    pub fn ok(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_MAX_US);
        self.latency_us.record(us).expect("clamped into bounds");
    }

    pub fn error(&mut self) {
        self.errors += 1;
    }

    pub fn ops(&self) -> u64 {
        self.latency_us.len()
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.latency_us.add(&other.latency_us).expect("same bounds");
        self.errors += other.errors;
    }

    pub fn summary(&self, elapsed: Duration) -> Summary {
        let h = &self.latency_us;
        let secs = elapsed.as_secs_f64().max(1e-9);
        let q = |q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        Summary {
            ops: h.len(),
            errors: self.errors,
            elapsed_ms: elapsed.as_millis() as u64,
            throughput_per_s: h.len() as f64 / secs,
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            p50_us: q(0.5),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if h.is_empty() { 0 } else { h.max() },
        }
    }
}

/// What a run measured: successful operations only in the latency figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub ops: u64,
    pub errors: u64,
    pub elapsed_ms: u64,
    pub throughput_per_s: f64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// The median of a list of durations in milliseconds (the mean of the two middle values for
/// an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Microseconds as milliseconds with two decimals, as the reports print them.
pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_throughput() {
        let mut r = Recorder::default();
        for us in 1..=1000u64 {
            r.ok(Duration::from_micros(us));
        }
        r.error();
        let s = r.summary(Duration::from_secs(2));
        assert_eq!(s.ops, 1000);
        assert_eq!(s.errors, 1);
        assert_eq!(s.throughput_per_s, 500.0);
        assert!((499..=501).contains(&s.p50_us), "{}", s.p50_us);
        assert!((989..=991).contains(&s.p99_us), "{}", s.p99_us);
        assert!((998..=1000).contains(&s.p999_us), "{}", s.p999_us);
        assert_eq!(s.max_us, 1000);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        a.ok(Duration::from_millis(1));
        b.ok(Duration::from_millis(3));
        b.error();
        a.merge(&b);
        let s = a.summary(Duration::from_secs(1));
        assert_eq!((s.ops, s.errors), (2, 1));
        assert!(s.max_us >= 2_990);
    }

    #[test]
    fn empty_and_huge() {
        let s = Recorder::default().summary(Duration::ZERO);
        assert_eq!((s.ops, s.p50_us), (0, 0));
        let mut r = Recorder::default();
        r.ok(Duration::from_secs(3600));
        assert!(r.summary(Duration::from_secs(1)).max_us <= LATENCY_MAX_US * 2);
    }

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
