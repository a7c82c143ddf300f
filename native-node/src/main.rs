//! `omnikv`: run a node, run the local demo cluster, or talk to a cluster.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use omnikv_core::watch::WatchRequest;
use omnikv_core::{
    client::ReadMode,
    control::ClusterView,
    scan::{ScanRange, SCAN_KEYS_MAX},
    txn::{parse_batch, Guard, TxnOp, TxnResult},
};
use omnikv_node::{
    client::{Client, WatchEnd},
    config::NodeConfig,
    launcher::DemoConfig,
};
use tokio_util::sync::CancellationToken;

/// glibc's malloc slowed as a node's heap aged under writes (its free lists grew to walk, 7% of
/// a loaded node's samples); mimalloc kept the steady rate about 9% higher
/// (docs/performance-notes.md, section 42).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "omnikv",
    version,
    about = "A replicated key-value store: RocksDB replicated by OmniPaxos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Target {
    /// A node's WebSocket URL (ws://host:port). Default: the nodes of the demo at --demo.
    #[arg(long)]
    node: Option<String>,
    /// The demo's HTTP address, used to find its nodes when --node is not given.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    demo: String,
    /// The demo's control-API token, when it was started with one.
    #[arg(long, env = "OMNIKV_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Give up after this long (retries included).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node (normally started by `omnikv demo`).
    Node(NodeConfig),
    /// Start a local cluster of node processes and serve the visualizer and control API.
    Demo(DemoConfig),
    /// Write a value.
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        target: Target,
    },
    /// Read a value: prints it and exits 0, or exits 1 if the key is absent.
    Get {
        key: String,
        /// Read the node's local copy (fast, possibly stale) instead of a linearizable read.
        #[arg(long)]
        local: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Measure: load generator (OmniKV or etcd), failover trials, storage micro-benchmarks,
    /// and the BENCHMARKS.md report.
    #[command(subcommand)]
    Bench(omnikv_node::bench::BenchCommand),
    /// Delete a key.
    Delete {
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print keys in key order, `key<TAB>value` per line: by prefix or over [--from, --to).
    /// Exits 1 when no key matched.
    Scan {
        #[command(flatten)]
        keys: Keys,
        /// Print at most this many keys (default: all, read a page at a time).
        #[arg(long)]
        limit: Option<u64>,
        /// Read the node's local copy (fast, possibly stale) instead of linearizable pages.
        #[arg(long)]
        local: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Compare-and-swap: write KEY (NEW, or --delete) only if it holds --expect VALUE, is
    /// absent (--expect-absent) or was last written at --expect-index N. Exits 1, saying what
    /// KEY holds, when the comparison fails.
    Cas {
        key: String,
        #[arg(required_unless_present = "delete")]
        new: Option<String>,
        /// Delete KEY instead of writing NEW.
        #[arg(long, conflicts_with = "new")]
        delete: bool,
        #[command(flatten)]
        expect: Expect,
        #[command(flatten)]
        target: Target,
    },
    /// Apply JSON lines from stdin atomically, in one log entry: writes
    /// (`{"put":{"key":"k","value":"v"}}`, `{"delete":{"key":"k"}}`) and guards
    /// (`{"value":{"key":"k","value":"v"}}`, `{"absent":{"key":"k"}}`,
    /// `{"mod_index":{"key":"k","mod_index":7}}`). Exits 1 when a guard fails.
    Batch {
        #[command(flatten)]
        target: Target,
    },
    /// Print the changes to keys under --prefix (or in [--from, --to)), one line each:
    /// `INDEX<TAB>put<TAB>KEY<TAB>VALUE` or `INDEX<TAB>delete<TAB>KEY`, in log order, from
    /// --from-index (default: now) on, moving to another node if one fails. Exits 1 when the
    /// nodes no longer keep changes that old (scan, then watch from the scan's index + 1).
    Watch {
        #[command(flatten)]
        keys: Keys,
        /// The first log index whose changes to print.
        #[arg(long)]
        from_index: Option<u64>,
        /// Stop after this many changes.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Print the client history a trace holds (one the page exported, or a nemesis run's) in
    /// Porcupine's JSON: an array of `{ClientId, Input, Call, Output, Return}`.
    History {
        /// Porcupine's format (the one offered).
        #[arg(long, required = true)]
        porcupine: bool,
        /// The trace file.
        trace: std::path::PathBuf,
    },
    /// Print one node's whole KV table, `key<TAB>value` per line in key order (the leader's,
    /// unless --node names another). Read by pages from the node's local copy: a table that
    /// changes meanwhile is seen as it was at each page.
    Dump {
        #[command(flatten)]
        target: Target,
    },
}

/// The keys a scan or a watch covers.
#[derive(clap::Args, Clone)]
struct Keys {
    /// Keys starting with this.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    prefix: Option<String>,
    /// First key (inclusive).
    #[arg(long)]
    from: Option<String>,
    /// End key (exclusive).
    #[arg(long)]
    to: Option<String>,
}

impl Keys {
    fn range(self) -> ScanRange {
        ScanRange {
            prefix: self.prefix,
            start: self.from,
            end: self.to,
            ..ScanRange::default()
        }
    }
}

/// What a compare-and-swap expects of its key: exactly one of these.
#[derive(clap::Args, Clone)]
#[group(required = true, multiple = false)]
struct Expect {
    /// KEY holds this value.
    #[arg(long)]
    expect: Option<String>,
    /// KEY does not exist.
    #[arg(long)]
    expect_absent: bool,
    /// KEY's last write was applied at this log index (its `mod_index`).
    #[arg(long)]
    expect_index: Option<u64>,
}

impl Expect {
    fn guard(self, key: String) -> Guard {
        match (self.expect, self.expect_index) {
            (Some(value), _) => Guard::Value { key, value },
            (None, Some(mod_index)) => Guard::ModIndex { key, mod_index },
            (None, None) => Guard::Absent { key },
        }
    }
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes help a person at a terminal and corrupt a log file that grep and other
    // programs read; NO_COLOR (no-color.org) turns them off on a terminal too.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// Cancels on Ctrl-C or SIGTERM.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        t.cancel();
    });
    token
}

/// WebSocket URLs to try, leader first.
async fn resolve(target: &Target) -> anyhow::Result<Vec<String>> {
    if let Some(node) = &target.node {
        return Ok(vec![node.clone()]);
    }
    let url = format!("{}/api/cluster", target.demo.trim_end_matches('/'));
    let token = target.token.clone();
    let body = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut req = ureq::get(&url).timeout(Duration::from_secs(3));
        if let Some(token) = token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let resp = match req.call() {
            Err(ureq::Error::Status(401, _)) => {
                anyhow::bail!("the demo needs its token: pass --token TOKEN or set OMNIKV_TOKEN")
            }
            r => r?,
        };
        Ok(resp.into_string()?)
    })
    .await?
    .with_context(|| {
        format!(
            "asking the demo at {} for its nodes (start one with `omnikv demo`, or pass --node)",
            target.demo
        )
    })?;
    let view: ClusterView = serde_json::from_str(&body).context("decoding /api/cluster")?;
    let nodes = view.client_targets();
    anyhow::ensure!(!nodes.is_empty(), "the demo has no live node");
    Ok(nodes.into_iter().map(|n| n.ws.clone()).collect())
}

