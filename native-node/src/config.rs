//! Configuration of one node process (`omnikv node`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use omnikv_core::NodeId;

use crate::secret::ClusterSecret;
use crate::storage::StoreLimits;

#[derive(Args, Clone, Debug)]
pub struct NodeConfig {
    /// This node's id (1..=N, dense).
    #[arg(long)]
    pub id: NodeId,
    /// Every member's peer address, this node's included: `--member 1=127.0.0.1:7001 ...`.
    /// This node listens on its own entry.
    #[arg(long = "member", value_parser = parse_member, required = true)]
    pub members: Vec<(NodeId, SocketAddr)>,
    /// Cluster identity; peers of another cluster are refused.
    #[arg(long, default_value = "omnikv")]
    pub cluster_id: String,
    /// Address of the client, event and admin WebSocket endpoint.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub ws: SocketAddr,
    /// Directory of this node's RocksDB.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Logical clock period of OmniPaxos.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Ticks per heartbeat round; a leader silent for a round is replaced.
    #[arg(long, default_value_t = 5)]
    pub election_ticks: u64,
    /// Take a local snapshot every this many applied entries (0: never); each member at its
    /// own point of the interval, so that they do not all compact at once.
    #[arg(long, default_value_t = 1000)]
    pub snapshot_every: u64,
    /// Entries a local snapshot leaves in the log behind it (default: --snapshot-every), so
    /// that a follower at most this far behind is caught up with entries, not the whole table.
    #[arg(long)]
    pub log_keep_entries: Option<u64>,
    /// Time a request may wait to be decided before it gets a timeout reply.
    #[arg(long, default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// Requests in flight on this node; more are refused with `overloaded`.
    #[arg(long, default_value_t = 16384)]
    pub pending_max: usize,
    /// Do not fsync the log. UNSAFE: a power loss may lose acknowledged writes (a process
    /// crash still cannot).
    #[arg(long)]
    pub no_fsync: bool,
    /// Free space the node keeps on its data directory's filesystem: below it the node stops
    /// with one line rather than let RocksDB run out of space mid-write.
    #[arg(long, default_value_t = 64)]
    pub disk_reserve_mb: u64,
    /// RocksDB's memtables, all column families together, in MiB.
    #[arg(
        long,
        default_value_t = (StoreLimits::DEFAULT.memtables_bytes >> 20) as u64,
        value_parser = clap::value_parser!(u64).range(1..=65536)
    )]
    pub memtables_mb: u64,
    /// Write-ahead log kept before RocksDB flushes what pins its oldest file, in MiB: what a
    /// restart replays at most.
    #[arg(
        long,
        default_value_t = StoreLimits::DEFAULT.wal_bytes >> 20,
        value_parser = clap::value_parser!(u64).range(1..=65536)
    )]
    pub wal_max_mb: u64,
    /// RocksDB's block cache for reads, in MiB.
    #[arg(
        long,
        default_value_t = (StoreLimits::DEFAULT.block_cache_bytes >> 20) as u64,
        value_parser = clap::value_parser!(u64).range(1..=65536)
    )]
    pub block_cache_mb: u64,
    /// Let OmniPaxos 0.2.4 handle delta snapshots itself instead of rewriting them into the
    /// entries they fold (see `snapshot_fix`). UNSAFE: a follower caught up by a delta snapshot
    /// can revert decided writes. Exists only so that a test can show what the fix prevents.
    #[arg(long, hide = true)]
    pub unsafe_no_snapshot_fix: bool,
    /// Keep OmniPaxos' snapshot as a second copy of the table, folded at each compaction, as
    /// OmniPaxos 0.2.4 expects of its storage, instead of letting the table serve as the
    /// snapshot (see `table_snapshot`). Costs a copy of every put; exists only so that a test
    /// can reproduce that version's delta-snapshot bug, which the table hides
    /// (with `--unsafe-no-snapshot-fix`). Takes effect on an empty data directory.
    #[arg(long, hide = true)]
    pub unsafe_snapshot_copy: bool,
    /// Handle inputs in turns that each end with their fsync, instead of handling inputs while
    /// the fsync runs (see `replica::pipeline`). Slower; kept to compare the two.
    #[arg(long)]
    pub turn_loop: bool,
    /// Peers whose links start cut (used by the launcher when it restarts a node).
    #[arg(long = "cut", value_delimiter = ',')]
    pub cut_peers: Vec<NodeId>,
    /// File holding the cluster secret (at least 32 characters, mode 0600; `omnikv demo`
    /// creates one). With it, peers prove they hold it and `/admin` changes need it as a bearer
    /// token. Without it, the node refuses to listen on anything but loopback.
    #[arg(long, env = "OMNIKV_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Origin of a web page allowed to open this node's WebSockets (repeatable; `omnikv demo`
    /// passes its own). Upgrades without an `Origin` header (tools, not browsers) are always
    /// allowed; any other origin is refused.
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Vec<String>,
    /// Test only: deduplicate by the highest applied `seq` per client, the rule that loses
    /// acknowledged pipelined writes. Tests use it to show that they catch that loss.
    #[arg(long, hide = true)]
    pub unsafe_highest_seq_dedup: bool,
    /// Test only: answer every repeat of a follower's promise, as OmniPaxos does, each with a
    /// new snapshot (see `replica::promise_repeats`). Tests use it to show the copies it saves.
    #[arg(long, hide = true)]
    pub unsafe_answer_repeated_promises: bool,
    /// Test only: resend a promise that carries a snapshot every resend timeout, as OmniPaxos
    /// does, while its first copy is on its way (see `replica::promise_repeats`). Tests use it
    /// to show the copies it saves.
    #[arg(long, hide = true)]
    pub unsafe_resend_snapshot_promises: bool,
}

impl NodeConfig {
    /// Loads the cluster secret, if any, and checks that a node without one listens only on
    /// loopback: there, only local processes can reach its `/admin` and peer port.
    pub fn cluster_secret(&self) -> anyhow::Result<Option<Arc<ClusterSecret>>> {
        match &self.secret_file {
            Some(path) => Ok(Some(Arc::new(ClusterSecret::from_file(path)?))),
            None => {
                let public = std::iter::once(self.ws)
                    .chain(self.members.iter().map(|&(_, a)| a))
                    .find(|a| !a.ip().is_loopback());
                if let Some(addr) = public {
                    anyhow::bail!(
                        "{addr} is not a loopback address: a node reachable from other machines needs --secret-file"
                    );
                }
                Ok(None)
            }
        }
    }
}

fn parse_member(s: &str) -> Result<(NodeId, SocketAddr), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=ADDR, got {s:?}"))?;
    let id: NodeId = id.parse().map_err(|e| format!("bad node id {id:?}: {e}"))?;
    if id == 0 {
        return Err("node ids start at 1".into());
    }
    let addr = addr
        .parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
    Ok((id, addr))
}
