//! Test harness: real `omnikv` processes on loopback, with random free ports and temporary data
//! directories.
//!
//! [`Cluster`] runs `omnikv node` processes directly, so tests control each process (SIGKILL,
//! SIGSTOP, wiping a data directory). [`Demo`] runs `omnikv demo` and talks to its HTTP control
//! API, so the launcher is tested as users drive it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omnikv_core::{
    admin::{AdminRequest, AdminResponse, NodeDump},
    digest::TableDigest,
    event::{NodeStatus, Role},
    KVSnapshot, NodeId,
};
use omnikv_node::client::{self, Client};

/// The `omnikv` binary under test: `$OMNIKV_BIN`, or the one next to this test's build.
pub fn omnikv_bin() -> PathBuf {
    if let Ok(p) = std::env::var("OMNIKV_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join("omnikv");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (cargo build -p omnikv-node)",
        bin.display()
    );
    bin
}

/// An `omnikv` command that dies with the test, for runs a test starts and waits for itself
/// (a command that should refuse and exit).
pub fn omnikv_command() -> Command {
    let mut cmd = Command::new(omnikv_bin());
    die_with_parent(&mut cmd);
    cmd
}

/// A test killed midway (a timeout, a closed pipe) must not leave nodes running.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
}

pub fn free_addr() -> SocketAddr {
    free_addrs(1)[0]
}

/// `n` distinct free loopback addresses.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    omnikv_node::launcher::supervisor::free_ports(n).expect("free loopback ports")
}

const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);

pub struct NodeProc {
    pub id: NodeId,
    pub ws: SocketAddr,
    pub peer: SocketAddr,
    pub data_dir: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: BTreeMap<NodeId, NodeProc>,
    args: Vec<String>,
    /// The cluster secret every node is given (`--secret-file`), as `omnikv demo` does.
    pub secret: String,
}

impl Cluster {
    /// Starts `n` nodes with extra `args` for every node.
    pub fn start(n: u64, args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = BTreeMap::new();
        let mut addrs = free_addrs(2 * n as usize).into_iter();
        for id in 1..=n {
            nodes.insert(
                id,
                NodeProc {
                    id,
                    ws: addrs.next().unwrap(),
                    peer: addrs.next().unwrap(),
                    data_dir: dir.path().join(format!("node-{id}")),
                    child: None,
                },
            );
        }
        let secret_file = dir.path().join("secret");
        let secret = omnikv_node::secret::ClusterSecret::load_or_create(&secret_file)
            .expect("creating the cluster secret");
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push("--secret-file".into());
        args.push(secret_file.display().to_string());
        let mut c = Cluster {
            dir,
            nodes,
            args,
            secret: secret.bearer().to_string(),
        };
        for attempt in 0.. {
            for id in 1..=n {
                c.spawn(id);
            }
            if c.all_listening(Duration::from_secs(10)) {
                break;
            }
            // Another process took a port first: start over on fresh ports.
            assert!(
                attempt < 3,
                "nodes did not start; see the logs in {}",
                c.dir.path().display()
            );
            let mut addrs = free_addrs(2 * n as usize).into_iter();
            for node in c.nodes.values_mut() {
                if let Some(mut child) = node.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                node.ws = addrs.next().unwrap();
                node.peer = addrs.next().unwrap();
            }
        }
        c
    }

    /// Whether every node accepts connections on its WebSocket port within `timeout`.
    fn all_listening(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let ids = self.ids();
        ids.iter().all(|&id| self.accepting(id, deadline)) && self.still_running(&ids)
    }