async fn client_for(target: &Target) -> anyhow::Result<Client> {
    let mut client = Client::new(resolve(target).await?);
    client.total_timeout = Duration::from_millis(target.timeout_ms);
    Ok(client)
}

/// `omnikv dump`: the table on stdout, a summary on stderr.
async fn dump(target: &Target) -> anyhow::Result<()> {
    use std::io::Write;
    let node = resolve(target).await?.remove(0);
    let started = std::time::Instant::now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut keys, mut applied) = (0u64, (u64::MAX, 0u64));
    let mut written = Ok(());
    let timeout = Duration::from_millis(target.timeout_ms);
    let pages = omnikv_node::client::walk_table(&node, timeout, |page| {
        keys += page.entries.len() as u64;
        applied = (
            applied.0.min(page.applied_idx),
            applied.1.max(page.applied_idx),
        );
        for (k, v) in &page.entries {
            if written.is_ok() {
                written = writeln!(out, "{k}\t{v}");
            }
        }
    })
    .await
    .with_context(|| format!("reading the table of {node}"))?;
    written
        .and_then(|()| out.flush())
        .context("writing the table")?;
    eprintln!(
        "{keys} keys in {pages} pages from {node}, applied index {}..={}, {:.1} s",
        applied.0,
        applied.1,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn read_mode(local: bool) -> ReadMode {
    if local {
        ReadMode::Local
    } else {
        ReadMode::Linearizable
    }
}

/// `omnikv scan`: pages until the range or the limit ends; whether any key was printed.
async fn scan(
    mut range: ScanRange,
    limit: Option<u64>,
    read: ReadMode,
    target: &Target,
) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut client = client_for(target).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut left = limit.unwrap_or(u64::MAX);
    let mut printed = false;
    while left > 0 {
        range.limit = left.min(u64::from(SCAN_KEYS_MAX)) as u32;
        let page = client.scan(range.clone(), read).await?;
        for e in &page.entries {
            writeln!(out, "{}\t{}", e.key, e.value).context("writing the keys")?;
            printed = true;
        }
        left -= page.entries.len() as u64;
        match page.next_after {
            Some(after) => range.after = Some(after),
            None => break,
        }
    }
    out.flush().context("writing the keys")?;
    Ok(printed)
}

/// Prints a transaction's outcome: `ok` on stdout, or what each failed guard found on stderr.
fn report_txn(result: &TxnResult, index: Option<u64>) -> ExitCode {
    if result.succeeded {
        println!("ok");
        return ExitCode::SUCCESS;
    }
    let at = index.map(|i| format!(" at index {i}")).unwrap_or_default();
    eprintln!("comparison failed{at}");
    for f in &result.found {
        eprintln!("{}", f.line());
    }
    ExitCode::from(1)
}

