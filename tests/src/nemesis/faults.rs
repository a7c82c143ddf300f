//! The fault schedule: overlapping faults with random durations, drawn from one seed.
//!
//! Each node is up, paused (SIGSTOP) or down (SIGKILLed), until a time drawn when the fault
//! began; link cuts are counted per link, so that overlapping cuts heal only when the last one
//! ends. A node that comes back gets the cuts that are still in force. Besides random faults,
//! every run is sure to contain the overlaps a one-at-a-time nemesis never produces: a kill
//! during a partition, a SIGKILL of the whole cluster, and on 5 nodes two nodes down at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use omnikv_core::{admin::AdminRequest, admin::AdminResponse, control::Scenario, NodeId};
use omnikv_core::{event::BallotView, event::Role};
use omnikv_node::launcher::scenarios::{self, Link};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::time::Instant;

use super::holds::Holds;
use super::trace::FaultState;
use super::NemesisConfig;
use crate::Cluster;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    Up,
    Paused { until: Instant },
    Down { until: Instant },
}

/// A fault that begins at a set time rather than at random.
#[derive(Clone, Copy, Debug)]
enum Planned {
    /// Waits until every node is up, then begins (the overlaps every run must contain).
    Episode(&'static str),
    /// The second step of an episode: begins at its time whatever the cluster's state.
    Kill,
}

/// How much the faults overlapped, for the report and for the tests' own assertions.
#[derive(Clone, Debug, Default)]
pub struct Overlaps {
    /// Kills that began while some link was cut.
    pub kills_during_cuts: u64,
    /// The most nodes SIGKILLed at the same time, whole-cluster crashes aside.
    pub most_down_at_once: u64,
    /// SIGKILLs of every node at once.
    pub cluster_crashes: u64,
}

pub struct Faults {
    rng: StdRng,
    ids: Vec<NodeId>,
    kinds: &'static [&'static str],
    state: BTreeMap<NodeId, NodeState>,
    /// Active cuts per link; a link is cut while its count is above 0.
    cut_count: BTreeMap<Link, u32>,
    cuts: Vec<(Instant, BTreeSet<Link>)>,
    planned: Vec<(Instant, Planned)>,
    next_random: Instant,
    last_leader: Option<(NodeId, BallotView)>,
    holds: Holds,
    /// Faults begun, by kind.
    pub counts: BTreeMap<&'static str, u64>,
    pub overlaps: Overlaps,
    pub leader_changes: u64,
}

const ALL_KINDS: &[&str] = &[
    "kill",
    "pause",
    "partition",
    "isolate",
    "quorum-loss",
    "constrained",
    "chained",
    "hold",
];
/// A long run repeats the planned episodes once per this much time.
const EPISODE_PERIOD: Duration = Duration::from_secs(35);
const LINK_KINDS: &[&str] = &["partition", "isolate", "chained", "quorum-loss", "hold"];

impl Faults {
    pub fn new(config: &NemesisConfig, ids: Vec<NodeId>, start: Instant) -> Faults {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut planned = Vec::new();
        if !config.partitions_only {
            let mut episodes = vec!["crash-all", "kill-in-partition"];
            if ids.len() >= 5 {
                episodes.push("two-down");
            }
            // Each episode once per period of about `EPISODE_PERIOD` (once in a short run),
            // early enough in it that waiting for every node to be up still leaves time.
            let periods = config.duration.as_secs_f64() / EPISODE_PERIOD.as_secs_f64();
            let periods = periods.ceil().max(1.0) as u32;
            let period = config.duration / periods;
            for p in 0..periods {
                for &e in &episodes {
                    let at = period * p + period.mul_f64(rng.gen_range(0.1..0.6));
                    planned.push((start + at, Planned::Episode(e)));
                }
            }
        }
        let state = ids.iter().map(|&id| (id, NodeState::Up)).collect();
        Faults {
            rng,
            ids,
            kinds: if config.partitions_only {
                LINK_KINDS
            } else {
                ALL_KINDS
            },
            state,
            cut_count: BTreeMap::new(),
            cuts: Vec::new(),
            planned,
            next_random: start,
            last_leader: None,
            holds: Holds::default(),
            counts: BTreeMap::new(),
            overlaps: Overlaps::default(),
            leader_changes: 0,
        }
    }

