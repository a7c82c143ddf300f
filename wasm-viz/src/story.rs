//! What happened: the notable moments of a recording, in plain words, with times and durations.
//!
//! A scrubbed or imported recording of thousands of inputs has no landmarks; this is them. The
//! story is derived from the same inputs as the rest of the model (it is part of
//! [`crate::ClusterModel`], so it replays and rebuilds with it) and remembers only the little it
//! needs to tell durations: when each process changed state, when the leader was lost, where
//! each node's snapshot ended, who is catching up. Each [`Happening`] carries the timeline
//! position just after the input that made it, so the page can jump there.

use omnikv_core::{
    control::{ClusterView, ProcessState},
    event::{BallotView, EventEnvelope, MessageKind, NodeEvent, Role, SnapshotCarried},
    NodeId,
};

use crate::{
    control::SCENARIO_PATH_PREFIX,
    describe,
    node_model::{NodeMap, NodeState},
    record::Record,
};

/// Happenings kept; older ones are forgotten (a long live session keeps its recent story).
pub const HAPPENINGS_KEPT: usize = 200;
/// Snapshots taken with no more than this between them, and nothing else told meanwhile, are one
/// happening: "on nodes 1, 2, 3", and under load "snapshots ..50 to ..3450". A busy cluster
/// snapshots many times a second; told one by one they would bury everything else.
const SNAPSHOT_MERGE_MS: u64 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HappeningKind {
    Down,
    Paused,
    Resumed,
    Restarted,
    LeaderElected,
    SnapshotTaken,
    SnapshotInstalled,
    CaughtUp,
    LinkCut,
    LinkHealed,
    Scenario,
}

impl HappeningKind {
    /// The page's `data-kind`, also its CSS class for markers.
    pub fn as_str(self) -> &'static str {
        match self {
            HappeningKind::Down => "down",
            HappeningKind::Paused => "paused",
            HappeningKind::Resumed => "resumed",
            HappeningKind::Restarted => "restarted",
            HappeningKind::LeaderElected => "leader",
            HappeningKind::SnapshotTaken => "snapshot",
            HappeningKind::SnapshotInstalled => "installed",
            HappeningKind::CaughtUp => "caught-up",
            HappeningKind::LinkCut => "link-cut",
            HappeningKind::LinkHealed => "link-healed",
            HappeningKind::Scenario => "scenario",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Happening {
    pub at_ms: u64,
    /// Timeline position just after the input that made it: seeking there shows it.
    pub pos: u64,
    pub kind: HappeningKind,
    /// The nodes it concerns (their lanes carry its marker in the space-time diagram).
    pub nodes: Vec<NodeId>,
    pub text: String,
}

/// A node that restarted and has not caught up yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct CatchUp {
    since_ms: u64,
    from_idx: u64,
    /// The snapshot installed meanwhile (its end, and how it was carried), if any.
    snapshot: Option<(u64, Option<SnapshotCarried>)>,
}

/// What the story remembers of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct NodeMemory {
    id: NodeId,
    /// The process's last state and since when, as the launcher reported it.
    process: Option<(ProcessState, u64)>,
    /// Where its compacted prefix ended.
    compacted_idx: u64,
    catching_up: Option<CatchUp>,
    /// How the last log sync sent to it carried its snapshot.
    sync_sent: Option<SnapshotCarried>,
}

// Plain vectors rather than maps: a handful of nodes, and every map type costs the wasm kilobytes
// of tree code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Story {
    /// Oldest first. A vector (the oldest removed by a shift of at most [`HAPPENINGS_KEPT`]
    /// entries) rather than a deque: one deque type fewer keeps the wasm smaller.
    pub happenings: Vec<Happening>,
    nodes: Vec<NodeMemory>,
    /// Links cut by the operator, `(a, b)` as the launcher lists them.
    cut: Vec<(NodeId, NodeId)>,
    /// The leader last told and its ballot number.
    leader: Option<(NodeId, u32)>,
    /// When the leader was lost (its process stopped or its stream closed), not yet replaced.
    leader_lost: Option<(NodeId, u64)>,
    /// The snapshots the last happening tells, while it is a run of them.
    snapshots: SnapshotRun,
}