/// `omnikv watch`: one line per change until `count` (or forever).
async fn watch(
    range: ScanRange,
    from_index: Option<u64>,
    count: Option<u64>,
    target: &Target,
) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let nodes = resolve(target).await?;
    let request = WatchRequest { range, from_index };
    let mut left = count.unwrap_or(u64::MAX);
    let mut out = std::io::stdout().lock();
    let mut written = Ok(());
    let give_up = Duration::from_millis(target.timeout_ms);
    let end = omnikv_node::client::watch(&nodes, request, give_up, |c| {
        written = writeln!(out, "{}", c.line()).and_then(|()| out.flush());
        left -= 1;
        written.is_ok() && left > 0
    })
    .await?;
    written.context("writing the changes")?;
    match end {
        WatchEnd::Stopped => Ok(ExitCode::SUCCESS),
        WatchEnd::Compacted { oldest_index } => {
            eprintln!("the nodes keep changes from index {oldest_index} on: scan, then watch from the scan's index + 1");
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints the trace's history in Porcupine's JSON.
fn history(path: &std::path::Path) -> anyhow::Result<()> {
    use omnikv_core::linearizability::Operation;
    let bytes = std::fs::read(path).with_context(|| format!("reading {path:?}"))?;
    // Traces were JSON before version 4.
    let timeline = match std::str::from_utf8(&bytes) {
        Ok(text) if text.trim_start().starts_with('{') => {
            omnikv_viz::Timeline::import_json(text, text.len(), 1)
        }
        _ => omnikv_viz::Timeline::import_bytes(&bytes, bytes.len(), 1),
    }
    .map_err(|e| anyhow::anyhow!("{path:?}: {e}"))?;
    let history: Vec<&Operation> = (timeline.records())
        .filter_map(|r| match r {
            omnikv_viz::Record::Operation { operation, .. } => Some(operation),
            _ => None,
        })
        .collect();
    let out = std::io::stdout().lock();
    serde_json::to_writer(out, &omnikv_node::porcupine::operations(&history))?;
    println!();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match runtime_for(&cli.command) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("omnikv: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(cli))
}

/// A node runs on one thread: its event loop, its sockets and its clients' connections share
/// that thread, so a request crosses no thread on its way in or out (a cross-thread wake-up
/// per hop cost a fifth of a single client's put latency). What would hold that thread (the
/// fsync, encoding or decoding a snapshot, reading a dump page) goes to tokio's blocking pool.
/// Everything else, the load generator above all, uses every core.
fn runtime_for(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    match command {
        Command::Node(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()
}

async fn run(cli: Cli) -> ExitCode {
    let result: anyhow::Result<ExitCode> = async {
        match cli.command {
            Command::Node(config) => {
                init_tracing("info");
                omnikv_node::fatal::install(config.id);
                omnikv_node::node::run(config, shutdown_on_signals()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Demo(config) => {
                init_tracing("info");
                omnikv_node::launcher::run(config, shutdown_on_signals()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Put { key, value, target } => {
                init_tracing("warn");
                client_for(&target).await?.put(&key, &value).await?;
                println!("ok");
                Ok(ExitCode::SUCCESS)
            }
            Command::Get { key, local, target } => {
                init_tracing("warn");
                match client_for(&target)
                    .await?
                    .get(&key, read_mode(local))
                    .await?
                {
                    Some(v) => {
                        println!("{v}");
                        Ok(ExitCode::SUCCESS)
                    }
                    None => {
                        eprintln!("{key}: not found");
                        Ok(ExitCode::from(1))
                    }
                }
            }
            Command::Bench(cmd) => {
                init_tracing("warn");
                omnikv_node::bench::run(cmd).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Scan {
                keys,
                limit,
                local,
                target,
            } => {
                init_tracing("warn");
                let found = scan(keys.range(), limit, read_mode(local), &target).await?;
                Ok(if found {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            Command::Cas {
                key,
                new,
                delete: _,
                expect,
                target,
            } => {
                init_tracing("warn");
                let op = match new {
                    Some(value) => TxnOp::Put {
                        key: key.clone(),
                        value,
                    },
                    None => TxnOp::Delete { key: key.clone() },
                };
                let guards = vec![expect.guard(key)];
                let (result, index) = client_for(&target).await?.txn(guards, vec![op]).await?;
                Ok(report_txn(&result, index))
            }
            Command::Batch { target } => {
                init_tracing("warn");
                let text = std::io::read_to_string(std::io::stdin()).context("reading stdin")?;
                let (guards, ops) = parse_batch(&text).map_err(anyhow::Error::msg)?;
                let (result, index) = client_for(&target).await?.txn(guards, ops).await?;
                Ok(report_txn(&result, index))
            }
            Command::Watch {
                keys,
                from_index,
                count,
                target,
            } => {
                init_tracing("warn");
                watch(keys.range(), from_index, count, &target).await
            }
            Command::History { trace, .. } => {
                history(&trace)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Dump { target } => {
                init_tracing("warn");
                dump(&target).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Delete { key, target } => {
                init_tracing("warn");
                client_for(&target).await?.delete(&key).await?;
                println!("ok");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
    .await;
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("omnikv: {e:#}");
            ExitCode::from(2)
        }
    }
}