    /// Ends the faults whose time has come, then begins those whose time has come. A planned
    /// kill goes first: it is planned inside a fault (100-800 ms into a cut of 1-2.5 s), so its
    /// time came before that fault's end, and a turn that comes late (a slow control call on a
    /// loaded machine) must not heal the cut before the kill meant to fall inside it.
    pub async fn step(&mut self, cluster: &mut Cluster) {
        let now = Instant::now();
        let killed = self.kill_planned(cluster, now).await;
        self.end_due(cluster, now).await;
        let up = self.up();
        self.holds.step(cluster, &mut self.rng, now, &up).await;
        self.sample_leader(cluster).await;
        if killed || self.begin_planned(cluster, now).await {
            return;
        }
        let active = self.nodes_not_up() + self.cuts.len() + self.holds.active();
        if now >= self.next_random && active < self.ids.len() / 2 + 1 {
            let kind = self.kinds[self.rng.gen_range(0..self.kinds.len())];
            self.begin(cluster, kind).await;
            self.next_random = now + Duration::from_millis(self.rng.gen_range(100..900));
        }
    }

    /// Carries out a planned kill whose time has come; true if there was one.
    async fn kill_planned(&mut self, cluster: &mut Cluster, now: Instant) -> bool {
        let mut planned = self.planned.iter();
        let kill = planned.position(|(at, p)| *at <= now && matches!(p, Planned::Kill));
        let Some(i) = kill else {
            return false;
        };
        self.planned.remove(i);
        self.kill(cluster, 600..2500).await;
        true
    }

    /// Begins a planned episode whose time has come; true if one is due (a due episode holds
    /// random faults back until it has begun).
    async fn begin_planned(&mut self, cluster: &mut Cluster, now: Instant) -> bool {
        let is_due = |at: &Instant| *at <= now;
        let mut planned = self.planned.iter();
        let episode = planned.position(|(at, p)| is_due(at) && matches!(p, Planned::Episode(_)));
        let Some(i) = episode else {
            return false;
        };
        // An episode starts from a whole cluster, and not before the last one's second step,
        // so that what it is meant to show is not lost in other faults.
        let second_step_pending = self.planned.iter().any(|(_, p)| matches!(p, Planned::Kill));
        if self.nodes_not_up() == 0 && !second_step_pending {
            if let (_, Planned::Episode(e)) = self.planned.remove(i) {
                self.begin_episode(cluster, e).await;
            }
        }
        true
    }

    /// Ends every fault: nodes restarted or resumed, every link connected.
    pub async fn heal_all(&mut self, cluster: &mut Cluster) {
        self.planned.clear();
        let now = Instant::now();
        for s in self.state.values_mut() {
            if let NodeState::Paused { until } | NodeState::Down { until } = s {
                *until = now;
            }
        }
        for (until, _) in &mut self.cuts {
            *until = now;
        }
        self.end_due(cluster, now).await;
        self.holds.release_all(cluster).await;
        // Cuts made on a node while another end was down or paused are undone here too.
        let ids = self.ids.clone();
        for &a in &ids {
            for &b in &ids {
                if a != b {
                    set_link_side(cluster, a, b, true).await;
                }
            }
        }
    }

    /// The faults in force, for the run's trace.
    pub fn state_now(&self) -> FaultState {
        let with = |want: fn(&NodeState) -> bool| {
            (self.state.iter())
                .filter(|(_, s)| want(s))
                .map(|(&id, _)| id)
                .collect()
        };
        FaultState {
            down: with(|s| matches!(s, NodeState::Down { .. })),
            paused: with(|s| matches!(s, NodeState::Paused { .. })),
            cut: (self.cut_count.iter())
                .filter(|(_, &n)| n > 0)
                .map(|(&link, _)| link)
                .collect(),
            held: self.holds.held(),
        }
    }

    fn nodes_not_up(&self) -> usize {
        self.state.values().filter(|s| **s != NodeState::Up).count()
    }

