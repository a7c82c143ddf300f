//! The partial-connectivity scenarios of the Omni-Paxos paper, as link plans.
//!
//! A plan is the complete set of links to cut; every other link is connected. Plans are pure so
//! that they are tested without processes.

use std::collections::BTreeSet;

use omnikv_core::{control::Scenario, NodeId};

/// A link, smaller id first.
pub type Link = (NodeId, NodeId);

pub fn link(a: NodeId, b: NodeId) -> Link {
    (a.min(b), a.max(b))
}

pub fn all_links(nodes: &[NodeId]) -> Vec<Link> {
    let mut out = Vec::new();
    for (i, &a) in nodes.iter().enumerate() {
        for &b in &nodes[i + 1..] {
            out.push(link(a, b));
        }
    }
    out
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the scenario needs a current leader, and the cluster has none")]
    NoLeader,
    #[error("the scenario needs at least 3 nodes")]
    TooFewNodes,
}

/// The node that stays connected to everyone in quorum-loss and constrained: the lowest id
/// that is not the leader.
pub fn pivot(nodes: &[NodeId], leader: NodeId) -> Option<NodeId> {
    nodes.iter().copied().find(|&n| n != leader)
}

/// Links cut by `scenario`. For `Constrained` this is the final plan; the launcher first
/// isolates the pivot and writes, so that the pivot's log is outdated.
pub fn plan(
    scenario: Scenario,
    nodes: &[NodeId],
    leader: Option<NodeId>,
) -> Result<BTreeSet<Link>, PlanError> {
    if scenario == Scenario::Heal {
        return Ok(BTreeSet::new());
    }
    if nodes.len() < 3 {
        return Err(PlanError::TooFewNodes);
    }
    let leader = leader.ok_or(PlanError::NoLeader)?;
    let q = pivot(nodes, leader).ok_or(PlanError::TooFewNodes)?;
    Ok(match scenario {
        Scenario::Heal => unreachable!("handled above"),
        Scenario::Chained => BTreeSet::from([link(leader, q)]),
        Scenario::QuorumLoss | Scenario::Constrained => all_links(nodes)
            .into_iter()
            .filter(|&(a, b)| a != q && b != q)
            .collect(),
    })
}

/// Links cut to isolate `node` from everyone.
pub fn isolate(nodes: &[NodeId], node: NodeId) -> BTreeSet<Link> {
    nodes
        .iter()
        .filter(|&&n| n != node)
        .map(|&n| link(n, node))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_loss_keeps_only_the_pivots_links() {
        let cut = plan(Scenario::QuorumLoss, &[1, 2, 3, 4, 5], Some(3)).unwrap();
        // Pivot is 1 (lowest non-leader): every link not touching 1 is cut.
        assert_eq!(cut.len(), 6);
        assert!(cut.iter().all(|&(a, b)| a != 1 && b != 1));
        let cut3 = plan(Scenario::QuorumLoss, &[1, 2, 3], Some(1)).unwrap();
        assert_eq!(cut3, BTreeSet::from([(1, 3)]));
    }

    #[test]
    fn chained_cuts_one_leader_link() {
        assert_eq!(
            plan(Scenario::Chained, &[1, 2, 3], Some(2)).unwrap(),
            BTreeSet::from([(1, 2)])
        );
    }

    #[test]
    fn heal_cuts_nothing_and_others_need_a_leader() {
        assert!(plan(Scenario::Heal, &[1, 2, 3], None).unwrap().is_empty());
        assert_eq!(
            plan(Scenario::Chained, &[1, 2, 3], None),
            Err(PlanError::NoLeader)
        );
        assert_eq!(
            plan(Scenario::QuorumLoss, &[1, 2], Some(1)),
            Err(PlanError::TooFewNodes)
        );
    }
}
