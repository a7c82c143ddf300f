//! Turning results into text: the table printed after a load run, and BENCHMARKS.md (tables,
//! target verdicts, the SVG chart) rebuilt from a results directory.
//!
//! Layout of a results directory (written by `scripts/bench`): `load/*.json` ([`LoadResult`]),
//! `failover/*.json` ([`FailoverResult`]), `rocksdb.json` and `storage.json` (arrays), and
//! `machine.md` (a description of the machine and versions, included verbatim), and
//! `failover-failures.txt` (one line per failover trial in which no write was acknowledged).

use std::fmt::Write;
use std::path::Path;

use super::backends::BackendKind;
use super::results::{FailoverResult, LoadResult, MicroResult, RocksdbResult};
use super::stats::median;
use super::svg::{bar_chart, Group};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
}

/// Everything found in a results directory.
#[derive(Clone, Default)]
pub struct Results {
    pub load: Vec<LoadResult>,
    pub failover: Vec<FailoverResult>,
    pub rocksdb: Vec<RocksdbResult>,
    pub storage: Vec<MicroResult>,
    pub machine: String,
    pub failover_failures: Vec<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let err = |reason: String| ReportError::Read {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

fn read_dir_json<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<Vec<T>, ReportError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| read_json(p)).collect()
}

impl Results {
    pub fn load_dir(dir: &Path) -> Result<Results, ReportError> {
        let optional = |name: &str| {
            let p = dir.join(name);
            p.exists().then_some(p)
        };
        Ok(Results {
            load: read_dir_json(&dir.join("load"))?,
            failover: read_dir_json(&dir.join("failover"))?,
            rocksdb: optional("rocksdb.json")
                .map(|p| read_json(&p))
                .transpose()?
                .unwrap_or_default(),
            storage: optional("storage.json")
                .map(|p| read_json(&p))
                .transpose()?
                .unwrap_or_default(),
            machine: optional("machine.md")
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default(),
            failover_failures: optional("failover-failures.txt")
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect(),
        })
    }

    fn run(&self, backend: BackendKind, label: &str) -> Option<&LoadResult> {
        self.load
            .iter()
            .rfind(|r| r.backend == backend && r.label == label)
    }

