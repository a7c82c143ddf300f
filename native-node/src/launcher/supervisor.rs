//! Node processes of the demo: spawn, signal, observe.
//!
//! Each node is a child `omnikv node` process with its own RocksDB directory and log file. The
//! supervisor remembers the operator's link cuts and re-applies them to a node that restarts or
//! resumes, so the picture and the cluster never disagree. Children die with the launcher: they
//! get SIGKILL from the kernel if it exits (PR_SET_PDEATHSIG), and a clean stop kills them all.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    control::{ClusterView, HeldView, LinkView, NodeView, ProcessState},
    event::{NodeStatus, Role},
    NodeId,
};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::scenarios::{all_links, link, Link};
use crate::client;
use crate::secret::ClusterSecret;

const ADMIN_TIMEOUT: Duration = Duration::from_millis(400);
/// How long a node may take to confirm a link change before the change is undone.
const LINK_CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no node {0} in this cluster")]
    UnknownNode(NodeId),
    #[error("node {id} is {state:?}")]
    WrongState { id: NodeId, state: ProcessState },
    #[error("{0}")]
    Failed(String),
    /// The request names something that cannot be (a link from a node to itself).
    #[error("{0}")]
    BadRequest(String),
    /// The node refused it in its current state (delivering on a link it does not hold).
    #[error("{0}")]
    Refused(String),
    /// A running node did not apply a change; what others applied was taken back.
    #[error("{0}")]
    NotConfirmed(String),
}

#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub id: NodeId,
    pub peer_addr: SocketAddr,
    pub ws_addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl NodeSpec {
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }
}

struct Proc {
    child: Option<Child>,
    state: ProcessState,
}

pub struct Supervisor {
    exe: PathBuf,
    specs: BTreeMap<NodeId, NodeSpec>,
    node_args: Vec<String>,
    procs: Mutex<BTreeMap<NodeId, Proc>>,
    /// Links the operator has cut.
    cut: Mutex<BTreeSet<Link>>,
    cluster_id: String,
    /// The cluster secret its nodes were given: the launcher's link changes need it.
    secret: Option<Arc<ClusterSecret>>,
}

/// `n` distinct free loopback ports below Linux's ephemeral range (32768 and up), so that no
/// outgoing connection takes one between now and the moment a node binds it. All are held
/// until all are chosen, so none is handed out twice.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n * 1000 {
        if held.len() == n {
            break;
        }
        let port = rand::random::<u16>() % 12_000 + 20_000;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    while held.len() < n {
        held.push(TcpListener::bind("127.0.0.1:0")?);
    }
    held.iter().map(|l| Ok(l.local_addr()?)).collect()
}

impl Supervisor {
    pub fn new(
        exe: PathBuf,
        nodes: u64,
        data_dir: &Path,
        node_args: Vec<String>,
        secret: Option<Arc<ClusterSecret>>,
    ) -> anyhow::Result<Arc<Supervisor>> {
        let mut specs = BTreeMap::new();
        let mut ports = free_ports(2 * nodes as usize)?.into_iter();
        for id in 1..=nodes {
            specs.insert(
                id,
                NodeSpec {
                    id,
                    peer_addr: ports.next().expect("two ports per node"),
                    ws_addr: ports.next().expect("two ports per node"),
                    data_dir: super::data_dir::node_dir(data_dir, id),
                },
            );
        }
        Ok(Arc::new(Supervisor {
            exe,
            specs,
            node_args,
            procs: Mutex::new(BTreeMap::new()),
            cut: Mutex::new(BTreeSet::new()),
            cluster_id: super::data_dir::cluster_id(data_dir, nodes)?,
            secret,
        }))
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.specs.keys().copied().collect()
    }

    pub fn spec(&self, id: NodeId) -> Result<&NodeSpec, ControlError> {
        self.specs.get(&id).ok_or(ControlError::UnknownNode(id))
    }

    /// `a`-`b` names a link: two nodes of this cluster, not the same.
    pub fn check_pair(&self, a: NodeId, b: NodeId) -> Result<(), ControlError> {
        self.spec(a)?;
        self.spec(b)?;
        if a == b {
            return Err(ControlError::BadRequest(format!(
                "node {a} has no link to itself"
            )));
        }
        Ok(())
    }

