//! `omnikv`: run a node, run the local demo cluster, or talk to a cluster.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use omnikv_core::{client::ReadMode, control::ClusterView};
use omnikv_node::{client::Client, config::NodeConfig, launcher::DemoConfig};
use tokio_util::sync::CancellationToken;

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
    /// Print one node's whole KV table, `key<TAB>value` per line in key order (the leader's,
    /// unless --node names another). Read by pages from the node's local copy: a table that
    /// changes meanwhile is seen as it was at each page.
    Dump {
        #[command(flatten)]
        target: Target,
    },
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
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
                let read = if local {
                    ReadMode::Local
                } else {
                    ReadMode::Linearizable
                };
                match client_for(&target).await?.get(&key, read).await? {
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