    fn failover_ms(&self, backend: BackendKind) -> Vec<f64> {
        self.failover
            .iter()
            .filter(|f| f.backend == backend)
            .map(|f| f.failover_ms)
            .collect()
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// The table printed at the end of `omnikv bench load`.
pub fn text_table(results: &[LoadResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<16} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "system", "workload", "clients", "ops/s", "p50 ms", "p99 ms", "p999 ms", "max ms", "errors"
    );
    for r in results {
        let s = &r.summary;
        let _ = writeln!(
            out,
            "{:<10} {:<16} {:>7} {:>11.0} {:>9} {:>9} {:>9} {:>9} {:>7}",
            r.backend.name(),
            r.label,
            r.clients,
            s.throughput_per_s,
            ms(s.p50_us),
            ms(s.p99_us),
            ms(s.p999_us),
            ms(s.max_us),
            s.errors
        );
    }
    out
}

fn describe(r: &LoadResult) -> String {
    let mix = match r.write_percent {
        100 => "put".to_owned(),
        0 => "linearizable get".to_owned(),
        w => format!("{w}% put / {}% get", 100 - w),
    };
    let events = if r.events_subscribers > 0 {
        format!(", {} /events subscribers", r.events_subscribers)
    } else {
        String::new()
    };
    format!(
        "{mix}, {} B values, {} keys{events}",
        r.value_bytes, r.key_space
    )
}

/// Workloads shown side by side, in this order.
pub const COMPARED_LABELS: [&str; 5] = ["put-c1", "put-c16", "put-c64", "get-c64", "mix-c64"];

struct Verdict {
    target: &'static str,
    measured: String,
    met: Option<bool>,
}

fn verdicts(r: &Results) -> Vec<Verdict> {
    let o = BackendKind::Omnikv;
    let e = BackendKind::Etcd;
    let tput = |b, l| r.run(b, l).map(|x| x.summary.throughput_per_s);
    let mut v = Vec::new();
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b.max(1e-9));
    let w64 = ratio(tput(o, "put-c64"), tput(e, "put-c64"));
    v.push(Verdict {
        target: "writes/s at 64 clients >= 2x etcd",
        measured: w64.map_or("not measured".into(), |x| format!("{x:.2}x")),
        met: w64.map(|x| x >= 2.0),
    });
    let p50 = r
        .run(o, "put-c1")
        .zip(r.run(e, "put-c1"))
        .map(|(a, b)| (a.summary.p50_us, b.summary.p50_us));
    v.push(Verdict {
        target: "single-client write p50 <= etcd's",
        measured: p50.map_or("not measured".into(), |(a, b)| {
            format!("{} ms vs {} ms", ms(a), ms(b))
        }),
        met: p50.map(|(a, b)| a <= b),
    });
    let g64 = ratio(tput(o, "get-c64"), tput(e, "get-c64"));
    v.push(Verdict {
        target: "linearizable gets/s at 64 clients >= etcd's",
        measured: g64.map_or("not measured".into(), |x| format!("{x:.2}x")),
        met: g64.map(|x| x >= 1.0),
    });
    let fo = median(&r.failover_ms(o));
    let failed = r
        .failover_failures
        .iter()
        .filter(|l| l.starts_with("omnikv"))
        .count();
    v.push(Verdict {
        target: "failover median <= 150 ms",
        measured: fo.map_or("not measured".into(), |x| {
            if failed > 0 {
                format!("{x:.0} ms; {failed} trial(s) without any acknowledged write")
            } else {
                format!("{x:.0} ms")
            }
        }),
        met: fo.map(|x| x <= 150.0 && failed == 0),
    });
    let sat = r.run(o, "put-saturated");
    v.push(Verdict {
        target: "no leader change during a 2-minute saturated run",
        measured: sat.map_or("not measured".into(), |s| match s.leader_changed {
            Some(true) => format!("leader changed ({} s run)", s.summary.elapsed_ms / 1000),
            Some(false) => format!("no change ({} s run)", s.summary.elapsed_ms / 1000),
            None => "could not tell".into(),
        }),
        met: sat.and_then(|s| s.leader_changed.map(|c| !c)),
    });
    // Run-to-run noise on a small machine is as large as the effect, so the comparison is made
    // over alternating pairs of runs (`events-off-N`, `events-on-N`), median against median.
    let paired = |suffix: &str| {
        let t: Vec<f64> = r
            .load
            .iter()
            .filter(|x| {
                x.backend == o && x.label.starts_with("events-") && x.label.contains(suffix)
            })
            .map(|x| x.summary.throughput_per_s)
            .collect();
        median(&t)
    };
    let ev = ratio(paired("-on-"), paired("-off-"))
        .or_else(|| ratio(tput(o, "put-c64-events"), tput(o, "put-c64")));
    v.push(Verdict {
        target: "throughput drop with an /events subscriber per node <= 10%",
        measured: ev.map_or("not measured".into(), |x| {
            format!("{:+.1}% (median of alternating runs)", (x - 1.0) * 100.0)
        }),
        met: ev.map(|x| x >= 0.9),
    });
    v
}

