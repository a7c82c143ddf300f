//! Held links as a nemesis fault: a sender holds its messages to one peer for a while, lets
//! them through in bursts of random size, sometimes drops the first (which breaks the stream),
//! and releases the link at the end. The store must keep every promise through it.

use std::time::Duration;

use omnikv_core::{admin::AdminRequest, NodeId};
use rand::{rngs::StdRng, Rng};
use tokio::time::Instant;

use crate::Cluster;

struct Hold {
    from: NodeId,
    to: NodeId,
    until: Instant,
    next_burst: Instant,
}

#[derive(Default)]
pub struct Holds {
    active: Vec<Hold>,
}

impl Holds {
    /// Holds in force.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// The held directions, (from, to).
    pub fn held(&self) -> Vec<(NodeId, NodeId)> {
        self.active.iter().map(|h| (h.from, h.to)).collect()
    }

    /// Holds what `from` sends to `to` until `until`.
    pub async fn begin(&mut self, cluster: &Cluster, from: NodeId, to: NodeId, until: Instant) {
        let req = AdminRequest::HoldLink {
            peer: to,
            held: true,
        };
        // A node that does not answer (paused, restarting) is simply not held.
        if cluster.admin(from, req).await.is_some() {
            let next_burst = Instant::now();
            self.active.push(Hold {
                from,
                to,
                until,
                next_burst,
            });
        }
    }

    /// Delivers the bursts that are due and releases the holds whose time is up, on senders
    /// that are `up` (a paused sender would only make the requests wait; a hold outlives its
    /// time until its sender can be told).
    pub async fn step(&mut self, cluster: &Cluster, rng: &mut StdRng, now: Instant, up: &[NodeId]) {
        for hold in &mut self.active {
            if hold.next_burst > now || !up.contains(&hold.from) {
                continue;
            }
            hold.next_burst = now + Duration::from_millis(rng.gen_range(20..300));
            let req = if rng.gen_bool(0.1) {
                AdminRequest::DropHeld { peer: hold.to }
            } else {
                let count = rng.gen_range(1..20);
                AdminRequest::DeliverHeld {
                    peer: hold.to,
                    count,
                }
            };
            // Refused when the sender restarted meanwhile (it holds nothing then).
            let _ = cluster.admin(hold.from, req).await;
        }
        let (ended, kept) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|h| h.until <= now && up.contains(&h.from));
        self.active = kept;
        for hold in ended {
            release(cluster, &hold).await;
        }
    }

    /// Releases every hold now (every node must be up).
    pub async fn release_all(&mut self, cluster: &Cluster) {
        for hold in std::mem::take(&mut self.active) {
            release(cluster, &hold).await;
        }
    }
}

async fn release(cluster: &Cluster, hold: &Hold) {
    let req = AdminRequest::HoldLink {
        peer: hold.to,
        held: false,
    };
    // A few attempts: a busy machine can delay one admin exchange, and a link left held
    // would starve the peer for the rest of the run.
    for _ in 0..5 {
        if cluster.admin(hold.from, req.clone()).await.is_some() {
            return;
        }
    }
}
