//! Step mode and held links from the page: which held direction the deliver key acts on, and
//! what each step did, in plain words.
//!
//! Step mode holds every link (both directions) through the launcher; the nodes then keep
//! their replication messages until a person delivers them one at a time (leader election's
//! heartbeats pass, so the leader stays). "Step through a write" turns step mode on and puts a
//! value, so the whole write can be walked: the client's request, `AcceptDecide` to each
//! follower, their `Accepted`, and the `Decide` that lets them apply it.

use omnikv_core::NodeId;

use crate::{describe, model::ClusterModel};

/// The key that delivers the next message of the selected held direction.
pub const DELIVER_KEY: &str = "n";

/// The direction the deliver key acts on: the selected one while it has messages waiting,
/// else the first that has.
pub fn next_target(
    model: &ClusterModel,
    selected: Option<(NodeId, NodeId)>,
) -> Option<(NodeId, NodeId)> {
    let waiting: Vec<(NodeId, NodeId)> = (model.held_directions().into_iter())
        .filter(|d| d.waiting > 0)
        .map(|d| (d.from, d.to))
        .collect();
    selected
        .filter(|s| waiting.contains(s))
        .or(waiting.first().copied())
}

/// What delivering the next message `from` holds for `to` does.
pub fn delivered(model: &ClusterModel, from: NodeId, to: NodeId) -> String {
    let next = model.nodes.get(&from).and_then(|n| n.held_head(to).first());
    match next {
        Some(m) => format!(
            "{} {from}->{to}: {}",
            describe::kind_name(m.kind),
            describe::message_purpose(m)
        ),
        None => format!("delivered the next message {from}->{to}"),
    }
}

/// What dropping the next message `from` holds for `to` does.
pub fn dropped(model: &ClusterModel, from: NodeId, to: NodeId) -> String {
    let next = model.nodes.get(&from).and_then(|n| n.held_head(to).first());
    let kind = next.map_or("the next message", |m| describe::kind_name(m.kind));
    format!(
        "dropped {kind} {from}->{to}: a lost message ends the link's stream, and OmniPaxos \
         brings node {to} up to date when it reconnects"
    )
}

/// The first words of step mode, and of a walk through a write.
pub fn started(walk: bool) -> &'static str {
    match walk {
        true => {
            "step mode: a put of `walk` waits at the leader's links; deliver each message \
                 (Deliver, or the n key) and watch the logs"
        }
        false => {
            "step mode: every link holds its replication messages; deliver them one by one \
                  (Deliver, or the n key)"
        }
    }
}