/// BENCHMARKS.md. `chart` is the SVG file's name relative to the markdown file.
pub fn markdown(r: &Results, chart: &str, notes: &str) -> String {
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(
        "Generated by `scripts/bench` (one run, one machine: a 3-node etcd and a 3-node OmniKV \
         on loopback, both fsyncing; the same load generator, `omnikv bench`, drives both). \
         Rebuild the page from the raw results with `omnikv bench report`.\n\n",
    );
    if !r.machine.is_empty() {
        md.push_str("## Machine and versions\n\n");
        md.push_str(r.machine.trim_end());
        md.push_str("\n\n");
    }
    md.push_str("## Targets\n\n| target | measured | verdict |\n|---|---|---|\n");
    for v in verdicts(r) {
        let verdict = match v.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        let _ = writeln!(md, "| {} | {} | {} |", v.target, v.measured, verdict);
    }
    let _ = writeln!(
        md,
        "\n## Throughput and latency\n\n![throughput]({chart})\n"
    );
    md.push_str(
        "| workload | system | clients | ops/s | p50 ms | p99 ms | p999 ms | errors | OmniKV/etcd |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let mut shown: Vec<&LoadResult> = Vec::new();
    for label in COMPARED_LABELS {
        shown.extend(r.run(BackendKind::Omnikv, label));
        shown.extend(r.run(BackendKind::Etcd, label));
    }
    for x in &r.load {
        if !shown.iter().any(|s| std::ptr::eq(*s, x)) && r.run(x.backend, &x.label) == Some(x) {
            shown.push(x);
        }
    }
    for x in &shown {
        let s = &x.summary;
        let ratio = match (x.backend, r.run(BackendKind::Etcd, &x.label)) {
            (BackendKind::Omnikv, Some(e)) => format!(
                "{:.2}x",
                s.throughput_per_s / e.summary.throughput_per_s.max(1e-9)
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            md,
            "| `{}` ({}) | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            x.label,
            describe(x),
            x.backend.name(),
            x.clients,
            s.throughput_per_s,
            ms(s.p50_us),
            ms(s.p99_us),
            ms(s.p999_us),
            s.errors,
            ratio
        );
    }
    md.push_str("\n## Leader failover\n\nSIGKILL of the leader to the first write acknowledged by a survivor.\n\n");
    md.push_str("| system | trials | min ms | median ms | max ms | all trials (ms) |\n|---|---|---|---|---|---|\n");
    for b in [BackendKind::Omnikv, BackendKind::Etcd] {
        let v = r.failover_ms(b);
        if v.is_empty() {
            continue;
        }
        let min = v.iter().copied().fold(f64::MAX, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        let all: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {min:.0} | {:.0} | {max:.0} | {} |",
            b.name(),
            v.len(),
            median(&v).unwrap_or(0.0),
            all.join(", ")
        );
    }
    for f in &r.failover_failures {
        let _ = writeln!(md, "\nFailed trial: {f}.");
    }
    if !r.rocksdb.is_empty() {
        md.push_str("\n## The physical ceiling: RocksDB alone\n\nOne RocksDB, `db_bench fillrandom`, 256 B values, every write synced (`--sync=1`): concurrent writers share an fsync through RocksDB's group commit.\n\n| benchmark | threads | writes/s | µs/op |\n|---|---|---|---|\n");
        for x in &r.rocksdb {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.1} |",
                x.name, x.threads, x.ops_per_s, x.micros_per_op
            );
        }
    }
    if !r.storage.is_empty() {
        md.push_str("\n## Storage layer micro-benchmarks\n\n`omnikv bench storage` (native-node/src/bench/storage_micro.rs) on the same disk.\n\n| benchmark | one iteration | iterations | p50 ms | p99 ms | entries/s |\n|---|---|---|---|---|---|\n");
        for x in &r.storage {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.0} |",
                x.name,
                x.unit,
                x.iterations,
                ms(x.p50_us),
                ms(x.p99_us),
                x.items_per_s
            );
        }
    }
    if !notes.trim().is_empty() {
        md.push('\n');
        md.push_str(notes.trim_end());
        md.push('\n');
    }
    md.push_str("\n## Commands\n\nEvery figure above came from one of these commands (run by `scripts/bench`):\n\n```sh\n");
    let mut commands: Vec<&str> = r
        .load
        .iter()
        .map(|x| x.command.as_str())
        .chain(r.failover.iter().take(1).map(|x| x.command.as_str()))
        .chain(
            r.failover
                .iter()
                .filter(|f| f.backend == BackendKind::Etcd)
                .take(1)
                .map(|x| x.command.as_str()),
        )
        .chain(r.rocksdb.iter().map(|x| x.command.as_str()))
        .chain(r.storage.iter().take(1).map(|x| x.command.as_str()))
        .collect();
    commands.dedup();
    for c in commands {
        let _ = writeln!(md, "{c}");
    }
    md.push_str("```\n");
    md
}

