//! Turning results into text: the table printed after a load run, and BENCHMARKS.md (how each
//! system was driven, the targets, the client-count curve, the open-loop run, failover,
//! RocksDB alone, the chart) rebuilt from a results directory (read by `results::Results`).

use std::fmt::Write;

use super::backends::BackendKind;
use super::results::{LoadResult, MemoryResult, Results};
use super::rounds;
use super::stats::{median, ms, Summary};
use super::svg::{bar_chart, document, Group, Panel};
use super::svg_lines::{line_chart, Series};
use super::targets;
use super::workload::{WorkloadKind, SCAN_LIMIT_KEYS};

/// The table printed at the end of `omnikv bench load`.
pub fn text_table(results: &[LoadResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<16} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "system", "workload", "clients", "ops/s", "p50 ms", "p99 ms", "p999 ms", "max ms", "errors"
    );
    for r in results {
        let s = &r.summary;
        let _ = writeln!(
            out,
            "{:<20} {:<16} {:>7} {:>11.0} {:>9} {:>9} {:>9} {:>9} {:>7}",
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
    let mix = match (r.workload, r.write_percent) {
        (WorkloadKind::PutGet, 100) => "put".to_owned(),
        (WorkloadKind::PutGet, 0) => "linearizable get".to_owned(),
        (WorkloadKind::PutGet, w) => format!("{w}% put / {}% get", 100 - w),
        (WorkloadKind::Scan, _) => {
            format!("linearizable scan of a {SCAN_LIMIT_KEYS}-key prefix")
        }
        (WorkloadKind::Cas, _) => "compare-and-put of the preloaded value".to_owned(),
    };
    let events = if r.events_subscribers > 0 {
        let encoding = if r.events_json { "JSON" } else { "postcard" };
        format!(
            ", {} /events subscribers ({encoding})",
            r.events_subscribers
        )
    } else {
        String::new()
    };
    let clients = if r.backend == BackendKind::Omnikv && r.client_json {
        ", JSON clients"
    } else {
        ""
    };
    let pace = match r.offered_per_s {
        Some(rate) => format!(", open loop at {rate:.0}/s offered"),
        None => String::new(),
    };
    format!(
        "{mix}, {} B values, {} keys{clients}{events}{pace}",
        r.value_bytes, r.key_space
    )
}

/// Client counts of the put curve, run on every system as `put-c{N}`.
pub const CURVE_CLIENTS: [usize; 5] = [1, 4, 16, 64, 256];

pub fn curve_label(clients: usize) -> String {
    format!("put-c{clients}")
}

/// Closed-loop workloads compared at 64 clients besides the curve, in this order.
pub const COMPARED_LABELS: [&str; 4] = ["get-c64", "mix-c64", "scan-c64", "cas-c64"];

/// The systems compared side by side (OmniKV and etcd over gRPC).
const COMPARED: [BackendKind; 2] = [BackendKind::Omnikv, BackendKind::Etcd];

/// "how each system was driven": protocol, client library, connections, clients per node.
fn driven_section(r: &Results) -> String {
    let mut md = String::from(
        "## How each system was driven\n\nOne load generator, `omnikv bench load`, for every system: each client has one request in flight (closed loop) unless a run is marked open loop.\n\n| system | protocol | requests | client library | connections | clients per node |\n|---|---|---|---|---|---|\n",
    );
    for b in BackendKind::ALL {
        let runs: Vec<&LoadResult> = r.load.iter().filter(|x| x.backend == b).collect();
        if runs.is_empty() {
            continue;
        }
        let (protocol, library) = b.driven_by();
        let shared = runs
            .iter()
            .filter(|x| x.connections > 0 && x.connections < x.clients)
            .map(|x| x.connections)
            .max();
        let connections = match shared {
            Some(n) => format!(
                "at most {n}, shared by the clients (client i on connection i mod {n}, connection j to node j mod 3, as etcd's `tools/benchmark` shares its `--conns`)"
            ),
            None => "one per client".to_owned(),
        };
        let nodes = runs.iter().map(|x| x.endpoints).max().unwrap_or(0).max(1);
        let mut counts: Vec<usize> = runs.iter().map(|x| x.clients).collect();
        counts.sort_unstable();
        counts.dedup();
        let counts: Vec<String> = counts.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            md,
            "| {} | {protocol} | {} | {library} | {connections} | {} clients over {nodes} nodes (client i on node i mod {nodes}) |",
            b.name(),
            requests_cell(b, &runs),
            counts.join(", ")
        );
    }
    if r.load.iter().any(|x| x.workload.needs_preload()) {
        let _ = writeln!(
            md,
            "\nScans and CAS run after every key of the key space was put with one known value (not timed). A scan asks for the {SCAN_LIMIT_KEYS} keys of a prefix drawn uniformly and counts as an error unless it gets all {SCAN_LIMIT_KEYS}. A CAS compares a key drawn uniformly with that value and puts the same value back, so every CAS succeeds on both systems and neither pays for retries; one whose comparison fails counts as an error."
        );
    }
    md
}