    fn up(&self) -> Vec<NodeId> {
        let up = |id: &&NodeId| self.state[*id] == NodeState::Up;
        self.ids.iter().filter(up).copied().collect()
    }

    fn hold(&mut self, ms: std::ops::Range<u64>) -> Instant {
        Instant::now() + Duration::from_millis(self.rng.gen_range(ms))
    }

    /// An up node: the leader 60% of the time when it is up.
    fn target(&mut self) -> Option<NodeId> {
        let up = self.up();
        match self.last_leader {
            Some((l, _)) if up.contains(&l) && self.rng.gen_bool(0.6) => Some(l),
            _ if up.is_empty() => None,
            _ => Some(up[self.rng.gen_range(0..up.len())]),
        }
    }

    async fn begin(&mut self, cluster: &mut Cluster, kind: &'static str) {
        match kind {
            // A majority of processes stays alive outside the planned episodes.
            "kill" | "pause" if self.nodes_not_up() >= self.ids.len() / 2 => {}
            "kill" => self.kill(cluster, 300..2500).await,
            "pause" => self.pause(cluster, 300..2500).await,
            "hold" => {
                let Some(from) = self.target() else { return };
                let others: Vec<NodeId> = self.up().into_iter().filter(|&p| p != from).collect();
                if others.is_empty() {
                    return;
                }
                let to = others[self.rng.gen_range(0..others.len())];
                let until = self.hold(300..2500);
                self.holds.begin(cluster, from, to, until).await;
                *self.counts.entry(kind).or_default() += 1;
            }
            _ => {
                let links = self.links_of(kind);
                let until = self.hold(300..2500);
                self.cut(cluster, links, until).await;
                *self.counts.entry(kind).or_default() += 1;
            }
        }
    }

    async fn begin_episode(&mut self, cluster: &mut Cluster, episode: &'static str) {
        *self.counts.entry(episode).or_default() += 1;
        match episode {
            "crash-all" => {
                cluster.kill_all();
                let until = self.hold(200..1500);
                for s in self.state.values_mut() {
                    *s = NodeState::Down { until };
                }
                self.overlaps.cluster_crashes += 1;
            }
            "kill-in-partition" => {
                let links = self.links_of("partition");
                let until = self.hold(1000..2500);
                self.cut(cluster, links, until).await;
                let kill_at = self.hold(100..800);
                self.planned.push((kill_at, Planned::Kill));
            }
            "two-down" => {
                self.kill(cluster, 800..2500).await;
                let second = self.hold(0..500);
                self.planned.push((second, Planned::Kill));
            }
            other => unreachable!("no episode {other}"),
        }
    }

    /// SIGKILLs a target for a random time in `hold_ms`.
    async fn kill(&mut self, cluster: &mut Cluster, hold_ms: std::ops::Range<u64>) {
        let Some(id) = self.target() else { return };
        let until = self.hold(hold_ms);
        cluster.kill(id);
        self.state.insert(id, NodeState::Down { until });
        *self.counts.entry("kill").or_default() += 1;
        if self.cut_count.values().any(|&n| n > 0) {
            self.overlaps.kills_during_cuts += 1;
        }
        let down = self.state.values();
        let down = down.filter(|s| matches!(s, NodeState::Down { .. })).count() as u64;
        self.overlaps.most_down_at_once = self.overlaps.most_down_at_once.max(down);
    }

    /// SIGSTOPs a target for a random time in `hold_ms`.
    async fn pause(&mut self, cluster: &mut Cluster, hold_ms: std::ops::Range<u64>) {
        let Some(id) = self.target() else { return };
        let until = self.hold(hold_ms);
        cluster.signal(id, "STOP");
        self.state.insert(id, NodeState::Paused { until });
        *self.counts.entry("pause").or_default() += 1;
    }

