//! The launcher's HTTP control API (`omnikv demo`), used by the visualizer, the CLI and tests.

use serde::{Deserialize, Serialize};

use crate::{event::BallotView, event::Role, NodeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    Up,
    Down,
    Paused,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: NodeId,
    pub state: ProcessState,
    /// `None` when the node did not answer (down, paused, starting).
    pub role: Option<Role>,
    pub ballot: Option<BallotView>,
    /// The node's WebSocket base URL; append `/client`, `/events` or `/admin`.
    pub ws: String,
    pub pid: Option<u32>,
    pub data_dir: String,
    pub peer_addr: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    pub a: NodeId,
    pub b: NodeId,
    pub connected: bool,
    /// Directions of this link whose messages are held by their sender.
    #[serde(default)]
    pub held: Vec<HeldView>,
}

/// One direction of a link held by its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldView {
    pub from: NodeId,
    pub to: NodeId,
    /// Messages waiting.
    pub waiting: u64,
}

/// Body of `POST /api/links/hold`: hold (or release) the messages `a` sends to `b`, and those
/// `b` sends to `a` as well when `both`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    pub a: NodeId,
    pub b: NodeId,
    pub held: bool,
    #[serde(default)]
    pub both: bool,
}

/// Body of `POST /api/links/deliver`: `count` messages `a` holds for `b` (1 when absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverRequest {
    pub a: NodeId,
    pub b: NodeId,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// Body of `POST /api/links/drop`: the first message `a` holds for `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkPair {
    pub a: NodeId,
    pub b: NodeId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub leader: Option<NodeId>,
    pub nodes: Vec<NodeView>,
    pub links: Vec<LinkView>,
}

impl ClusterView {
    /// The nodes a client tries, in order: the live ones, the leader first (a request through
    /// the leader saves a forward), then by id. The one copy of this rule: the CLI, the page and
    /// the Node.js client all take their targets from it.
    pub fn client_targets(&self) -> Vec<&NodeView> {
        let rank = |n: &NodeView| (Some(n.id) != self.leader, n.id);
        // Placed by insertion: a cluster has a handful of nodes, and a sort would add its code
        // to the page's wasm.
        let mut nodes: Vec<&NodeView> = Vec::with_capacity(self.nodes.len());
        for n in self.nodes.iter().filter(|n| n.state == ProcessState::Up) {
            let at = nodes.partition_point(|m| rank(m) <= rank(n));
            nodes.insert(at, n);
        }
        nodes
    }
}

/// Body of `POST /api/links`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub a: NodeId,
    pub b: NodeId,
    pub connected: bool,
}

/// The partial-connectivity scenarios of the Omni-Paxos paper, plus `heal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Every link is cut except those of one follower, which becomes the only quorum-connected
    /// node.
    QuorumLoss,
    /// As quorum-loss, but the quorum-connected node first falls behind.
    Constrained,
    /// The link between the leader and one follower is cut.
    Chained,
    /// Every link is restored.
    Heal,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::QuorumLoss,
        Scenario::Constrained,
        Scenario::Chained,
        Scenario::Heal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::QuorumLoss => "quorum-loss",
            Scenario::Constrained => "constrained",
            Scenario::Chained => "chained",
            Scenario::Heal => "heal",
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Reply of a control action (and of every error, with `ok: false`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionReply {
    pub ok: bool,
    pub message: String,
}