/// The requests each kind of workload among `runs` sent to `b`, in [`WorkloadKind`] order.
fn requests_cell(b: BackendKind, runs: &[&LoadResult]) -> String {
    let cells: Vec<String> = WorkloadKind::ALL
        .into_iter()
        .filter(|k| runs.iter().any(|x| x.workload == *k))
        .filter_map(|k| Some(format!("{}: {}", k.name(), b.requests(k)?)))
        .collect();
    cells.join("; ")
}

fn ratio_to_etcd(r: &Results, x: &LoadResult) -> String {
    match (x.backend, r.run(BackendKind::Etcd, &x.label)) {
        (BackendKind::Omnikv, Some(e)) => format!(
            "{:.2}x",
            x.summary.throughput_per_s / e.summary.throughput_per_s.max(1e-9)
        ),
        _ => String::new(),
    }
}

/// The put curve: throughput and p50/p99 of both systems at every client count.
fn curve_section(r: &Results) -> String {
    let mut md = String::from(
        "### Puts against the number of clients\n\n| clients | OmniKV puts/s | p50 ms | p99 ms | etcd puts/s | p50 ms | p99 ms | OmniKV/etcd |\n|---|---|---|---|---|---|---|---|\n",
    );
    for n in CURVE_CLIENTS {
        let label = curve_label(n);
        let cells: Vec<String> = COMPARED
            .iter()
            .map(|b| match r.run(*b, &label) {
                Some(x) => format!(
                    "{:.0} | {} | {}",
                    x.summary.throughput_per_s,
                    ms(x.summary.p50_us),
                    ms(x.summary.p99_us)
                ),
                None => "| |".to_owned(),
            })
            .collect();
        let ratio = r
            .run(BackendKind::Omnikv, &label)
            .map(|x| ratio_to_etcd(r, x))
            .unwrap_or_default();
        let _ = writeln!(md, "| {n} | {} | {ratio} |", cells.join(" | "));
    }
    md
}

/// The first cells of a run's row: workload (label and description), system, clients.
fn row_head(x: &LoadResult) -> String {
    format!(
        "| `{}` ({}) | {} | {} |",
        x.label,
        describe(x),
        x.backend.name(),
        x.clients
    )
}

/// p50, p99, p999 (ms) and errors, as table cells.
fn latencies(s: &Summary) -> String {
    format!(
        "{} | {} | {} | {}",
        ms(s.p50_us),
        ms(s.p99_us),
        ms(s.p999_us),
        s.errors
    )
}

/// Open-loop runs side by side: offered and achieved rate, latency from each due time.
fn open_loop_section(r: &Results) -> String {
    let runs = r.open_loop_runs();
    if runs.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "### Open loop: the same offered rate for both\n\nRequests are due at a fixed rate, spread evenly over the clients, and each latency is counted from when its request was due: a client still waiting for an answer sends late, and the wait is in the figure (no coordinated omission). Both systems carry the same load here, so the latencies compare directly.\n\n| workload | system | clients | offered/s | achieved/s | p50 ms | p99 ms | p999 ms | errors |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for x in runs {
        let _ = writeln!(
            md,
            "{} {:.0} | {:.0} | {} |",
            row_head(x),
            x.offered_per_s.unwrap_or(0.0),
            x.summary.throughput_per_s,
            latencies(&x.summary)
        );
    }
    md
}