/// A run of snapshots told as one happening.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SnapshotRun {
    /// Where the prefix ended before the run, and the first and last snapshot's ends.
    before_idx: u64,
    first_idx: u64,
    last_idx: u64,
    /// Distinct snapshot ends in the run (each node takes its own at the same index).
    count: u64,
    last_ms: u64,
}

impl SnapshotRun {
    fn text(&self, nodes: &[NodeId]) -> String {
        let list: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        let on = if nodes.len() == 1 { "node" } else { "nodes" };
        let folded = self.last_idx.saturating_sub(self.before_idx);
        let what = if self.count == 1 {
            format!("snapshot ..{} taken", self.last_idx)
        } else {
            format!(
                "{} snapshots ..{} to ..{} taken",
                self.count, self.first_idx, self.last_idx
            )
        };
        format!(
            "{what} on {on} {} ({folded} entries folded)",
            list.join(", ")
        )
    }
}

impl Story {
    fn node(&mut self, id: NodeId) -> &mut NodeMemory {
        let k = match self.nodes.iter().position(|n| n.id == id) {
            Some(k) => k,
            None => {
                self.nodes.push(NodeMemory {
                    id,
                    ..NodeMemory::default()
                });
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[k]
    }
}

impl Story {
    /// Takes note of `record`, about to be applied to the model whose nodes are `nodes` (the
    /// story compares what it says with what was). `pos` is the timeline position after it;
    /// `now_ms` the model's clock, which never goes back even when nodes' clocks differ.
    pub fn observe(&mut self, record: &Record, pos: u64, now_ms: u64, nodes: &NodeMap) {
        let mut told = Teller {
            story: self,
            at_ms: now_ms,
            pos,
        };
        match record {
            Record::Event(env) => told.event(env, nodes),
            Record::Cluster { view, .. } => told.cluster(view, nodes),
            Record::Stream {
                node,
                connected: false,
                ..
            } => told.lost(*node),
            Record::Control { path, .. } => told.control(path, nodes),
            Record::Stream { .. }
            | Record::Dump { .. }
            | Record::Head { .. }
            | Record::Notice { .. }
            | Record::Operation { .. } => {}
        }
    }

    /// After the model applied the input: tells of restarted nodes that have caught up.
    pub fn settle(&mut self, pos: u64, now_ms: u64, nodes: &NodeMap) {
        if self.nodes.iter().all(|n| n.catching_up.is_none()) {
            return;
        }
        Teller {
            story: self,
            at_ms: now_ms,
            pos,
        }
        .caught_up(nodes);
    }
}

/// The story and the input being told.
struct Teller<'a> {
    story: &'a mut Story,
    at_ms: u64,
    pos: u64,
}

impl Teller<'_> {
    fn tell(&mut self, kind: HappeningKind, nodes: Vec<NodeId>, text: String) {
        let list = &mut self.story.happenings;
        if list.len() == HAPPENINGS_KEPT {
            list.remove(0);
        }
        list.push(Happening {
            at_ms: self.at_ms,
            pos: self.pos,
            kind,
            nodes,
            text,
        });
    }

    fn event(&mut self, env: &EventEnvelope, nodes: &NodeMap) {
        let id = env.node;
        match &env.event {
            NodeEvent::LeaderChanged {
                leader: Some(l),
                ballot,
            } => self.leader_seen(*l, ballot),
            NodeEvent::Status(s) if s.role == Role::Leader => self.leader_seen(id, &s.ballot),
            NodeEvent::SnapshotTaken { compacted_idx, .. } => {
                self.snapshot_taken(id, *compacted_idx)
            }
            NodeEvent::SnapshotInstalled { compacted_idx, .. } => {
                self.snapshot_installed(id, *compacted_idx, nodes)
            }
            NodeEvent::MessageSent(m) | NodeEvent::MessageReceived(m)
                if m.kind == MessageKind::AcceptSync =>
            {
                self.story.node(m.to).sync_sent = m.snapshot;
            }
            _ => {}
        }
    }

    fn leader_seen(&mut self, leader: NodeId, ballot: &BallotView) {
        let known = self.story.leader;
        // Every node reports the same election; a stale report names an older ballot.
        let newer = match known {
            None => true,
            Some((l, n)) => (l != leader && ballot.n >= n) || ballot.n > n,
        };
        if !newer {
            return;
        }
        self.story.leader = Some((leader, ballot.n));
        let mut text = format!("node {leader} leads, ballot {}", describe::ballot(ballot));
        if let Some((old, lost_ms)) = self.story.leader_lost.take() {
            let after = self.at_ms.saturating_sub(lost_ms);
            text.push_str(&format!(
                ", {} after node {old} was lost",
                describe::duration(after)
            ));
        }
        self.tell(HappeningKind::LeaderElected, vec![leader], text);
    }