    pub async fn start_all(&self) -> anyhow::Result<()> {
        let mut procs = self.procs.lock().await;
        for &id in self.specs.keys() {
            let child = self.spawn(id, &BTreeSet::new())?;
            procs.insert(
                id,
                Proc {
                    child: Some(child),
                    state: ProcessState::Up,
                },
            );
        }
        Ok(())
    }

    fn spawn(&self, id: NodeId, cut: &BTreeSet<Link>) -> anyhow::Result<Child> {
        let spec = &self.specs[&id];
        std::fs::create_dir_all(&spec.data_dir)?;
        let log_path = spec.data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("node")
            .args(["--id", &id.to_string()])
            .args(["--cluster-id", &self.cluster_id])
            .args(["--ws", &spec.ws_addr.to_string()])
            .arg("--data-dir")
            .arg(&spec.data_dir);
        for s in self.specs.values() {
            cmd.arg("--member").arg(format!("{}={}", s.id, s.peer_addr));
        }
        let cut_peers: Vec<String> = cut
            .iter()
            .filter_map(|&(a, b)| {
                if a == id {
                    Some(b)
                } else if b == id {
                    Some(a)
                } else {
                    None
                }
            })
            .map(|p| p.to_string())
            .collect();
        if !cut_peers.is_empty() {
            cmd.arg("--cut").arg(cut_peers.join(","));
        }
        cmd.args(&self.node_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().with_context(|| format!("spawning node {id}"))?;
        info!(id, pid = child.id(), log = %log_path.display(), "node started");
        Ok(child)
    }

    /// One admin request to node `id`, with the cluster secret.
    pub(super) async fn admin(
        &self,
        id: NodeId,
        req: &AdminRequest,
    ) -> Result<AdminResponse, client::ConnectionError> {
        let secret = self.secret.as_deref().map(ClusterSecret::bearer);
        client::admin_as(&self.specs[&id].ws_url(), req, ADMIN_TIMEOUT, secret).await
    }

    async fn refresh(procs: &mut BTreeMap<NodeId, Proc>) {
        for (id, p) in procs.iter_mut() {
            if let Some(child) = &mut p.child {
                if let Ok(Some(status)) = child.try_wait() {
                    warn!(id, %status, "node exited");
                    p.child = None;
                    p.state = ProcessState::Down;
                }
            }
        }
    }

    pub async fn kill(&self, id: NodeId) -> Result<(), ControlError> {
        self.spec(id)?;
        let mut procs = self.procs.lock().await;
        Self::refresh(&mut procs).await;
        let p = procs.get_mut(&id).expect("every spec has a proc");
        let Some(mut child) = p.child.take() else {
            return Err(ControlError::WrongState { id, state: p.state });
        };
        child
            .start_kill()
            .map_err(|e| ControlError::Failed(e.to_string()))?;
        let _ = child.wait().await;
        p.state = ProcessState::Down;
        info!(id, "node killed (SIGKILL)");
        Ok(())
    }

    pub async fn restart(&self, id: NodeId) -> Result<(), ControlError> {
        self.spec(id)?;
        {
            let mut procs = self.procs.lock().await;
            Self::refresh(&mut procs).await;
            let p = procs.get_mut(&id).expect("every spec has a proc");
            if let Some(mut child) = p.child.take() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            let cut = self.cut.lock().await.clone();
            let child = self
                .spawn(id, &cut)
                .map_err(|e| ControlError::Failed(e.to_string()))?;
            p.child = Some(child);
            p.state = ProcessState::Up;
        }
        Ok(())
    }

    async fn signal(
        &self,
        id: NodeId,
        signal: Signal,
        from: ProcessState,
        to: ProcessState,
    ) -> Result<(), ControlError> {
        self.spec(id)?;
        let mut procs = self.procs.lock().await;
        Self::refresh(&mut procs).await;
        let p = procs.get_mut(&id).expect("every spec has a proc");
        let pid = match (&p.child, p.state) {
            (Some(child), state) if state == from => child.id(),
            (_, state) => return Err(ControlError::WrongState { id, state }),
        };
        let pid = pid.ok_or_else(|| ControlError::Failed("process has no pid".into()))?;
        kill(Pid::from_raw(pid as i32), signal).map_err(|e| ControlError::Failed(e.to_string()))?;
        p.state = to;
        info!(id, ?signal, "node signalled");
        Ok(())
    }

    pub async fn pause(&self, id: NodeId) -> Result<(), ControlError> {
        self.signal(id, Signal::SIGSTOP, ProcessState::Up, ProcessState::Paused)
            .await
    }

    pub async fn resume(&self, id: NodeId) -> Result<(), ControlError> {
        self.signal(id, Signal::SIGCONT, ProcessState::Paused, ProcessState::Up)
            .await?;
        // Link changes made while it was stopped did not reach it.
        self.push_links(id).await;
        Ok(())
    }

    /// Sends a node the state of all its links.
    async fn push_links(&self, id: NodeId) {
        let cut = self.cut.lock().await.clone();
        for &peer in self.specs.keys().filter(|&&p| p != id) {
            let connected = !cut.contains(&link(id, peer));
            let req = AdminRequest::SetLink { peer, connected };
            let _ = self.admin(id, &req).await;
        }
    }

    /// Makes `cut` the set of cut links, telling every running node about its changes.
    pub async fn set_cut_links(&self, cut: BTreeSet<Link>) -> Result<(), ControlError> {
        for &(a, b) in &cut {
            self.spec(a)?;
            self.spec(b)?;
            if a == b {
                return Err(ControlError::Failed(format!(
                    "node {a} has no link to itself"
                )));
            }
        }
        let states: BTreeMap<NodeId, ProcessState> = {
            let mut procs = self.procs.lock().await;
            Self::refresh(&mut procs).await;
            procs.iter().map(|(&id, p)| (id, p.state)).collect()
        };
        // Held until every node has answered: changes apply one at a time, and an undo
        // restores exactly what this change replaced.
        let mut current = self.cut.lock().await;
        let changes: Vec<(NodeId, NodeId, bool)> = all_links(&self.node_ids())
            .into_iter()
            .filter(|l| current.contains(l) != cut.contains(l))
            .flat_map(|(a, b)| {
                let connected = !cut.contains(&(a, b));
                [(a, b, connected), (b, a, connected)]
            })
            // A node that is down or paused gets its links when it restarts or resumes.
            .filter(|(node, _, _)| states.get(node) == Some(&ProcessState::Up))
            .collect();
        let mut applied = Vec::new();
        let mut refusal = None;
        for (node, peer, connected) in changes {
            match self.confirm_link(node, peer, connected).await {
                Ok(()) => applied.push((node, peer, connected)),
                Err(reason) => {
                    refusal = Some(format!("node {node} did not confirm ({reason})"));
                    break;
                }
            }
        }
        let Some(refusal) = refusal else {
            *current = cut;
            info!(cut = ?*current, "links set");
            return Ok(());
        };
        // An error must change nothing: take back what the other nodes applied.
        let mut undo_failed = Vec::new();
        for (node, peer, connected) in applied.into_iter().rev() {
            if self.confirm_link(node, peer, !connected).await.is_err() {
                undo_failed.push(node);
            }
        }
        warn!(%refusal, ?undo_failed, "link change not applied");
        Err(ControlError::NotConfirmed(if undo_failed.is_empty() {
            format!("link change refused: {refusal}; nothing was changed")
        } else {
            format!(
                "link change refused: {refusal}; undoing it failed on nodes {undo_failed:?}, whose links may differ from /api/cluster"
            )
        }))
    }

    /// Sets one node's link and waits for its answer, retrying briefly (a node that has just
    /// been restarted may not be listening yet).
    async fn confirm_link(
        &self,
        node: NodeId,
        peer: NodeId,
        connected: bool,
    ) -> Result<(), String> {
        let req = AdminRequest::SetLink { peer, connected };
        let deadline = tokio::time::Instant::now() + LINK_CONFIRM_TIMEOUT;
        loop {
            let last = match self.admin(node, &req).await {
                Ok(AdminResponse::Ok) => return Ok(()),
                Ok(AdminResponse::Error { message }) => return Err(message),
                Ok(other) => return Err(format!("unexpected answer {other:?}")),
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn set_link(
        &self,
        a: NodeId,
        b: NodeId,
        connected: bool,
    ) -> Result<(), ControlError> {
        self.check_pair(a, b)?;
        let mut cut = self.cut.lock().await.clone();
        if connected {
            cut.remove(&link(a, b));
        } else {
            cut.insert(link(a, b));
        }
        self.set_cut_links(cut).await
    }

    pub async fn statuses(&self) -> BTreeMap<NodeId, NodeStatus> {
        let states: BTreeMap<NodeId, ProcessState> = {
            let mut procs = self.procs.lock().await;
            Self::refresh(&mut procs).await;
            procs.iter().map(|(&id, p)| (id, p.state)).collect()
        };
        let queries = self
            .specs
            .values()
            .filter(|s| states.get(&s.id) == Some(&ProcessState::Up))
            .map(|s| async move {
                let r = self.admin(s.id, &AdminRequest::Status).await;
                (s.id, r)
            });
        futures_util::future::join_all(queries)
            .await
            .into_iter()
            .filter_map(|(id, r)| match r {
                Ok(AdminResponse::Status(st)) => Some((id, st)),
                _ => None,
            })
            .collect()
    }

    pub async fn view(&self) -> ClusterView {
        let statuses = self.statuses().await;
        let procs = self.procs.lock().await;
        let cut = self.cut.lock().await.clone();
        let leader = statuses
            .values()
            .filter(|s| s.role == Role::Leader)
            .max_by_key(|s| s.ballot)
            .map(|s| s.id);
        let nodes = self
            .specs
            .values()
            .map(|s| {
                let p = &procs[&s.id];
                let status = statuses.get(&s.id);
                NodeView {
                    id: s.id,
                    state: p.state,
                    role: status.map(|st| st.role),
                    ballot: status.map(|st| st.ballot),
                    ws: s.ws_url(),
                    pid: p.child.as_ref().and_then(|c| c.id()),
                    data_dir: s.data_dir.display().to_string(),
                    peer_addr: s.peer_addr.to_string(),
                }
            })
            .collect();
        let links = all_links(&self.node_ids())
            .into_iter()
            .map(|(a, b)| LinkView {
                a,
                b,
                connected: !cut.contains(&(a, b)),
                held: held_views(statuses.values(), a, b),
            })
            .collect();
        ClusterView {
            leader,
            nodes,
            links,
        }
    }

    pub fn ws_urls(&self) -> Vec<String> {
        self.specs.values().map(NodeSpec::ws_url).collect()
    }

    /// Stops every node: SIGTERM, then SIGKILL for any that has not exited within a second.
    pub async fn stop_all(&self) {
        let mut procs = self.procs.lock().await;
        for p in procs.values_mut() {
            if let Some(child) = &p.child {
                if let Some(pid) = child.id() {
                    let pid = Pid::from_raw(pid as i32);
                    let _ = kill(pid, Signal::SIGCONT);
                    let _ = kill(pid, Signal::SIGTERM);
                }
            }
        }
        for (id, p) in procs.iter_mut() {
            if let Some(mut child) = p.child.take() {
                if tokio::time::timeout(Duration::from_secs(1), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
                info!(id, "node stopped");
            }
            p.state = ProcessState::Down;
        }
    }
}

/// The held directions of link `a`-`b`, as the nodes report them.
fn held_views<'a>(
    statuses: impl IntoIterator<Item = &'a NodeStatus>,
    a: NodeId,
    b: NodeId,
) -> Vec<HeldView> {
    statuses
        .into_iter()
        .flat_map(|s| s.peers.iter().map(move |p| (s.id, p)))
        .filter(|(from, p)| p.held && ((*from, p.id) == (a, b) || (*from, p.id) == (b, a)))
        .map(|(from, p)| HeldView {
            from,
            to: p.id,
            waiting: p.waiting,
        })
        .collect()
}
