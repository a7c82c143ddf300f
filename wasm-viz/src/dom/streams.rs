//! The page's sockets to the nodes' `/events` and `/admin`: which to open and when, and what
//! their frames become on the recording.
//!
//! A node's stream is opened once the launcher reports it ready and dropped when it goes down;
//! a node whose table the page only partly knows is asked for the head of its state (as much
//! of the table as the page keeps, bounded on the node whatever the table holds), at most
//! every [`DUMP_RETRY_MS`]. Sockets report through the callbacks given to [`Streams::new`].

use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    control::ProcessState,
    wire::encode_postcard,
    NodeId,
};

use super::net::{decode_frame, Socket, SocketEvent};
use crate::{
    model::{KV_KEYS_MAX, LOG_WINDOW_ENTRIES},
    record::Record,
};

/// Largest dump head accepted: its keys (2 MiB) and log tail (1 MiB) are bounded by the node,
/// its sessions by the session rule, and JSON may escape a byte into six.
const DUMP_BYTES_MAX: usize = 32 << 20;
/// A node's table is re-fetched at most this often while it is incomplete.
const DUMP_RETRY_MS: f64 = 10_000.0;

/// Where a socket's events go: its node and what happened.
pub type Deliver = fn(NodeId, SocketEvent);

pub struct Streams {
    /// Open `/events` sockets by node. Short vectors rather than maps: one tree type fewer
    /// keeps the wasm smaller.
    streams: Vec<(NodeId, Socket)>,
    /// Open `/admin` sockets (a dump head asked for) by node.
    dumps: Vec<(NodeId, Socket)>,
    /// When a head was last asked of each node (a short list: one entry per node).
    dump_tried_ms: Vec<(NodeId, f64)>,
    on_stream: Deliver,
    on_dump: Deliver,
}

/// What the launcher says of a node: its process state, and whether it is ready to be dialled.
pub struct NodeReadiness {
    pub id: NodeId,
    pub state: ProcessState,
    pub ready: bool,
    /// The node's WebSocket base URL (no trailing slash); empty if not known.
    pub ws: String,
}

impl Streams {
    pub fn new(on_stream: Deliver, on_dump: Deliver) -> Streams {
        Streams {
            streams: Vec::new(),
            dumps: Vec::new(),
            dump_tried_ms: Vec::new(),
            on_stream,
            on_dump,
        }
    }

    /// Opens the streams of ready nodes and drops those of nodes that went down or closed.
    /// Called from the poll loop, never from a socket callback: sockets may be replaced.
    /// Returns what could not be opened, for the record.
    pub fn refresh(&mut self, nodes: &[NodeReadiness]) -> Vec<String> {
        let mut failed = Vec::new();
        for n in nodes {
            let gone = |(id, s): &(NodeId, Socket)| {
                *id == n.id && (s.is_closed() || n.state == ProcessState::Down)
            };
            self.streams.retain(|x| !gone(x));
            if n.ready && !n.ws.is_empty() && get(&self.streams, n.id).is_none() {
                let url = format!("{}/events", n.ws);
                let (id, deliver) = (n.id, self.on_stream);
                match Socket::open(&url, move |ev| deliver(id, ev)) {
                    Ok(s) => self.streams.push((n.id, s)),
                    Err(e) => failed.push(format!("node {id}: cannot open {url}: {e}")),
                }
            }
        }
        self.dumps.retain(|(_, s)| !s.is_closed());
        failed
    }

    /// Asks node `id` (at `ws`) for the head of its state, unless asked recently.
    pub fn request_dump(&mut self, id: NodeId, ws: &str, now_ms: f64) {
        let tried = self.dump_tried_ms.iter_mut().find(|(n, _)| *n == id);
        let recent = tried
            .as_ref()
            .is_some_and(|(_, t)| now_ms - *t < DUMP_RETRY_MS);
        if recent || get(&self.dumps, id).is_some() || ws.is_empty() {
            return;
        }
        match tried {
            Some((_, t)) => *t = now_ms,
            None => self.dump_tried_ms.push((id, now_ms)),
        }
        let deliver = self.on_dump;
        if let Ok(s) = Socket::open(&format!("{ws}/admin"), move |ev| deliver(id, ev)) {
            self.dumps.push((id, s));
        }
    }

    /// Sends the head request once node `id`'s admin socket is open: one key more than the
    /// page keeps tells it the table is larger.
    pub fn send_dump_request(&self, id: NodeId) {
        let head = AdminRequest::DumpHead {
            keys: KV_KEYS_MAX as u32 + 1,
            log_entries: LOG_WINDOW_ENTRIES as u32,
        };
        if let Some(s) = get(&self.dumps, id) {
            s.send(&encode_postcard(&head));
        }
    }

    /// Closes node `id`'s admin socket (its one answer came). Safe inside its own callback: the
    /// socket object is dropped later, by [`Streams::refresh`].
    pub fn dump_done(&self, id: NodeId) {
        if let Some(s) = get(&self.dumps, id) {
            let _ = s.ws.close();
        }
    }
}

fn get(sockets: &[(NodeId, Socket)], id: NodeId) -> Option<&Socket> {
    sockets.iter().find(|(n, _)| *n == id).map(|(_, s)| s)
}

/// The record an admin answer makes: a dump head, a notice for an answer that does not decode
/// or is an error, or nothing.
pub fn dump_record(node: NodeId, frame: Result<Vec<u8>, String>, at_ms: u64) -> Option<Record> {
    match decode_frame::<AdminResponse>(frame, DUMP_BYTES_MAX) {
        Ok(AdminResponse::DumpHead(head)) => Some(Record::Head { at_ms, head: *head }),
        Ok(AdminResponse::Error { message }) => Some(Record::Notice {
            at_ms,
            text: format!("node {node}: no table head: {message}"),
        }),
        Ok(_) => None,
        Err(e) => Some(Record::Notice {
            at_ms,
            text: format!("node {node}: bad table head: {e}"),
        }),
    }
}