/// Every other closed-loop run (gets, mix, the JSON gateway, watchers, the saturated run).
fn other_runs_section(r: &Results) -> String {
    let mut md = String::from(
        "### Other workloads\n\n| workload | system | clients | ops/s | p50 ms | p99 ms | p999 ms | errors | OmniKV/etcd |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let curve: Vec<String> = CURVE_CLIENTS.iter().map(|n| curve_label(*n)).collect();
    let in_curve = |x: &LoadResult| COMPARED.contains(&x.backend) && curve.contains(&x.label);
    let mut shown: Vec<&LoadResult> = Vec::new();
    for label in COMPARED_LABELS {
        for b in BackendKind::ALL {
            shown.extend(r.run(b, label));
        }
    }
    for x in &r.load {
        let latest = r.run(x.backend, &x.label) == Some(x);
        let listed = shown.iter().any(|s| std::ptr::eq(*s, x));
        let repeat = rounds::round_of(&x.label).is_some();
        if latest && !listed && !in_curve(x) && !repeat && x.offered_per_s.is_none() {
            shown.push(x);
        }
    }
    for x in &shown {
        let _ = writeln!(
            md,
            "{} {:.0} | {} | {} |",
            row_head(x),
            x.summary.throughput_per_s,
            latencies(&x.summary),
            ratio_to_etcd(r, x)
        );
    }
    md
}

/// The resident memory of every node after each number of puts, and how much it grew from the
/// first sample to the last (flat is the target).
fn memory_section(r: &Results) -> String {
    if r.memory.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n## Memory and disk\n\nResident memory (VmRSS) of every node's process and each node's data directory (write-ahead log / sorted tables / the rest), each cluster started empty and filled with 256 B puts over 100000 keys (about 25 MB of live data) by 64 clients (`BENCH_MEMORY=1 scripts/bench`); at the last count a follower is SIGKILLed and started again, and timed until its own copy serves the last write. etcd runs with its defaults, which keep every revision of every key until a compaction is asked for (no `--auto-compaction-retention`): its growth here is that history, which an operator bounds with auto compaction, not a leak. OmniKV keeps no history beyond `--log-keep-entries` entries of its log.\n\n| system | puts | RSS per node (MiB) | growth since the first sample | data dir per node, WAL / SST / other (MiB) | restart to serving |\n|---|---|---|---|---|---|\n",
    );
    for b in BackendKind::ALL {
        let mut samples: Vec<&MemoryResult> = r.memory.iter().filter(|m| m.backend == b).collect();
        samples.sort_by_key(|m| m.puts);
        let Some(first) = samples.first() else {
            continue;
        };
        let first_max = first.rss_kib.iter().copied().max().unwrap_or(0).max(1);
        for m in &samples {
            let nodes: Vec<String> = m
                .rss_kib
                .iter()
                .map(|k| format!("{:.0}", *k as f64 / 1024.0))
                .collect();
            let largest = m.rss_kib.iter().copied().max().unwrap_or(0);
            let growth = (largest as f64 / first_max as f64 - 1.0) * 100.0;
            let mib = |bytes: u64| format!("{:.0}", bytes as f64 / (1 << 20) as f64);
            let disk: Vec<String> = m
                .disk
                .iter()
                .map(|d| {
                    let (w, s, o) = (mib(d.wal_bytes), mib(d.sst_bytes), mib(d.other_bytes));
                    format!("{w} / {s} / {o}")
                })
                .collect();
            let disk = if disk.is_empty() {
                "-".into()
            } else {
                disk.join("; ")
            };
            let restart = m
                .restart_to_serving_ms
                .map_or("-".into(), |ms| format!("{ms} ms"));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {growth:+.0}% (largest node) | {disk} | {restart} |",
                b.name(),
                m.puts,
                nodes.join(", ")
            );
        }
    }
    md
}