    /// `node` stopped answering (its process stopped or its event stream closed).
    fn lost(&mut self, node: NodeId) {
        let leads = self.story.leader.is_some_and(|(l, _)| l == node);
        if leads && self.story.leader_lost.is_none() {
            self.story.leader_lost = Some((node, self.at_ms));
        }
    }

    fn snapshot_taken(&mut self, node: NodeId, compacted_idx: u64) {
        let before = std::mem::replace(&mut self.story.node(node).compacted_idx, compacted_idx);
        let at_ms = self.at_ms;
        let run = &mut self.story.snapshots;
        let last = self.story.happenings.last_mut().filter(|h| {
            h.kind == HappeningKind::SnapshotTaken
                && at_ms.saturating_sub(run.last_ms) <= SNAPSHOT_MERGE_MS
        });
        if let Some(h) = last {
            if compacted_idx > run.last_idx {
                run.last_idx = compacted_idx;
                run.count += 1;
            }
            run.last_ms = at_ms;
            if !h.nodes.contains(&node) {
                h.nodes.push(node);
            }
            h.text = run.text(&h.nodes);
            return;
        }
        *run = SnapshotRun {
            before_idx: before,
            first_idx: compacted_idx,
            last_idx: compacted_idx,
            count: 1,
            last_ms: at_ms,
        };
        let text = run.text(&[node]);
        self.tell(HappeningKind::SnapshotTaken, vec![node], text);
    }

    fn snapshot_installed(&mut self, node: NodeId, compacted_idx: u64, nodes: &NodeMap) {
        let memory = self.story.node(node);
        let before = std::mem::replace(&mut memory.compacted_idx, compacted_idx);
        let carried = memory.sync_sent;
        if let Some(c) = &mut memory.catching_up {
            c.snapshot = Some((compacted_idx, carried));
        }
        let applied = nodes.get(&node).map_or(0, |n| n.applied_idx);
        let skipped = compacted_idx.saturating_sub(before.max(applied.min(compacted_idx)));
        let text = format!(
            "node {node} installed {} snapshot ..{compacted_idx} from the leader{}",
            carried_text(carried),
            if skipped > 0 {
                format!(" ({skipped} entries it did not have)")
            } else {
                String::new()
            }
        );
        self.tell(HappeningKind::SnapshotInstalled, vec![node], text);
    }

    /// A control request the launcher carried out. A node action is told now, not when a
    /// cluster view shows it: the page asks for that view after this answer, and on a busy
    /// machine it arrives after the survivors of a kill have elected a new leader, which would
    /// put the election before the loss that caused it.
    fn control(&mut self, path: &str, nodes: &NodeMap) {
        if let Some(name) = path.strip_prefix(SCENARIO_PATH_PREFIX) {
            let text = format!("scenario {name} started");
            return self.tell(HappeningKind::Scenario, Vec::new(), text);
        }
        if let Some((id, state)) = crate::control::process_after(path) {
            self.process_seen(id, state, nodes, true);
        }
    }

    fn cluster(&mut self, view: &ClusterView, nodes: &NodeMap) {
        for n in &view.nodes {
            self.process_seen(n.id, n.state, nodes, false);
        }
        self.links(view);
    }

    /// Node `id`'s process is in `state`, by a cluster view or by a control request the page
    /// sent (`ordered`).
    fn process_seen(&mut self, id: NodeId, state: ProcessState, nodes: &NodeMap, ordered: bool) {
        let at_ms = self.at_ms;
        let memory = self.story.node(id);
        let was = memory.process;
        if was.map(|(s, _)| s) == Some(state) {
            return;
        }
        memory.process = Some((state, at_ms));
        // Before any cluster view named the node, it ran: a kill or pause the page ordered is
        // told, anything else only noted.
        let was = match was {
            Some(was) => was,
            None if ordered && state != ProcessState::Up => (ProcessState::Up, at_ms),
            None => return,
        };
        let applied = nodes.get(&id).map_or(0, |m| m.applied_idx);
        self.process_changed(id, was.0, state, was.1, applied);
    }

