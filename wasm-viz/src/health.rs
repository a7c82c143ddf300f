//! Health at a glance, from the model: how far each follower is behind the leader, and how many
//! more nodes the cluster can lose and still decide. Pure, so host tests check the rules.

use omnikv_core::{control::ProcessState, NodeId};

use crate::model::ClusterModel;

/// Entries node `id` has not yet accepted that the leader has; `None` for the leader itself,
/// or when there is no leader to compare with.
pub fn lag_entries(model: &ClusterModel, id: NodeId) -> Option<u64> {
    let leader = model.shown_leader().filter(|l| *l != id)?;
    let lead = model.nodes.get(&leader)?;
    let node = model.nodes.get(&id)?;
    Some(lead.accepted_idx.saturating_sub(node.accepted_idx))
}

/// How many more nodes can fail with a majority still able to decide: negative when the
/// cluster has already lost its majority (by that many nodes). A node counts when its process
/// runs and, if there is a leader, the operator has not cut its link to the leader.
pub fn can_lose(model: &ClusterModel) -> i64 {
    let members = model.nodes.len() as i64;
    let majority = members / 2 + 1;
    let leader = model.shown_leader();
    let alive = model
        .nodes
        .values()
        .filter(|n| n.process == Some(ProcessState::Up))
        .filter(|n| match leader {
            Some(l) if l != n.id => model.link_connected(l, n.id) != Some(false),
            _ => true,
        })
        .count() as i64;
    alive - majority
}

/// "can lose 1 more node", "can lose no more nodes", "lost its majority: needs 1 more node".
pub fn can_lose_text(n: i64) -> String {
    let nodes = |k: i64| if k == 1 { "node" } else { "nodes" };
    match n {
        0 => "can lose no more nodes".into(),
        n if n > 0 => format!("can lose {n} more {}", nodes(n)),
        n => format!("lost its majority: needs {} more {}", -n, nodes(-n)),
    }
}