    fn links_of(&mut self, kind: &str) -> BTreeSet<Link> {
        let ids = self.ids.clone();
        match kind {
            "partition" => {
                let mut shuffled = ids.clone();
                for i in (1..shuffled.len()).rev() {
                    shuffled.swap(i, self.rng.gen_range(0..=i));
                }
                let minority: BTreeSet<NodeId> =
                    shuffled[..(ids.len() - 1) / 2].iter().copied().collect();
                scenarios::all_links(&ids)
                    .into_iter()
                    .filter(|(a, b)| minority.contains(a) != minority.contains(b))
                    .collect()
            }
            "isolate" => {
                let target = self.target().unwrap_or(ids[0]);
                scenarios::isolate(&ids, target)
            }
            other => {
                let scenario = Scenario::parse(other).expect("known scenario");
                let leader = self.last_leader.map(|(l, _)| l);
                scenarios::plan(scenario, &ids, leader).unwrap_or_default()
            }
        }
    }

    async fn cut(&mut self, cluster: &Cluster, links: BTreeSet<Link>, until: Instant) {
        for &link in &links {
            let count = self.cut_count.entry(link).or_default();
            *count += 1;
            if *count == 1 {
                self.push_link(cluster, link).await;
            }
        }
        self.cuts.push((until, links));
    }

    /// Ends the node faults and cuts whose time has come.
    async fn end_due(&mut self, cluster: &mut Cluster, now: Instant) {
        let due: Vec<(NodeId, NodeState)> = self
            .state
            .iter()
            .filter(|(_, s)| matches!(s, NodeState::Paused { until } | NodeState::Down { until } if *until <= now))
            .map(|(&id, &s)| (id, s))
            .collect();
        for (id, s) in due {
            match s {
                NodeState::Down { .. } => {
                    tokio::task::block_in_place(|| cluster.restart(id));
                }
                _ => cluster.signal(id, "CONT"),
            }
            self.state.insert(id, NodeState::Up);
            self.sync_links_of(cluster, id).await;
        }
        let (ended, kept) = std::mem::take(&mut self.cuts)
            .into_iter()
            .partition(|(until, _)| *until <= now);
        self.cuts = kept;
        for (_, links) in ended {
            for link in links {
                let count = self.cut_count.get_mut(&link).expect("counted when cut");
                *count -= 1;
                if *count == 0 {
                    self.push_link(cluster, link).await;
                }
            }
        }
    }

    /// Sets a link's two ends to its current state, on the ends that are up (an end that is
    /// away gets it when it comes back).
    async fn push_link(&self, cluster: &Cluster, (a, b): Link) {
        let connected = self.cut_count.get(&(a, b)).is_none_or(|&n| n == 0);
        for (node, peer) in [(a, b), (b, a)] {
            if self.state[&node] == NodeState::Up {
                set_link_side(cluster, node, peer, connected).await;
            }
        }
    }

    /// A node that comes back (restarted: every link connected; resumed: as it was when it
    /// stopped) gets the current state of each of its links.
    async fn sync_links_of(&self, cluster: &Cluster, id: NodeId) {
        for &peer in self.ids.iter().filter(|&&p| p != id) {
            let link = scenarios::link(id, peer);
            let connected = self.cut_count.get(&link).is_none_or(|&n| n == 0);
            set_link_side(cluster, id, peer, connected).await;
        }
    }

    /// Samples the leader among the nodes that are up, counting changes.
    async fn sample_leader(&mut self, cluster: &Cluster) {
        let mut best: Option<(NodeId, BallotView)> = None;
        for id in self.up() {
            let status = tokio::time::timeout(Duration::from_millis(300), cluster.status(id));
            if let Ok(Some(s)) = status.await {
                if s.role == Role::Leader && best.is_none_or(|(_, b)| s.ballot > b) {
                    best = Some((id, s.ballot));
                }
            }
        }
        if best.is_some() && best != self.last_leader {
            if self.last_leader.is_some() {
                self.leader_changes += 1;
            }
            self.last_leader = best;
        }
    }
}

/// Sets `node`'s side of its link to `peer`. A busy machine can delay one admin exchange; a
/// few attempts keep the test about the cluster, not the machine.
async fn set_link_side(cluster: &Cluster, node: NodeId, peer: NodeId, connected: bool) {
    let req = AdminRequest::SetLink { peer, connected };
    for _ in 0..5 {
        if cluster.admin(node, req.clone()).await == Some(AdminResponse::Ok) {
            return;
        }
    }
    panic!("node {node} did not set its link to {peer}");
}