    /// Whether node `id` accepts connections on its WebSocket port before `deadline`; false as
    /// soon as its process exits (e.g. it could not bind a port).
    fn accepting(&mut self, id: NodeId, deadline: Instant) -> bool {
        let node = self.nodes.get_mut(&id).unwrap();
        loop {
            if std::net::TcpStream::connect(node.ws).is_ok() {
                return true;
            }
            let exited = node
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A port answered by someone else hides a node that failed to bind it: the nodes just
    /// started must still be running a moment later.
    fn still_running(&mut self, ids: &[NodeId]) -> bool {
        std::thread::sleep(Duration::from_millis(200));
        ids.iter().all(|id| {
            self.nodes
                .get_mut(id)
                .unwrap()
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
        })
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// How node `id`'s process ended, if it has; the node is then down (a restart starts it).
    pub fn exit_status(&mut self, id: NodeId) -> Option<std::process::ExitStatus> {
        let node = self.nodes.get_mut(&id).unwrap();
        let status = node.child.as_mut()?.try_wait().ok()??;
        node.child = None;
        Some(status)
    }

    fn spawn(&mut self, id: NodeId) {
        let members: Vec<String> = self
            .nodes
            .values()
            .map(|n| format!("{}={}", n.id, n.peer))
            .collect();
        let node = self.nodes.get_mut(&id).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.data_dir.with_extension("log"))
            .unwrap();
        let mut cmd = Command::new(omnikv_bin());
        cmd.arg("node")
            .args([
                "--id",
                &id.to_string(),
                "--ws",
                &node.ws.to_string(),
                "--cluster-id",
                "test",
            ])
            .arg("--data-dir")
            .arg(&node.data_dir);
        for m in &members {
            cmd.args(["--member", m]);
        }
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        die_with_parent(&mut cmd);
        node.child = Some(cmd.spawn().expect("spawning omnikv node"));
    }

    pub fn url(&self, id: NodeId) -> String {
        format!("ws://{}", self.nodes[&id].ws)
    }

    pub fn urls(&self) -> Vec<String> {
        self.ids().into_iter().map(|id| self.url(id)).collect()
    }

    /// A client that tries `ids` in order.
    pub fn client_of(&self, ids: &[NodeId]) -> Client {
        Client::new(ids.iter().map(|&id| self.url(id)).collect())
    }

    pub fn pid(&self, id: NodeId) -> u32 {
        self.nodes[&id]
            .child
            .as_ref()
            .expect("node is running")
            .id()
    }

    /// SIGKILL.
    pub fn kill(&mut self, id: NodeId) {
        if let Some(mut child) = self.nodes.get_mut(&id).unwrap().child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGKILLs every running node before waiting for any, so that the cluster dies at once
    /// rather than one node after another.
    pub fn kill_all(&mut self) {
        let mut children: Vec<Child> = self
            .nodes
            .values_mut()
            .filter_map(|n| n.child.take())
            .collect();
        for child in &mut children {
            child.kill().unwrap();
        }
        for mut child in children {
            child.wait().unwrap();
        }
    }

    /// Starts a node again on its data directory and its ports. Its ports are free only while
    /// it is down, so another process may take one meanwhile; the node then exits, and it is
    /// started again after a pause, as [`Cluster::start`] does. (Unlike `start`, it cannot move
    /// to fresh ports: the other nodes know it by its peer address.)
    pub fn restart(&mut self, id: NodeId) {
        self.kill(id);
        for attempt in 0.. {
            self.spawn(id);
            let deadline = Instant::now() + Duration::from_secs(10);
            if self.accepting(id, deadline) && self.still_running(&[id]) {
                return;
            }
            assert!(
                attempt < 5,
                "node {id} did not restart; see {}",
                self.nodes[&id].data_dir.with_extension("log").display()
            );
            self.kill(id);
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn signal(&self, id: NodeId, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid(id).to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Node `id`'s data directory.
    pub fn data_dir(&self, id: NodeId) -> &Path {
        &self.nodes[&id].data_dir
    }

    /// Deletes a stopped node's data directory.
    pub fn wipe(&mut self, id: NodeId) {
        assert!(self.nodes[&id].child.is_none(), "wipe a stopped node");
        let _ = std::fs::remove_dir_all(&self.nodes[&id].data_dir);
    }

    /// How many lines of node `id`'s log (kept across its restarts) contain `needle`.
    pub fn log_lines(&self, id: NodeId, needle: &str) -> usize {
        self.log_matching(id, &[needle]).len()
    }

    /// The lines of node `id`'s log that contain any of `needles`, to explain a failure.
    pub fn log_matching(&self, id: NodeId, needles: &[&str]) -> Vec<String> {
        let path = self.nodes[&id].data_dir.with_extension("log");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .lines()
            .filter(|l| needles.iter().any(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }

    pub fn is_running(&self, id: NodeId) -> bool {
        self.nodes[&id].child.is_some()
    }

    pub async fn admin(&self, id: NodeId, req: AdminRequest) -> Option<AdminResponse> {
        client::admin_as(&self.url(id), &req, ADMIN_TIMEOUT, Some(&self.secret))
            .await
            .ok()
    }

    pub async fn status(&self, id: NodeId) -> Option<NodeStatus> {
        match self.admin(id, AdminRequest::Status).await {
            Some(AdminResponse::Status(s)) => Some(s),
            _ => None,
        }
    }

    /// Watches node `id`'s `/events` (and reads them) until the task is aborted: a node keeps
    /// its table's digest only while someone watches.
    pub async fn watch_events(&self, id: NodeId) -> tokio::task::JoinHandle<()> {
        let mut conn = client::Connection::open(&self.url(id), "events", Duration::from_secs(5))
            .await
            .expect("subscribing to /events");
        tokio::spawn(
            async move { while conn.recv_text(Duration::from_secs(3600)).await.is_ok() {} },
        )
    }

    /// Every node's table digest, once each is known, at its node's applied index, and all are
    /// at one applied index.
    pub async fn wait_equal_digests(&self, timeout: Duration) -> TableDigest {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            seen.clear();
            for id in self.ids() {
                let status = self.status(id).await;
                seen.push(status.map(|s| (s.applied_idx, s.kv_digest_idx, s.kv_digest)));
            }
            // Equal, known, and at the applied index: the folds have caught up with the table.
            if let Some((idx, Some(at), Some(d))) = seen[0] {
                if idx == at && seen.iter().all(|s| *s == seen[0]) {
                    return d;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("digests never known and equal: {seen:?}");
    }

    pub async fn dump(&self, id: NodeId) -> NodeDump {
        match self.admin(id, AdminRequest::Dump).await {
            Some(AdminResponse::Dump(d)) => *d,
            other => panic!("node {id} gave no dump: {other:?}"),
        }
    }

    /// Dumps every node and asserts they hold identical data (see [`assert_identical`]), once
    /// each has applied what the most advanced one has decided: a follower learns that an
    /// entry is decided with the leader's next message, so a dump taken right after a reply
    /// may be one entry behind without anything being wrong.
    pub async fn assert_replicas_identical(&self) {
        let mut decided = 0;
        for id in self.ids() {
            let status = self.status(id).await;
            decided = decided.max(status.map_or(0, |s| s.decided_idx));
        }
        self.wait_applied(&self.ids(), decided, Duration::from_secs(10))
            .await;
        let mut dumps = Vec::new();
        for id in self.ids() {
            dumps.push(self.dump(id).await);
        }
        assert_identical(&dumps);
    }

    /// Cuts or heals the link a-b on both nodes.
    pub async fn set_link(&self, a: NodeId, b: NodeId, connected: bool) {
        for (node, peer) in [(a, b), (b, a)] {
            if self.is_running(node) {
                // A busy machine can delay one admin exchange; a few attempts keep the
                // test about the cluster, not the machine.
                let mut r = None;
                for _ in 0..5 {
                    r = self
                        .admin(node, AdminRequest::SetLink { peer, connected })
                        .await;
                    if r.is_some() {
                        break;
                    }
                }
                assert_eq!(r, Some(AdminResponse::Ok), "set link on node {node}");
            }
        }
    }

    /// Waits until a running node reports itself leader in the accept phase, and every
    /// running node among `among` agrees.
    pub async fn wait_leader(&self, among: &[NodeId], timeout: Duration) -> NodeId {
        let deadline = Instant::now() + timeout;
        loop {
            let mut leaders = Vec::new();
            let mut views = Vec::new();
            for &id in among {
                if let Some(s) = self.status(id).await {
                    if s.role == Role::Leader {
                        leaders.push(id);
                    }
                    views.push(s.leader);
                }
            }
            // Every node asked about must answer: a node that died unnoticed fails here.
            if views.len() == among.len()
                && leaders.len() == 1
                && views.iter().all(|&l| l == Some(leaders[0]))
            {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {among:?} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A running node that reports itself leader now, if any.
    pub async fn current_leader(&self) -> Option<NodeId> {
        for id in self.ids() {
            if self.is_running(id)
                && self
                    .status(id)
                    .await
                    .is_some_and(|s| s.role == Role::Leader)
            {
                return Some(id);
            }
        }
        None
    }

    /// Every node but `id`.
    pub fn others(&self, id: NodeId) -> Vec<NodeId> {
        self.ids().into_iter().filter(|&n| n != id).collect()
    }

    /// Waits until every node in `ids` has applied what `source` has decided by now.
    pub async fn wait_caught_up(&self, source: NodeId, ids: &[NodeId], timeout: Duration) {
        let decided = self
            .status(source)
            .await
            .expect("source node answers")
            .decided_idx;
        self.wait_applied(ids, decided, timeout).await;
    }

    /// Waits until every node in `ids` has applied at least `idx`.
    pub async fn wait_applied(&self, ids: &[NodeId], idx: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for &id in ids {
            loop {
                if self.status(id).await.is_some_and(|s| s.applied_idx >= idx) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {id} did not apply {idx} within {timeout:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the nodes' data and logs of a failed test for inspection.
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("test data and node logs kept in {}", dir.keep().display());
        }
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The state a replica's decided log folds to: its snapshot plus its decided suffix. A snapshot
/// can hold more than the compacted prefix (a node's table serves as its snapshot once it has
/// compacted): the entries it holds are not folded again.
pub fn decided_state(dump: &NodeDump) -> KVSnapshot {
    let mut state = dump.snapshot.clone().unwrap_or_default();
    let held = state.len.max(dump.compacted_idx);
    state.len = held;
    let skip = (held - dump.compacted_idx) as usize;
    for cmd in dump.decided_suffix.iter().skip(skip) {
        state.push(cmd);
    }
    state
}

/// Asserts that replicas hold the same data: KV tables, sessions, and the decided log's fold;
/// and that each replica's KV table is the fold of its own log.
pub fn assert_identical(dumps: &[NodeDump]) {
    let first = &dumps[0];
    for d in dumps {
        let state = decided_state(d);
        assert_eq!(
            d.applied_idx, d.decided_idx,
            "node {} has not applied everything",
            d.id
        );
        assert_eq!(
            d.kv, state.snapshotted,
            "node {}: KV table differs from the fold of its log",
            d.id
        );
        assert_eq!(
            d.sessions, state.sessions,
            "node {}: sessions differ from the fold of its log",
            d.id
        );
        assert_eq!(
            d.decided_idx, first.decided_idx,
            "decided index of {} vs {}",
            d.id, first.id
        );
        assert_eq!(d.kv, first.kv, "KV table of {} vs {}", d.id, first.id);
        assert_eq!(
            state,
            decided_state(first),
            "decided prefix of {} vs {}",
            d.id,
            first.id
        );
        // Where both still hold entries, they are the same entries.
        let from = d.compacted_idx.max(first.compacted_idx);
        let ours = &d.decided_suffix[(from - d.compacted_idx) as usize..];
        let theirs = &first.decided_suffix[(from - first.compacted_idx) as usize..];
        assert_eq!(
            ours, theirs,
            "log entries from {from} of {} vs {}",
            d.id, first.id
        );
    }
}

/// `omnikv demo`, driven through its HTTP API.
pub struct Demo {
    pub http: String,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Demo {
    /// Starts a demo of `nodes` nodes on a new data directory, with extra `args`.
    pub fn start(nodes: u64, args: &[&str]) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let nodes = nodes.to_string();
        let mut all = vec!["--nodes", nodes.as_str(), "--fresh"];
        all.extend_from_slice(args);
        Demo::start_on(dir, &data_dir, &all)
    }

    /// Starts a demo with `args` on `data_dir`, which may outlive it; its log goes to `dir`.
    pub fn start_on(dir: tempfile::TempDir, data_dir: &Path, args: &[&str]) -> Demo {
        let mut child = Command::new(omnikv_bin())
            .args(["demo", "--http", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--web-dir")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../web"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("demo.log")).unwrap(),
            ))
            .spawn()
            .expect("spawning omnikv demo");
        let stdout = child.stdout.take().unwrap();
        let mut http = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("http://") {
                http = Some(format!("http://{rest}"));
                break;
            }
        }
        Demo {
            http: http.expect("demo printed its URL"),
            child,
            dir,
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        call(ureq::get(&format!("{}{path}", self.http)), None)
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        call(ureq::post(&format!("{}{path}", self.http)), Some(body))
    }

    pub fn cluster(&self) -> omnikv_core::control::ClusterView {
        let (code, body) = self.get("/api/cluster");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn urls(&self) -> Vec<String> {
        self.cluster().nodes.into_iter().map(|n| n.ws).collect()
    }

    /// Waits for a leader the launcher reports; returns it.
    pub fn wait_leader(&self, timeout: Duration) -> NodeId {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.cluster().leader {
                return l;
            }
            assert!(Instant::now() < deadline, "no leader within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the demo as Ctrl-C does.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

fn call(req: ureq::Request, body: Option<&str>) -> (u16, String) {
    let req = req.timeout(Duration::from_secs(10));
    let result = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("HTTP call failed: {e}"),
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod model;
pub mod nemesis;
pub mod pipeline;
pub mod sim;
