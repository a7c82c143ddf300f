//! The workloads the targets are judged on, run again in rounds that alternate the systems.
//!
//! On a small shared machine one run of a workload moves by more than the differences the
//! targets ask about (8,567 to 11,222 puts/s for one build in one `scripts/bench` run), and a
//! system measured only before or only after the other would carry the machine's drift alone.
//! So `scripts/bench` runs each target workload once in its place in the curve, then again in
//! rounds with both clusters up, the systems taking turns and swapping which goes first each
//! round. A round's run has the workload's label with `-roundN` after it. The targets compare
//! the medians of a workload's runs, and BENCHMARKS.md lists every one of them.

use std::fmt::Write as _;

use super::backends::BackendKind;
use super::results::{LoadResult, Results};
use super::stats::{median, ms};

/// The workloads the throughput and latency targets are judged on.
pub const TARGET_LABELS: [&str; 4] = ["put-c1", "put-c64", "get-c64", "mix-c64"];

/// What follows a workload's label in a round's run of it: `put-c64-round2`.
const ROUND_MARK: &str = "-round";

/// The label of round `n`'s run of `label`.
pub fn round_label(label: &str, n: u32) -> String {
    format!("{label}{ROUND_MARK}{n}")
}

/// The workload a round's run repeats and the round's number (`None`: not a round's run).
pub fn round_of(label: &str) -> Option<(&str, u32)> {
    let (workload, n) = label.rsplit_once(ROUND_MARK)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((workload, n.parse().ok()?))
}

/// Every run of `label` on `backend`: the one in the curve first, then its rounds in order.
pub fn runs<'a>(r: &'a Results, backend: BackendKind, label: &str) -> Vec<&'a LoadResult> {
    let mut rounds: Vec<(u32, &LoadResult)> = r
        .load
        .iter()
        .filter(|x| x.backend == backend)
        .filter_map(|x| match round_of(&x.label) {
            Some((workload, n)) if workload == label => Some((n, x)),
            _ => None,
        })
        .collect();
    rounds.sort_by_key(|(n, _)| *n);
    r.run(backend, label)
        .into_iter()
        .chain(rounds.into_iter().map(|(_, x)| x))
        .collect()
}

/// A figure over every run of a workload: its median and its range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        Some(Spread {
            median: median(values)?,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            runs: values.len(),
        })
    }
}

/// Throughput (ops/s) of `label` on `backend` over all its runs.
pub fn throughput(r: &Results, backend: BackendKind, label: &str) -> Option<Spread> {
    let v: Vec<f64> = runs(r, backend, label)
        .iter()
        .map(|x| x.summary.throughput_per_s)
        .collect();
    Spread::of(&v)
}

/// p50 latency (µs) of `label` on `backend` over all its runs.
pub fn p50_us(r: &Results, backend: BackendKind, label: &str) -> Option<Spread> {
    let v: Vec<f64> = runs(r, backend, label)
        .iter()
        .map(|x| x.summary.p50_us as f64)
        .collect();
    Spread::of(&v)
}

/// BENCHMARKS.md's table of every run of the target workloads (empty when no round was run).
pub fn section(r: &Results) -> String {
    if !r.load.iter().any(|x| round_of(&x.label).is_some()) {
        return String::new();
    }
    let mut md = String::from(
        "### Every run of the target workloads\n\nEach workload ran once in the curve, then again in rounds with both clusters up, the systems taking turns and swapping which went first each round. The targets compare the medians.\n\n| workload | system | runs | ops/s of each run | median ops/s | p50 ms of each run | median p50 ms |\n|---|---|---|---|---|---|---|\n",
    );
    for label in TARGET_LABELS {
        for b in [BackendKind::Omnikv, BackendKind::Etcd] {
            let all = runs(r, b, label);
            let (Some(t), Some(p)) = (throughput(r, b, label), p50_us(r, b, label)) else {
                continue;
            };
            let rates: Vec<String> = all
                .iter()
                .map(|x| format!("{:.0}", x.summary.throughput_per_s))
                .collect();
            let p50s: Vec<String> = all.iter().map(|x| ms(x.summary.p50_us)).collect();
            let _ = writeln!(
                md,
                "| `{label}` | {} | {} | {} | {:.0} | {} | {} |",
                b.name(),
                t.runs,
                rates.join(", "),
                t.median,
                p50s.join(", "),
                ms(p.median.round() as u64)
            );
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(backend: BackendKind, label: &str, tput: f64, p50_us: u64) -> LoadResult {
        LoadResult::sample(backend, label, tput, p50_us)
    }

    #[test]
    fn a_rounds_label_names_the_workload_it_repeats() {
        assert_eq!(round_label("put-c64", 3), "put-c64-round3");
        assert_eq!(round_of("put-c64-round3"), Some(("put-c64", 3)));
        assert_eq!(round_of("put-c64-round11"), Some(("put-c64", 11)));
        assert_eq!(round_of("put-c64"), None);
        assert_eq!(round_of("put-c64-round"), None);
        assert_eq!(round_of("put-c64-round+1"), None);
        assert_eq!(round_of("put-c64-roundx"), None);
    }

    #[test]
    fn a_workloads_runs_are_its_curve_run_and_rounds_in_order_and_no_other() {
        let o = BackendKind::Omnikv;
        let r = Results {
            load: vec![
                load(o, "put-c64-round2", 9_000.0, 700),
                load(o, "put-c64", 8_000.0, 900),
                load(BackendKind::Etcd, "put-c64-round1", 1.0, 1),
                load(o, "put-c64-round1", 12_000.0, 500),
                load(o, "put-c640-round1", 1.0, 1),
                load(o, "put-c1-round1", 1.0, 1),
            ],
            ..Results::default()
        };
        let rates: Vec<f64> = runs(&r, o, "put-c64")
            .iter()
            .map(|x| x.summary.throughput_per_s)
            .collect();
        assert_eq!(rates, vec![8_000.0, 12_000.0, 9_000.0]);
        let t = throughput(&r, o, "put-c64").unwrap();
        assert_eq!(
            (t.median, t.min, t.max, t.runs),
            (9_000.0, 8_000.0, 12_000.0, 3)
        );
        assert_eq!(p50_us(&r, o, "put-c64").unwrap().median, 700.0);
        assert!(throughput(&r, o, "mix-c64").is_none());
        let md = section(&r);
        assert!(
            md.contains(
                "| `put-c64` | OmniKV | 3 | 8000, 12000, 9000 | 9000 | 0.90, 0.50, 0.70 | 0.70 |"
            ),
            "{md}"
        );
    }

    #[test]
    fn no_table_without_rounds() {
        let r = Results {
            load: vec![load(BackendKind::Omnikv, "put-c64", 8_000.0, 900)],
            ..Results::default()
        };
        assert_eq!(section(&r), "");
    }
}
