//! Everything that can make a node act, besides its clock: the closed set of inputs of the
//! node's event loop.
//!
//! Kept apart from the loop (`node`) and from the replica logic (`replica`) so that the modules
//! that produce inputs (`api`, `transport`) and the one that consumes them import this module
//! and not each other.

use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::{ClientRequest, ClientResponse},
    peer::ReadIndexMsg,
    KVCommand, NodeId,
};
use omnipaxos::messages::Message;
use tokio::sync::{mpsc, oneshot};

use crate::budget::Charge;

/// An input, generic over how replies reach their requester: a channel in the node process,
/// a plain value in the simulation.
// Peer messages dominate the traffic and are the large variant: boxing them would allocate once
// more per message to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
pub enum Input<R, A> {
    Peer {
        from: NodeId,
        msg_id: u64,
        msg: Message<KVCommand>,
        /// The message's bytes, held from its sender's budget until it is handled.
        charge: Charge,
    },
    /// A message of the read-index protocol (see `replica::read_index`).
    ReadIndex {
        from: NodeId,
        msg: ReadIndexMsg,
    },
    /// The outgoing stream to `peer` came up or went down.
    PeerLink {
        peer: NodeId,
        up: bool,
    },
    Client {
        req: ClientRequest,
        reply: R,
    },
    Admin {
        req: AdminRequest,
        reply: A,
    },
    /// One period of the logical clock passed.
    Tick,
}

/// Where a client reply goes in the node process: the connection's bounded reply queue, with
/// the bytes its request holds (given back once the reply is written).
pub struct ClientReplyTx {
    pub tx: mpsc::Sender<(ClientResponse, Charge)>,
    pub charge: Charge,
}

impl ClientReplyTx {
    /// Queues the reply. A full queue means the client stopped reading; it loses its reply,
    /// not the node time.
    pub fn send(self, resp: ClientResponse) {
        let _ = self.tx.try_send((resp, self.charge));
    }
}
/// Where an admin reply goes in the node process.
pub type AdminReplyTx = oneshot::Sender<AdminResponse>;
/// The inputs of the node process.
pub type NodeInput = Input<ClientReplyTx, AdminReplyTx>;