    fn process_changed(
        &mut self,
        id: NodeId,
        was: ProcessState,
        now: ProcessState,
        since_ms: u64,
        applied_idx: u64,
    ) {
        let leads = self.story.leader.is_some_and(|(l, _)| l == id);
        let who = if leads {
            format!("node {id} (leader)")
        } else {
            format!("node {id}")
        };
        let lasted = describe::duration(self.at_ms.saturating_sub(since_ms));
        let (kind, text) = match (was, now) {
            (_, ProcessState::Down) => (HappeningKind::Down, format!("{who} went down")),
            (_, ProcessState::Paused) => (HappeningKind::Paused, format!("{who} paused")),
            (ProcessState::Paused, ProcessState::Up) => (
                HappeningKind::Resumed,
                format!("node {id} resumed after {lasted} paused"),
            ),
            (_, ProcessState::Up) => {
                self.story.node(id).catching_up = Some(CatchUp {
                    since_ms: self.at_ms,
                    from_idx: applied_idx,
                    snapshot: None,
                });
                (
                    HappeningKind::Restarted,
                    format!("node {id} restarted after {lasted} down"),
                )
            }
        };
        if now != ProcessState::Up {
            self.story.node(id).catching_up = None;
            self.lost(id);
        }
        self.tell(kind, vec![id], text);
    }

    fn links(&mut self, view: &ClusterView) {
        let now: Vec<(NodeId, NodeId)> = view
            .links
            .iter()
            .filter(|l| !l.connected)
            .map(|l| (l.a, l.b))
            .collect();
        let was = std::mem::replace(&mut self.story.cut, now.clone());
        let cut: Vec<_> = now.iter().filter(|l| !was.contains(l)).copied().collect();
        let healed: Vec<_> = was.iter().filter(|l| !now.contains(l)).copied().collect();
        for (kind, links, verb) in [
            (HappeningKind::LinkCut, cut, "cut"),
            (HappeningKind::LinkHealed, healed, "healed"),
        ] {
            if links.is_empty() {
                continue;
            }
            let names: Vec<String> = links.iter().map(|(a, b)| format!("{a}–{b}")).collect();
            let mut ends: Vec<NodeId> = Vec::new();
            for n in links.iter().flat_map(|(a, b)| [*a, *b]) {
                if !ends.contains(&n) {
                    ends.push(n);
                }
            }
            let noun = if links.len() == 1 { "link" } else { "links" };
            self.tell(kind, ends, format!("{noun} {} {verb}", names.join(", ")));
        }
    }

    /// Tells of every restarted node that has now caught up with the decided log.
    fn caught_up(&mut self, nodes: &NodeMap) {
        let done = |id: NodeId| {
            nodes
                .get(&id)
                .is_some_and(|n| n.state() == NodeState::Up && n.stream_connected)
        };
        let caught: Vec<(NodeId, CatchUp)> = self
            .story
            .nodes
            .iter_mut()
            .filter(|m| m.catching_up.is_some() && done(m.id))
            .filter_map(|m| Some((m.id, m.catching_up.take()?)))
            .collect();
        for (id, c) in caught {
            let applied = nodes.get(&id).map_or(0, |n| n.applied_idx);
            let entries = applied.saturating_sub(c.from_idx);
            let took = describe::duration(self.at_ms.saturating_sub(c.since_ms));
            if entries == 0 && c.snapshot.is_none() {
                let text = format!("node {id} back in step after {took} (nothing to catch up)");
                self.tell(HappeningKind::CaughtUp, vec![id], text);
                continue;
            }
            let how = match c.snapshot {
                Some((end, carried)) => {
                    format!("by {} snapshot ..{end} and the log", carried_text(carried))
                }
                None => "from the log".to_string(),
            };
            self.tell(
                HappeningKind::CaughtUp,
                vec![id],
                format!("node {id} caught up {entries} entries {how} in {took}"),
            );
        }
    }
}

fn carried_text(c: Option<SnapshotCarried>) -> &'static str {
    match c {
        Some(SnapshotCarried::Delta) => "a delta",
        Some(SnapshotCarried::Complete) => "a complete",
        None => "a",
    }
}