/// BENCHMARKS.md. `chart` is the SVG file's name relative to the markdown file.
pub fn markdown(r: &Results, chart: &str, notes: &str) -> String {
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(
        "Generated by `scripts/bench` (one run, one machine: a 3-node etcd and a 3-node OmniKV \
         on loopback, both fsyncing; the same load generator, `omnikv bench`, drives both, \
         etcd over its native gRPC API). Rebuild the page from the raw results with \
         `omnikv bench report`.\n\n",
    );
    if !r.machine.is_empty() {
        md.push_str("## Machine and versions\n\n");
        md.push_str(r.machine.trim_end());
        md.push_str("\n\n");
    }
    md.push_str(&driven_section(r));
    md.push('\n');
    md.push_str(&targets::section(r));
    let _ = writeln!(
        md,
        "\n## Throughput and latency\n\n![throughput and latency]({chart})\n"
    );
    md.push_str(&curve_section(r));
    let rounds = rounds::section(r);
    if !rounds.is_empty() {
        md.push('\n');
        md.push_str(&rounds);
    }
    md.push('\n');
    md.push_str(&other_runs_section(r));
    let open = open_loop_section(r);
    if !open.is_empty() {
        md.push('\n');
        md.push_str(&open);
    }
    md.push_str("\n## Leader failover\n\nSIGKILL of the leader to the first write acknowledged by a survivor.\n\n");
    md.push_str("| system | trials | min ms | median ms | max ms | all trials (ms) |\n|---|---|---|---|---|---|\n");
    for b in BackendKind::ALL {
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
    md.push_str(&memory_section(r));
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
    md.push_str("\n## Commands\n\nEvery figure above came from one of these commands (run by `scripts/bench`; a round after the first runs its first round's command with its own `--label` and `--out`):\n\n```sh\n");
    let first_round = |x: &&LoadResult| rounds::round_of(&x.label).is_none_or(|(_, n)| n == 1);
    let mut commands: Vec<&str> = r
        .load
        .iter()
        .filter(first_round)
        .map(|x| x.command.as_str())
        .chain(r.failover.iter().take(1).map(|x| x.command.as_str()))
        .chain(
            r.failover
                .iter()
                .filter(|f| f.backend != BackendKind::Omnikv)
                .take(1)
                .map(|x| x.command.as_str()),
        )
        .chain(r.memory.iter().take(1).map(|x| x.command.as_str()))
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

/// The chart: the put curve (throughput, then p50 and p99 on a log scale), the 64-client
/// workloads, and the open-loop latencies.
pub fn chart(r: &Results) -> String {
    let systems: Vec<&str> = BackendKind::ALL.iter().map(|b| b.name()).collect();
    let colour_of = |b: BackendKind| BackendKind::ALL.iter().position(|x| *x == b).unwrap_or(0);
    let categories: Vec<String> = CURVE_CLIENTS
        .iter()
        .map(|n| match n {
            1 => "1 client".to_owned(),
            n => format!("{n} clients"),
        })
        .collect();
    let curve = |b: BackendKind, f: &dyn Fn(&LoadResult) -> f64| -> Vec<Option<f64>> {
        CURVE_CLIENTS
            .iter()
            .map(|n| r.run(b, &curve_label(*n)).map(f))
            .collect()
    };
    let measured = |b: &BackendKind| curve(*b, &|_| 0.0).iter().any(Option::is_some);
    // The gateway's reference runs are bars, not lines: the curve compares the two systems.
    let drawn: Vec<BackendKind> = COMPARED.into_iter().filter(measured).collect();
    let mut panels: Vec<Panel> = Vec::new();
    let throughput: Vec<Series> = drawn
        .iter()
        .map(|b| Series {
            name: b.name().to_owned(),
            colour: colour_of(*b),
            dashed: false,
            points: curve(*b, &|x| x.summary.throughput_per_s),
        })
        .collect();
    if !throughput.is_empty() {
        panels.push(line_chart(
            "Puts/s against clients (3 nodes, fsync, same machine)",
            "puts/s",
            &categories,
            &throughput,
            false,
        ));
        let latency: Vec<Series> = drawn
            .iter()
            .flat_map(|b| {
                [("p50", false), ("p99", true)].map(|(q, dashed)| Series {
                    name: format!("{} {q}", b.name()),
                    colour: colour_of(*b),
                    dashed,
                    points: curve(*b, &|x| {
                        let us = if dashed {
                            x.summary.p99_us
                        } else {
                            x.summary.p50_us
                        };
                        us as f64 / 1000.0
                    }),
                })
            })
            .collect();
        panels.push(line_chart(
            "Put latency against clients (p50 solid, p99 dashed)",
            "ms (log scale)",
            &categories,
            &latency,
            true,
        ));
    }
    let groups: Vec<Group> = std::iter::once("put-c64")
        .chain(COMPARED_LABELS)
        .filter_map(|label| {
            let bars: Vec<(String, f64)> = BackendKind::ALL
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
    if !groups.is_empty() {
        panels.push(bar_chart(
            "64 clients, closed loop",
            "operations/s",
            &systems,
            &groups,
        ));
    }
    let open = r.open_loop_runs();
    if !open.is_empty() {
        let groups: Vec<Group> = [("p50", 0usize), ("p99", 1), ("p999", 2)]
            .into_iter()
            .map(|(q, k)| Group {
                label: q.to_owned(),
                bars: open
                    .iter()
                    .map(|x| {
                        let s = &x.summary;
                        let us = [s.p50_us, s.p99_us, s.p999_us][k];
                        (x.backend.name().to_owned(), us as f64 / 1000.0)
                    })
                    .collect(),
            })
            .collect();
        let rate = open[0].offered_per_s.unwrap_or(0.0);
        panels.push(bar_chart(
            &format!("Put latency at {rate:.0}/s offered to each (open loop)"),
            "ms",
            &systems,
            &groups,
        ));
    }
    if let Some(panel) = footprint_panel(r) {
        panels.push(panel);
    }
    document(&panels)
}

/// `5M puts`, `250k puts`, `900 puts`.
fn puts_label(puts: u64) -> String {
    match puts {
        p if p >= 1_000_000 && p % 100_000 == 0 => format!("{}M puts", p as f64 / 1e6),
        p if p >= 1_000 && p % 1_000 == 0 => format!("{}k puts", p / 1_000),
        p => format!("{p} puts"),
    }
}

/// The footprint against the puts made so far (the memory phase's samples): per system, the
/// largest node's resident memory (solid) and data directory (dashed), in MiB. Flat lines are
/// the goal: the footprint follows the live data, not the history.
fn footprint_panel(r: &Results) -> Option<Panel> {
    let mut counts: Vec<u64> = r.memory.iter().map(|m| m.puts).collect();
    counts.sort_unstable();
    counts.dedup();
    if counts.is_empty() {
        return None;
    }
    let colour_of = |b: BackendKind| BackendKind::ALL.iter().position(|x| *x == b).unwrap_or(0);
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let sample =
        |b: BackendKind, puts: u64| r.memory.iter().find(|m| m.backend == b && m.puts == puts);
    let series: Vec<Series> = (BackendKind::ALL.into_iter())
        .filter(|b| r.memory.iter().any(|m| m.backend == *b))
        .flat_map(|b| {
            let rss = (counts.iter())
                .map(|p| {
                    sample(b, *p)
                        .and_then(|m| m.rss_kib.iter().max())
                        .map(|k| *k as f64 / 1024.0)
                })
                .collect();
            let disk = (counts.iter())
                .map(|p| {
                    let m = sample(b, *p).filter(|m| !m.disk.is_empty())?;
                    let total = |d: &crate::bench::results::DiskUse| {
                        d.wal_bytes + d.sst_bytes + d.other_bytes
                    };
                    m.disk.iter().map(total).max().map(mib)
                })
                .collect();
            [
                Series {
                    name: format!("{} RSS", b.name()),
                    colour: colour_of(b),
                    dashed: false,
                    points: rss,
                },
                Series {
                    name: format!("{} data dir", b.name()),
                    colour: colour_of(b),
                    dashed: true,
                    points: disk,
                },
            ]
        })
        .collect();
    let categories: Vec<String> = counts.iter().map(|p| puts_label(*p)).collect();
    Some(line_chart(
        "Footprint against puts made (largest node; RSS solid, data directory dashed)",
        "MiB",
        &categories,
        &series,
        false,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(backend: BackendKind, label: &str, tput: f64, p50_us: u64) -> LoadResult {
        LoadResult::sample(backend, label, tput, p50_us)
    }

    fn a_run() -> Results {
        let (o, e, g) = (
            BackendKind::Omnikv,
            BackendKind::Etcd,
            BackendKind::EtcdGateway,
        );
        let mut load_runs = Vec::new();
        for n in CURVE_CLIENTS {
            let mut x = load(o, &curve_label(n), 100.0 * n as f64, 1_000);
            x.clients = n;
            x.connections = n;
            load_runs.push(x);
            let mut y = load(e, &curve_label(n), 80.0 * n as f64, 2_000);
            y.clients = n;
            y.connections = n.min(3);
            load_runs.push(y);
        }
        load_runs.push(load(g, "put-c64", 2_000.0, 20_000));
        load_runs.push(load(o, "get-c64", 9_000.0, 5_000));
        for (label, kind) in [
            ("scan-c64", WorkloadKind::Scan),
            ("cas-c64", WorkloadKind::Cas),
        ] {
            // etcd's first, as its results file sorts first: the report puts OmniKV's first.
            for (b, tput) in [(e, 2_000.0), (o, 3_000.0)] {
                let mut x = load(b, label, tput, 4_000);
                x.workload = kind;
                load_runs.push(x);
            }
        }
        // etcd's first, as its results file sorts first: the report puts OmniKV's first.
        for b in [e, o] {
            let mut x = load(b, "put-open", 1_990.0, 3_000);
            x.offered_per_s = Some(2_000.0);
            load_runs.push(x);
        }
        Results {
            load: load_runs,
            ..Results::default()
        }
    }

    #[test]
    fn markdown_has_the_curve_the_open_loop_and_how_each_system_was_driven() {
        let md = markdown(&a_run(), "chart.svg", "## Notes\n\nhello");
        // The curve: 64 clients, both systems, and the ratio to etcd over gRPC.
        assert!(
            md.contains("| 64 | 6400 | 1.00 | 2.00 | 5120 | 2.00 | 4.00 | 1.25x |"),
            "{md}"
        );
        assert!(md.contains("| 256 | 25600 |"));
        // The gateway is an extra, labelled row, never the ratio's denominator.
        assert!(md.contains(
            "| `put-c64` (put, 256 B values, 100000 keys) | etcd (JSON gateway) | 64 | 2000 |"
        ));
        assert!(md.contains("| OmniKV | 64 | 9000 | 5.00 | 10.00 | 15.00 | 0 |  |"));
        assert!(md.contains("### Open loop"));
        let open_row = |system: &str| md.find(&format!("| {system} | 64 | 2000 | 1990 | 3.00 |"));
        assert!(
            open_row("OmniKV").unwrap() < open_row("etcd").unwrap(),
            "{md}"
        );
        assert!(md.contains(
            "| etcd | gRPC, default (linearizable) consistency | puts and gets: KV.Put, KV.Range of one key; scans: KV.Range of a prefix"
        ));
        // The gateway ran puts only: its requests name nothing else.
        assert!(md.contains(
            "| etcd (JSON gateway) | HTTP/1.1 JSON gateway | puts and gets: `/v3/kv/put`, `/v3/kv/range` of one key | ureq"
        ));
        assert!(md.contains("etcd-client (tonic) | at most 3, shared by the clients"));
        assert!(md.contains("| OmniKV | WebSocket"));
        assert!(
            md.contains("one per client | 1, 4, 16, 64, 256 clients over 3 nodes (client i on node i mod 3) |"),
            "{}",
            driven_section(&a_run())
        );
        assert!(md.contains("**Missed in this run"));
        assert!(md.contains("hello") && md.contains("omnikv bench load --label put-c64"));
        assert!(text_table(&a_run().load).contains("put-open"));
    }

    #[test]
    fn rounds_are_listed_with_their_workload_and_not_as_other_workloads() {
        let mut r = a_run();
        let md = markdown(&r, "chart.svg", "");
        assert!(!md.contains("### Every run of the target workloads"));
        for n in 1..=2 {
            r.load.push(load(
                BackendKind::Omnikv,
                &rounds::round_label("put-c64", n),
                7_000.0,
                1_000,
            ));
        }
        let md = markdown(&r, "chart.svg", "");
        assert!(
            md.contains("| `put-c64` | OmniKV | 3 | 6400, 7000, 7000 | 7000 |"),
            "{md}"
        );
        assert!(!md.contains("| `put-c64-round1`"), "{md}");
        // The first round's command is listed, a later round's (the same but its label) not.
        assert!(md.contains("omnikv bench load --label put-c64-round1\n"));
        assert!(!md.contains("omnikv bench load --label put-c64-round2"));
    }

    #[test]
    fn scans_and_cas_are_compared_side_by_side_and_say_how_they_were_driven() {
        let md = markdown(&a_run(), "chart.svg", "");
        let row = |label: &str, what: &str, system: &str| {
            md.find(&format!(
                "| `{label}` ({what}, 256 B values, 100000 keys) | {system} | 64 |"
            ))
            .unwrap_or_else(|| panic!("{label} {system}: {md}"))
        };
        let scan = "linearizable scan of a 100-key prefix";
        let cas = "compare-and-put of the preloaded value";
        assert!(row("scan-c64", scan, "OmniKV") < row("scan-c64", scan, "etcd"));
        assert!(row("scan-c64", scan, "etcd") < row("cas-c64", cas, "OmniKV"));
        assert!(md.contains(&format!(
            "| `cas-c64` ({cas}, 256 B values, 100000 keys) | OmniKV | 64 | 3000 | 4.00 | 8.00 | 12.00 | 0 | 1.50x |"
        )));
        assert!(md.contains(
            "scans: linearizable `scan` of a prefix, limit 100; CAS: `txn` of one `value` guard and one `put` |"
        ));
        assert!(md.contains(
            "scans: KV.Range of a prefix (range_end = prefix + 1), limit 100; CAS: KV.Txn: compare value EQUAL, then put |"
        ));
        assert!(md.contains("Scans and CAS run after every key of the key space was put"));
        let svg = chart(&a_run());
        assert!(svg.contains("scan-c64") && svg.contains("cas-c64"));
    }

    #[test]
    fn chart_draws_the_curve_and_the_open_loop() {
        let svg = chart(&a_run());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Throughput: 2 lines; latency: p50 and p99 of each system.
        assert_eq!(svg.matches("<polyline").count(), 2 + 4);
        assert!(svg.contains("256 clients") && svg.contains("get-c64"));
        assert!(svg.contains("2000/s offered"));
        assert!(svg.contains("etcd (JSON gateway)"));
    }

    #[test]
    fn memory_growth_is_measured_from_the_first_sample() {
        let sample = |puts, rss_kib: Vec<u64>| MemoryResult {
            backend: BackendKind::Omnikv,
            puts,
            rss_kib,
            disk: vec![],
            restart_to_serving_ms: None,
            command: "omnikv bench memory".into(),
        };
        let r = Results {
            memory: vec![
                sample(5_000_000, vec![153_600, 102_400, 102_400]),
                sample(1_000_000, vec![102_400, 102_400, 102_400]),
            ],
            ..Results::default()
        };
        let md = markdown(&r, "c.svg", "");
        assert!(md.contains("| OmniKV | 1000000 | 100, 100, 100 | +0% (largest node) | - | - |"));
        assert!(md.contains("| OmniKV | 5000000 | 150, 100, 100 | +50% (largest node) | - | - |"));
        let mut r = r;
        r.memory[0].disk = vec![crate::bench::results::DiskUse {
            wal_bytes: 64 << 20,
            sst_bytes: 30 << 20,
            other_bytes: 1 << 20,
        }];
        r.memory[0].restart_to_serving_ms = Some(812);
        let md = markdown(&r, "c.svg", "");
        assert!(
            md.contains("| +50% (largest node) | 64 / 30 / 1 | 812 ms |"),
            "{md}"
        );
        assert!(markdown(&Results::default(), "c.svg", "")
            .find("## Memory")
            .is_none());
    }

    #[test]
    fn the_chart_draws_the_footprint_when_it_was_measured() {
        assert!(!chart(&Results::default()).contains("Footprint"));
        let sample = |puts, rss_kib: Vec<u64>, dir_mib: u64| MemoryResult {
            backend: BackendKind::Omnikv,
            puts,
            rss_kib,
            disk: vec![crate::bench::results::DiskUse {
                wal_bytes: dir_mib << 20,
                sst_bytes: 0,
                other_bytes: 0,
            }],
            restart_to_serving_ms: None,
            command: "omnikv bench memory".into(),
        };
        let r = Results {
            memory: vec![
                sample(5_000_000, vec![130 << 10, 120 << 10], 180),
                sample(1_000_000, vec![125 << 10, 100 << 10], 140),
            ],
            ..Results::default()
        };
        let panel = footprint_panel(&r).expect("a footprint panel");
        let svg = document(&[panel]);
        for words in [
            "Footprint",
            "1M puts",
            "5M puts",
            "OmniKV RSS",
            "OmniKV data dir",
        ] {
            assert!(svg.contains(words), "{words} missing from {svg}");
        }
        assert!(chart(&r).contains("Footprint"));
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

    #[test]
    fn results_from_before_connections_were_recorded_still_read() {
        let mut v = serde_json::to_value(load(BackendKind::Omnikv, "put-c1", 1.0, 1)).unwrap();
        for field in ["endpoints", "connections", "offered_per_s"] {
            v.as_object_mut().unwrap().remove(field);
        }
        let x: LoadResult = serde_json::from_value(v).unwrap();
        assert_eq!((x.endpoints, x.connections, x.offered_per_s), (0, 0, None));
    }
}
