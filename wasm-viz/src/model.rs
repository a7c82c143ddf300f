//! The view model: everything the page draws, as plain data.
//!
//! It is built only by [`crate::reducer`] from recorded inputs, so the same model can be rebuilt
//! at any point of a recording (scrubbing, replay) and compared in host tests. Every collection
//! that grows with traffic is bounded, by the constants below and those of [`crate::node_model`].

use std::collections::VecDeque;

use omnikv_core::{
    client::ClientOp,
    control::LinkView,
    event::{MessageInfo, RequestOutcome, Role},
    NodeId, RequestId,
};

pub use crate::node_model::*;

/// Messages remembered for animation and inspection, across all nodes: the space-time diagram's
/// 4 s window at about 500 messages a second (an idle 3-node demo cluster sends about 200 a
/// second, heartbeats and their replies; 40 puts a second about 450).
pub const MESSAGES_KEPT: usize = 2_000;
/// Client requests kept in the request log.
pub const CLIENT_ROWS_KEPT: usize = 100;
/// Notices (dropped events, bad frames) kept.
pub const NOTICES_KEPT: usize = 12;

/// One OmniPaxos message, from its send (or receive, if the send was not seen).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageView {
    pub info: MessageInfo,
    /// The send's time; until the send is seen, the receive's.
    pub sent_ms: u64,
    pub received_ms: Option<u64>,
    /// Whether the sender's event for it was seen. Each node streams its own events, so the
    /// receiver's can reach the page first.
    pub sent_seen: bool,
}

/// One client request as the nodes reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRow {
    pub id: RequestId,
    pub op: ClientOp,
    /// The node that received it last (retries move it).
    pub node: NodeId,
    pub attempts: u32,
    pub sent_ms: u64,
    pub outcome: Option<RequestOutcome>,
    pub latency_us: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub at_ms: u64,
    pub text: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterModel {
    pub nodes: NodeMap,
    /// The leader as the launcher last reported it.
    pub leader: Option<NodeId>,
    pub links: Vec<LinkView>,
    pub messages: VecDeque<MessageView>,
    /// Oldest first; at most [`CLIENT_ROWS_KEPT`] (a shift of a hundred rows per request is
    /// cheap, and a deque type fewer keeps the wasm smaller).
    pub client_log: Vec<ClientRow>,
    /// Oldest first; at most [`NOTICES_KEPT`], so a vector (not a deque type more in the wasm).
    pub notices: Vec<Notice>,
    /// Time of the newest input applied.
    pub now_ms: u64,
    /// Bumped by every change, so the renderer can skip unchanged frames.
    pub version: u64,
    /// Inputs applied since the recording began (dropped ones included): the timeline
    /// position of this picture.
    pub inputs: u64,
    /// What happened, in plain words.
    pub story: crate::story::Story,
}

impl ClusterModel {
    pub fn node_mut(&mut self, id: NodeId) -> &mut NodeModel {
        self.nodes.get_or_insert(id)
    }

    /// The leader to mark: the launcher's view, else the leader most live nodes name.
    pub fn shown_leader(&self) -> Option<NodeId> {
        if let Some(l) = self.leader {
            if self.nodes.get(&l).and_then(|n| n.shown_role()) == Some(Role::Leader) {
                return Some(l);
            }
        }
        self.nodes
            .values()
            .find(|n| n.shown_role() == Some(Role::Leader))
            .map(|n| n.id)
            .or(self.leader)
    }

    pub fn link_connected(&self, a: NodeId, b: NodeId) -> Option<bool> {
        self.links
            .iter()
            .find(|l| (l.a, l.b) == (a, b) || (l.a, l.b) == (b, a))
            .map(|l| l.connected)
    }

    pub fn notice(&mut self, at_ms: u64, text: String) {
        if self.notices.len() == NOTICES_KEPT {
            self.notices.remove(0);
        }
        self.notices.push(Notice { at_ms, text });
        self.version += 1;
    }
}

/// One held direction of a link: `from` holds `waiting` messages for `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldDirection {
    pub from: NodeId,
    pub to: NodeId,
    pub waiting: u64,
}

impl ClusterModel {
    /// Every held direction the nodes report, in node order.
    pub fn held_directions(&self) -> Vec<HeldDirection> {
        (self.nodes.values())
            .flat_map(|n| {
                (n.peers.iter())
                    .filter(|p| p.held)
                    .map(move |p| HeldDirection {
                        from: n.id,
                        to: p.id,
                        waiting: p.waiting,
                    })
            })
            .collect()
    }
}
