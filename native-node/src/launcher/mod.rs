//! `omnikv demo`: a local cluster of real node processes, supervised, with an HTTP control API
//! and the visualizer's static files.
//!
//! - [`supervisor`]: spawns, kills (SIGKILL), pauses (SIGSTOP), resumes and restarts nodes, and
//!   keeps the operator's link cuts applied to them.
//! - [`scenarios`]: which links the partial-connectivity scenarios cut.
//! - [`held_links`]: holding a link's messages, delivering or dropping them one by one.
//! - [`http`]: the control API and static files.
//! - [`access`]: the `Host` allow-list and the token check of the control API.
//! - [`data_dir`]: the layout of the demo's data directory, what `--fresh` may delete, and the
//!   cluster id a restarted demo reuses.

pub mod access;
pub mod data_dir;
pub mod held_links;
pub mod http;
pub mod scenarios;
pub mod supervisor;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::secret::ClusterSecret;
use supervisor::Supervisor;

#[derive(Args, Clone, Debug)]
pub struct DemoConfig {
    /// Number of nodes (3 or more; 5 works too).
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Address of the visualizer and control API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Where the nodes keep their RocksDB directories and logs.
    #[arg(long, default_value = ".omnikv/demo")]
    pub data_dir: PathBuf,
    /// Empty the data directory first (start from an empty cluster). Refused if it holds
    /// anything but the nodes' directories and logs.
    #[arg(long)]
    pub fresh: bool,
    /// Directory of the visualizer's static files.
    #[arg(long, default_value = "web")]
    pub web_dir: PathBuf,
    /// Local snapshot interval of every node, in decided entries (small, so snapshots are
    /// visible in the demo).
    #[arg(long, default_value_t = 50)]
    pub snapshot_every: u64,
    /// Entries every node's local snapshot leaves in its log (none, so that a snapshot forms
    /// where the log strips draw it, and a short cut-off is caught up by snapshot).
    #[arg(long, default_value_t = 0)]
    pub log_keep_entries: u64,
    /// OmniPaxos tick of every node.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Do not fsync (UNSAFE for power loss; passed to every node).
    #[arg(long)]
    pub no_fsync: bool,
    /// Require this token on the control API (`Authorization: Bearer TOKEN`, or open the page
    /// once as `/?token=TOKEN`). Mandatory when --http is not a loopback address, since the API
    /// can kill processes.
    #[arg(long, env = "OMNIKV_TOKEN")]
    pub token: Option<String>,
    /// Another name (host name or IP address) that browsers and tools on other machines use to
    /// reach the launcher; repeatable. Requests naming any other host are refused, which
    /// stops DNS-rebinding pages. Loopback names and the --http address are always allowed.
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
}

pub async fn run(config: DemoConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(
        (2..=9).contains(&config.nodes),
        "--nodes must be between 2 and 9"
    );
    anyhow::ensure!(
        config.http.ip().is_loopback() || config.token.as_deref().is_some_and(|t| !t.is_empty()),
        "refusing to serve the control API on {} without --token: anyone who reaches it could kill the nodes",
        config.http
    );
    if config.fresh {
        data_dir::clear_for_fresh(&config.data_dir)?;
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let data_dir = config.data_dir.canonicalize()?;
    let exe = std::env::current_exe().context("locating the omnikv binary")?;
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .with_context(|| format!("binding {}", config.http))?;
    let http_addr = listener.local_addr()?;
    let mut node_args = vec![
        "--snapshot-every".to_string(),
        config.snapshot_every.to_string(),
        "--log-keep-entries".to_string(),
        config.log_keep_entries.to_string(),
        "--tick-ms".to_string(),
        config.tick_ms.to_string(),
    ];
    if config.no_fsync {
        node_args.push("--no-fsync".into());
    }
    // One secret per cluster, kept with its data so that a restarted demo reuses it.
    let secret_path = data_dir.join(data_dir::SECRET_FILE);
    let secret = Arc::new(ClusterSecret::load_or_create(&secret_path)?);
    node_args.push("--secret-file".into());
    node_args.push(secret_path.display().to_string());
    // The page is served from here, so its origin is the only one the nodes accept.
    let hosts = access::HostAllowList::new(http_addr, &config.allow_hosts);
    for origin in page_origins(&hosts, http_addr.port()) {
        node_args.push("--allowed-origin".into());
        node_args.push(origin);
    }
    let supervisor = Supervisor::new(exe, config.nodes, &data_dir, node_args, Some(secret))?;
    supervisor.start_all().await?;
    if !config.web_dir.join("index.html").exists() {
        tracing::warn!(
            "{} has no index.html: build the visualizer with scripts/build-web",
            config.web_dir.display()
        );
    }
    let app = http::router(
        supervisor.clone(),
        config.web_dir.clone(),
        config.token.clone(),
        hosts,
    );
    println!(
        "omnikv demo: {} nodes, data in {}",
        config.nodes,
        data_dir.display()
    );
    println!("http://{http_addr}");
    info!(%http_addr, "serving the visualizer and control API");
    let serve =
        axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let result = serve.await;
    supervisor.stop_all().await;
    result.context("HTTP server")
}

/// The origins a browser gives pages served by this launcher: `http://NAME:PORT` for each name
/// it answers to (and `http://NAME` on port 80, where browsers leave the port out).
fn page_origins(hosts: &access::HostAllowList, port: u16) -> Vec<String> {
    hosts
        .names()
        .map(|name| {
            if port == 80 {
                format!("http://{name}")
            } else {
                format!("http://{name}:{port}")
            }
        })
        .collect()
}
