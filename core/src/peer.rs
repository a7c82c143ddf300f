//! Frames between nodes: length-delimited JSON on one TCP stream per direction and peer.
//!
//! A connection opens with [`PeerFrame::Hello`]; the receiver accepts it only from a member of
//! its own cluster. Every OmniPaxos message carries a per-sender sequence id so that the event
//! stream can match a send to its receive.

use omnipaxos::messages::Message;
use serde::{Deserialize, Serialize};

use crate::{command::KVCommand, NodeId};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PeerFrame {
    Hello {
        cluster_id: String,
        from: NodeId,
    },
    Paxos {
        /// Unique per sender; `(from, msg_id)` identifies a message cluster-wide.
        msg_id: u64,
        msg: Message<KVCommand>,
    },
}