/// The chart of the compared workloads.
pub fn chart(r: &Results) -> String {
    let groups: Vec<Group> = COMPARED_LABELS
        .iter()
        .filter_map(|label| {
            let bars: Vec<(String, f64)> = [BackendKind::Omnikv, BackendKind::Etcd]
                .into_iter()
                .filter_map(|b| r.run(b, label))
                .map(|x| (x.backend.name().to_owned(), x.summary.throughput_per_s))
                .collect();
            (!bars.is_empty()).then(|| Group {
                label: label.to_string(),
                bars,
            })
        })
        .collect();
    bar_chart(
        "OmniKV vs etcd, 3 nodes, fsync, same machine",
        "operations/s",
        &groups,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::Summary;

    fn load(backend: BackendKind, label: &str, tput: f64, p50_us: u64) -> LoadResult {
        LoadResult {
            label: label.into(),
            backend,
            clients: 64,
            key_space: 100_000,
            value_bytes: 256,
            write_percent: 100,
            events_subscribers: 0,
            events_received: 0,
            summary: Summary {
                ops: 1,
                errors: 0,
                elapsed_ms: 120_000,
                throughput_per_s: tput,
                mean_us: 1.0,
                p50_us,
                p99_us: p50_us * 2,
                p999_us: p50_us * 3,
                max_us: p50_us * 4,
            },
            leader_changed: Some(false),
            command: format!("omnikv bench load --label {label}"),
        }
    }

    #[test]
    fn verdicts_follow_the_figures() {
        let o = BackendKind::Omnikv;
        let e = BackendKind::Etcd;
        let fo = |ms| FailoverResult {
            backend: o,
            killed_endpoint: "ws://x".into(),
            killed_pid: 1,
            failover_ms: ms,
            command: "omnikv bench failover".into(),
        };
        let r = Results {
            load: vec![
                load(o, "put-c64", 10_000.0, 5_000),
                load(e, "put-c64", 4_000.0, 10_000),
                load(o, "put-c1", 1_000.0, 900),
                load(e, "put-c1", 1_000.0, 800),
                load(o, "put-c64-events", 8_000.0, 5_000),
                load(o, "put-saturated", 9_000.0, 5_000),
            ],
            failover: vec![fo(100.0), fo(120.0), fo(500.0)],
            ..Results::default()
        };
        let v = verdicts(&r);
        let met: Vec<Option<bool>> = v.iter().map(|v| v.met).collect();
        assert_eq!(
            met,
            vec![
                Some(true),
                Some(false),
                None,
                Some(true),
                Some(true),
                Some(false)
            ]
        );
        // Alternating pairs take precedence over the single events run: medians 8600 / 9000.
        let mut paired = r.clone();
        for (n, (off, on)) in [(10_000.0, 9_500.0), (8_000.0, 7_600.0), (9_000.0, 8_600.0)]
            .into_iter()
            .enumerate()
        {
            paired
                .load
                .push(load(o, &format!("events-off-{n}"), off, 5_000));
            paired
                .load
                .push(load(o, &format!("events-on-{n}"), on, 5_000));
        }
        let events = verdicts(&paired).pop().unwrap();
        assert_eq!(events.met, Some(true));
        assert!(events.measured.starts_with("-4.4%"), "{}", events.measured);
        let md = markdown(&r, "chart.svg", "## Notes\n\nhello");
        assert!(md.contains("| writes/s at 64 clients >= 2x etcd | 2.50x | met |"));
        assert!(
            md.contains("| single-client write p50 <= etcd's | 0.90 ms vs 0.80 ms | **missed** |")
        );
        assert!(md.contains("| OmniKV | 3 | 100 | 120 | 500 |"));
        assert!(md.contains("| 2.50x |"), "ratio column");
        assert!(md.contains("hello") && md.contains("omnikv bench load --label put-c64"));
        assert!(chart(&r).contains("put-c64"));
        assert!(text_table(&r.load).contains("put-saturated"));
    }

    #[test]
    fn reads_a_results_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("load")).unwrap();
        let x = load(BackendKind::Etcd, "get-c64", 5.0, 1);
        std::fs::write(
            dir.path().join("load/a.json"),
            serde_json::to_string(&x).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("machine.md"), "2 cores").unwrap();
        let r = Results::load_dir(dir.path()).unwrap();
        assert_eq!(r.load, vec![x]);
        assert_eq!(r.machine, "2 cores");
        assert!(r.failover.is_empty() && r.rocksdb.is_empty());
        std::fs::write(dir.path().join("rocksdb.json"), "not json").unwrap();
        assert!(Results::load_dir(dir.path()).is_err());
    }
}
