//! Peer links: one ordered TCP stream per peer and direction, reconnecting.
//!
//! Each node dials every peer and sends on that stream; it receives on the streams its peers
//! dialled. OmniPaxos' accept-phase messages carry sequence numbers and need per-peer order,
//! which one TCP stream gives. A stream opens with the handshake of [`peer_auth`] (a `Hello`
//! naming the cluster and the sender; with a cluster secret, proof of it); anything else is
//! refused. Inbound streams are bounded: at most [`HANDSHAKES_MAX`] in handshake (the oldest
//! is dropped for a newcomer) and one authenticated stream per member (a newer one replaces
//! it). Links can be cut by the operator: a cut link drops traffic both ways in this process,
//! which is how the demo's partitions are real to OmniPaxos.
//!
//! A message that carries a snapshot can take the event loop longer to encode than an election
//! timeout (40 MB of JSON is most of a second in a debug build), and a leader that stalls that
//! long is replaced, whereupon the new leader sends the snapshot again and stalls in turn.
//! Such messages are encoded on the blocking pool instead ([`Transport::send_encoded_later`]);
//! the link's queue keeps their place, so the peer still receives in the order sent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use omnikv_core::event::MessageInfo;
use omnikv_core::limits::{EVENT_HELD_HEAD_MAX, HELD_MESSAGES_MAX};
use omnikv_core::peer::PeerFrame;
use omnikv_core::NodeId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::budget::ByteBudget;
use crate::handshakes::{HandshakePool, HandshakeTicket};
use crate::input::NodeInput as Input;
use crate::peer_auth::{self, PeerIdentity, HANDSHAKE_TIMEOUT};
use crate::peer_chunks::{self, Reassembly};
use crate::secret::ClusterSecret;

/// Messages queued per peer; beyond this, messages to a slow or dead peer are dropped (OmniPaxos
/// resends and resynchronises after `reconnected`).
pub const PEER_QUEUE_LEN: usize = 4096;
/// Bytes queued per peer, with the same policy. One message larger than this is still queued
/// when nothing else is: a complete snapshot must be able to leave.
pub const PEER_QUEUE_BYTES_MAX: usize = 64 << 20;
const RECONNECT_DELAY: Duration = Duration::from_millis(50);
/// After a refused handshake: slower, so that a misconfigured node does not flood its peer.
const HANDSHAKE_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Inbound streams in their handshake at once. Authenticated streams do not count (there is at
/// most one per member), so inbound streams are bounded by this plus the member count.
pub const HANDSHAKES_MAX: usize = 64;
/// Bytes of one member's messages waiting in the node's input queue; beyond it the stream is
/// not read until the event loop catches up.
pub const PEER_INPUT_BYTES_MAX: usize = 64 << 20;

/// Per-peer flags shared by the event loop and the link tasks.
#[derive(Default)]
pub struct LinkState {
    /// Wakes the link task to break its stream (a held message was dropped).
    pub break_stream: tokio::sync::Notify,
    /// Not cut by the operator.
    pub enabled: AtomicBool,
    /// The outgoing stream is established.
    pub connected: AtomicBool,
    /// Bytes of the messages queued for the peer and not yet written.
    pub queued_bytes: AtomicUsize,
    /// A message carrying a snapshot is queued or being encoded: one at a time per link, since
    /// each holds a copy of the table until it is written.
    pub snapshot_queued: AtomicBool,
}

/// One message on a link's send queue.
enum Outbound {
    Encoded(Bytes),
    /// Being encoded on the blocking pool; its bytes count as queued once encoded.
    Encoding(oneshot::Receiver<Bytes>),
}

/// The event loop's end of one peer link.
struct Link {
    tx: mpsc::Sender<Outbound>,
    state: Arc<LinkState>,
    /// Messages held for delivery one by one (`None`: the link is not held), oldest first,
    /// each with its summary for the page.
    held: Option<VecDeque<(Bytes, MessageInfo)>>,
}

/// What the messages held on one link look like now (for an event).
pub struct HeldSummary {
    pub peer: NodeId,
    pub held: bool,
    pub waiting: u64,
    pub head: Vec<MessageInfo>,
}

pub struct Transport {
    links: BTreeMap<NodeId, Link>,
    /// Links whose held messages changed since [`Transport::take_held_changes`].
    held_changed: BTreeSet<NodeId>,
    dropped: u64,
}

impl Transport {
    /// Starts the listener and one dialer per peer. `peers` excludes this node.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        id: NodeId,
        cluster_id: String,
        secret: Option<Arc<ClusterSecret>>,
        listener: TcpListener,
        peers: BTreeMap<NodeId, SocketAddr>,
        cut: &[NodeId],
        inputs: mpsc::Sender<Input>,
        shutdown: CancellationToken,
    ) -> Transport {
        let me = PeerIdentity {
            id,
            cluster_id,
            secret,
        };
        let mut links = BTreeMap::new();
        for (&peer, &addr) in &peers {
            let state = Arc::new(LinkState::default());
            state.enabled.store(!cut.contains(&peer), Ordering::Release);
            let (tx, rx) = mpsc::channel(PEER_QUEUE_LEN);
            tokio::spawn(dial(
                me.clone(),
                peer,
                addr,
                rx,
                state.clone(),
                inputs.clone(),
                shutdown.clone(),
            ));
            links.insert(
                peer,
                Link {
                    tx,
                    state,
                    held: None,
                },
            );
        }
        let inbound = Inbound {
            me,
            states: links.iter().map(|(&p, l)| (p, l.state.clone())).collect(),
            current: Mutex::new(BTreeMap::new()),
            handshakes: HandshakePool::new(HANDSHAKES_MAX),
            next_stream: AtomicU64::new(0),
            inputs,
            shutdown,
        };
        tokio::spawn(accept(listener, Arc::new(inbound)));
        Transport {
            links,
            held_changed: BTreeSet::new(),
            dropped: 0,
        }
    }

    /// Queues a message for `to`, or holds it if the link is held: `info` summarises it for
    /// the page and is needed only then (see [`Transport::held`]). Returns false if it was
    /// dropped (link cut or queue full).
    pub fn send(&mut self, to: NodeId, message: Bytes, info: Option<MessageInfo>) -> bool {
        let Some(link) = self.links.get_mut(&to) else {
            return false;
        };
        if !link.state.enabled.load(Ordering::Acquire) {
            self.dropped += 1;
            return false;
        }
        if let Some(held) = &mut link.held {
            let Some(info) = info else {
                debug_assert!(false, "a message for a held link comes with its summary");
                return false;
            };
            if is_heartbeat(&info) {
                // Leader election's heartbeats pass: see `is_heartbeat`.
                return enqueue(link, message) || {
                    self.dropped += 1;
                    false
                };
            }
            held.push_back((message, info));
            self.held_changed.insert(to);
            if held.len() > HELD_MESSAGES_MAX {
                // Nobody is stepping through this many: stop holding, and cut the link rather
                // than let its queue grow (the page shows the cut).
                warn!(
                    peer = to,
                    "more than {HELD_MESSAGES_MAX} messages held: link cut"
                );
                link.held = None;
                link.state.enabled.store(false, Ordering::Release);
            }
            return true;
        }
        if !enqueue(link, message) {
            self.dropped += 1;
            return false;
        }
        true
    }

    /// Queues a read-index frame for `to`. A held link lets it pass, as it lets leader
    /// election's heartbeats (see `is_heartbeat`): like them it carries nothing of the log and
    /// no replication message depends on its order, and holding it would only stall reads
    /// while a person steps through replication. Returns false if it was dropped.
    pub fn send_read_index(&mut self, to: NodeId, message: Bytes) -> bool {
        let Some(link) = self.links.get_mut(&to) else {
            return false;
        };
        if !link.state.enabled.load(Ordering::Acquire) || !enqueue(link, message) {
            self.dropped += 1;
            return false;
        }
        true
    }

    /// As [`Transport::send`] for a message costly to encode (one carrying a snapshot): it is
    /// encoded on the blocking pool, behind whatever is queued before it and ahead of whatever
    /// is queued after. A held link holds it encoded, as any other message.
    ///
    /// One such message per link at a time: each holds a copy of the table until written, so a
    /// second one while the first waits is lost, as a message that does not fit the queue is
    /// (the caller tells the replica, which answers the follower's next request again).
    pub fn send_encoded_later(&mut self, to: NodeId, frame: PeerFrame, info: MessageInfo) -> bool {
        let Some(link) = self.links.get(&to) else {
            return false;
        };
        if !link.state.enabled.load(Ordering::Acquire) {
            self.dropped += 1;
            return false;
        }
        if link.held.is_some() {
            return self.send(to, encode(&frame), Some(info));
        }
        let state = link.state.clone();
        if state.snapshot_queued.swap(true, Ordering::AcqRel) {
            self.dropped += 1;
            return false;
        }
        let (done, encoding) = oneshot::channel();
        if link.tx.try_send(Outbound::Encoding(encoding)).is_err() {
            state.snapshot_queued.store(false, Ordering::Release);
            self.dropped += 1;
            return false;
        }
        tokio::task::spawn_blocking(move || {
            let bytes = encode(&frame);
            state.queued_bytes.fetch_add(bytes.len(), Ordering::AcqRel);
            let _ = done.send(bytes);
        });
        true
    }

    pub fn set_link(&mut self, peer: NodeId, enabled: bool) -> bool {
        match self.links.get_mut(&peer) {
            Some(link) => {
                link.state.enabled.store(enabled, Ordering::Release);
                // A cut loses what was waiting, as it loses what is sent.
                if !enabled {
                    if let Some(held) = &mut link.held {
                        held.clear();
                        self.held_changed.insert(peer);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Holds (or releases) the messages to `peer`; releasing sends what waits, in order.
    /// False if `peer` is not a peer.
    pub fn hold(&mut self, peer: NodeId, held: bool) -> bool {
        let Some(link) = self.links.get_mut(&peer) else {
            return false;
        };
        match (held, link.held.take()) {
            (true, waiting) => link.held = Some(waiting.unwrap_or_default()),
            (false, Some(waiting)) => {
                for (message, _) in waiting {
                    enqueue(link, message);
                }
            }
            (false, None) => {}
        }
        self.held_changed.insert(peer);
        true
    }

    /// Sends the first `count` messages held for `peer`; returns how many there were.
    pub fn deliver(&mut self, peer: NodeId, count: u32) -> Option<u32> {
        let link = self.links.get_mut(&peer)?;
        let mut waiting = link.held.take()?;
        let n = (count as usize).min(waiting.len());
        for (message, _) in waiting.drain(..n) {
            enqueue(link, message);
        }
        link.held = Some(waiting);
        self.held_changed.insert(peer);
        Some(n as u32)
    }

    /// Drops the first message held for `peer` and breaks the link's stream, the one way a
    /// message is lost on a FIFO link; returns whether there was one.
    pub fn drop_held(&mut self, peer: NodeId) -> Option<bool> {
        let link = self.links.get_mut(&peer)?;
        let dropped = link.held.as_mut()?.pop_front().is_some();
        if dropped {
            link.state.break_stream.notify_one();
            self.held_changed.insert(peer);
        }
        Some(dropped)
    }

    /// The held links that changed since the last call.
    pub fn take_held_changes(&mut self) -> Vec<HeldSummary> {
        std::mem::take(&mut self.held_changed)
            .into_iter()
            .filter_map(|peer| {
                let link = self.links.get(&peer)?;
                let waiting = link.held.as_ref();
                Some(HeldSummary {
                    peer,
                    held: waiting.is_some(),
                    waiting: waiting.map_or(0, |w| w.len() as u64),
                    head: waiting
                        .into_iter()
                        .flatten()
                        .take(EVENT_HELD_HEAD_MAX)
                        .map(|(_, info)| info.clone())
                        .collect(),
                })
            })
            .collect()
    }

    /// Whether messages to `peer` are held, and how many wait.
    pub fn held(&self, peer: NodeId) -> (bool, u64) {
        match self.links.get(&peer).and_then(|l| l.held.as_ref()) {
            Some(waiting) => (true, waiting.len() as u64),
            None => (false, 0),
        }
    }

    pub fn is_peer(&self, peer: NodeId) -> bool {
        self.links.contains_key(&peer)
    }

    pub fn link_enabled(&self, peer: NodeId) -> bool {
        self.links
            .get(&peer)
            .is_some_and(|l| l.state.enabled.load(Ordering::Acquire))
    }

    /// The link to `peer` is neither cut nor down.
    pub fn link_up(&self, peer: NodeId) -> bool {
        self.links.get(&peer).is_some_and(|l| {
            l.state.enabled.load(Ordering::Acquire) && l.state.connected.load(Ordering::Acquire)
        })
    }

    pub fn peers(&self) -> impl Iterator<Item = (NodeId, bool, bool)> + '_ {
        self.links.iter().map(|(&p, l)| {
            (
                p,
                l.state.connected.load(Ordering::Acquire),
                l.state.enabled.load(Ordering::Acquire),
            )
        })
    }
}

/// Whether a message belongs to leader election's heartbeats, which a held link lets through.
///
/// OmniPaxos' leader election and its replication are separate protocols on one stream: the
/// heartbeats carry ballots and nothing of the log, and no replication message depends on their
/// order. Held heartbeats would make every follower of a held link call an election within a
/// few ticks (5 ticks of 10 ms by default), and pile up at some 100 a second; passing them keeps
/// the leader while a person steps through replication message by message, and an election
/// (after a kill, say) still runs and its `Prepare` and `Promise` wait to be stepped through.
fn is_heartbeat(info: &MessageInfo) -> bool {
    info.kind.is_heartbeat()
}

/// Encodes a peer frame as it goes on the wire (before chunking).
pub fn encode(frame: &PeerFrame) -> Bytes {
    Bytes::from(serde_json::to_vec(frame).expect("peer frames serialise"))
}

/// Puts a message on the link's send queue, within its count and byte bounds. A message that
/// does not fit is lost without ending the stream: a new stream could deliver later messages
/// before the old one's last, which OmniPaxos does not expect; its sequence numbers find the
/// gap instead, and the sender's replica is told (`Replica::message_lost`).
fn enqueue(link: &Link, message: Bytes) -> bool {
    let len = message.len();
    let queued = link.state.queued_bytes.load(Ordering::Acquire);
    if queued > 0 && queued + len > PEER_QUEUE_BYTES_MAX
        || link.tx.try_send(Outbound::Encoded(message)).is_err()
    {
        return false;
    }
    link.state.queued_bytes.fetch_add(len, Ordering::AcqRel);
    true
}

/// The bytes of a queued message, waiting for its encoding if need be (what is already
/// buffered for the stream is flushed first, so that it does not wait on the encoding); `None`
/// if the stream broke or the encoding was lost (its task panicked), which the link treats as a
/// lost message.
async fn ready(
    out: &mut peer_auth::PeerStream,
    state: &LinkState,
    message: Outbound,
) -> Option<Bytes> {
    match message {
        Outbound::Encoded(bytes) => Some(bytes),
        Outbound::Encoding(encoding) => {
            let flushed = SinkExt::<Bytes>::flush(out).await.is_ok();
            let bytes = encoding.await.ok();
            state.snapshot_queued.store(false, Ordering::Release);
            match (flushed, bytes) {
                (true, bytes) => bytes,
                (false, Some(lost)) => {
                    // Counted as queued by its encoder, and never to be written.
                    state.queued_bytes.fetch_sub(lost.len(), Ordering::AcqRel);
                    None
                }
                (false, None) => None,
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn dial(
    me: PeerIdentity,
    peer: NodeId,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Outbound>,
    state: Arc<LinkState>,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::ZERO;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = TcpStream::connect(addr) => s,
        };
        let Ok(stream) = stream else {
            delay = RECONNECT_DELAY;
            continue;
        };
        // A stream that breaks after working is reconnected at once.
        delay = Duration::ZERO;
        let _ = stream.set_nodelay(true);
        let mut out = peer_auth::stream(stream);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, peer_auth::open(&mut out, &me, peer)).await {
            Ok(Ok(())) => peer_auth::authenticated(&mut out),
            failed => {
                // Usually the peer restarting; a peer that keeps refusing us (another secret)
                // is told so in its own log, and we retry at a pace that does not flood it.
                debug!(peer, %addr, ?failed, "peer handshake failed");
                delay = HANDSHAKE_RETRY_DELAY;
                continue;
            }
        }
        debug!(peer, %addr, "peer link up");
        state.connected.store(true, Ordering::Release);
        if inputs
            .send(Input::PeerLink { peer, up: true })
            .await
            .is_err()
        {
            return;
        }
        loop {
            let frame = tokio::select! {
                _ = shutdown.cancelled() => return,
                // A held message was dropped: the stream ends, as a lost message ends it.
                _ = state.break_stream.notified() => break,
                f = rx.recv() => f,
            };
            let Some(message) = frame else { return };
            // Messages already queued go out in one write: fewer syscalls under load.
            let mut ok = feed(&mut out, &state, message).await;
            while ok {
                match rx.try_recv() {
                    Ok(m) => ok = feed(&mut out, &state, m).await,
                    Err(_) => break,
                }
            }
            if !ok || SinkExt::<Bytes>::flush(&mut out).await.is_err() {
                break;
            }
        }
        debug!(peer, "peer link down");
        state.connected.store(false, Ordering::Release);
        if inputs
            .send(Input::PeerLink { peer, up: false })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Writes one message's frames to the stream's buffer; false if the stream broke or the
/// message was lost (the stream then ends, the one way a message is lost on a link).
async fn feed(out: &mut peer_auth::PeerStream, state: &LinkState, message: Outbound) -> bool {
    let Some(message) = ready(out, state, message).await else {
        return false;
    };
    state
        .queued_bytes
        .fetch_sub(message.len(), Ordering::AcqRel);
    for frame in peer_chunks::split(&message) {
        if out.feed(frame).await.is_err() {
            return false;
        }
    }
    true
}

/// What the listener and every inbound stream share.
struct Inbound {
    me: PeerIdentity,
    states: BTreeMap<NodeId, Arc<LinkState>>,
    /// Each member's current inbound stream (by admission number): a newer authenticated
    /// stream from the same member cancels the older, so a member holds at most one.
    current: Mutex<BTreeMap<NodeId, (u64, CancellationToken)>>,
    /// Streams still in their handshake; beyond [`HANDSHAKES_MAX`] the oldest is dropped.
    handshakes: Arc<HandshakePool>,
    next_stream: AtomicU64,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
}

async fn accept(listener: TcpListener, inbound: Arc<Inbound>) {
    loop {
        let (stream, remote) = tokio::select! {
            _ = inbound.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "peer accept failed");
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let ticket = inbound.handshakes.admit();
        tokio::spawn(receive(stream, remote, ticket, inbound.clone()));
    }
}

/// Frames from this size on (snapshots) are decoded on the blocking pool: a node runs on one
/// thread, and decoding tens of megabytes there would hold its event loop past an election
/// timeout.
const DECODE_ASIDE_BYTES: usize = 256 << 10;

async fn decode_frame(bytes: Bytes) -> Result<PeerFrame, String> {
    if bytes.len() < DECODE_ASIDE_BYTES {
        return serde_json::from_slice(&bytes).map_err(|e| e.to_string());
    }
    tokio::task::spawn_blocking(move || serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}

async fn receive(
    stream: TcpStream,
    remote: SocketAddr,
    ticket: HandshakeTicket,
    inb: Arc<Inbound>,
) {
    let mut frames = peer_auth::stream(stream);
    let is_member = |id| inb.states.contains_key(&id);
    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        peer_auth::accept(&mut frames, &inb.me, is_member),
    );
    let from = tokio::select! {
        _ = inb.shutdown.cancelled() => return,
        // Newer connections took its place: it was one of a flood, or very slow.
        _ = ticket.evicted() => return,
        r = handshake => match r {
            Ok(Ok(from)) => from,
            Ok(Err(e)) => {
                warn!(%remote, error = %e, "refused peer");
                return;
            }
            Err(_) => {
                warn!(%remote, "refused peer: no handshake in time");
                return;
            }
        },
    };
    drop(ticket);
    peer_auth::authenticated(&mut frames);
    let number = inb.next_stream.fetch_add(1, Ordering::Relaxed);
    let replaced = inb.shutdown.child_token();
    let older = inb
        .current
        .lock()
        .expect("no panics while held")
        .insert(from, (number, replaced.clone()));
    if let Some((_, older)) = older {
        older.cancel();
        info!(peer = from, "peer connected (replacing its older stream)");
    } else {
        info!(peer = from, "peer connected");
    }
    let state = &inb.states[&from];
    let mut pieces = Reassembly::default();
    let budget = ByteBudget::new(PEER_INPUT_BYTES_MAX);
    loop {
        let next = tokio::select! {
            _ = replaced.cancelled() => break,
            n = frames.next() => n,
        };
        let frame = match next {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                warn!(peer = from, error = %e, "peer stream error");
                break;
            }
            None => break,
        };
        let bytes = match pieces.push(frame) {
            Ok(Some(message)) => message,
            Ok(None) => continue,
            Err(e) => {
                warn!(peer = from, error = %e, "dropping peer stream");
                break;
            }
        };
        if !state.enabled.load(Ordering::Acquire) {
            continue;
        }
        let len = bytes.len();
        match decode_frame(bytes).await {
            Ok(PeerFrame::Paxos { msg_id, msg }) if msg.get_sender() == from => {
                let charge = tokio::select! {
                    _ = replaced.cancelled() => break,
                    c = budget.charge(len) => c,
                };
                let input = Input::Peer {
                    from,
                    msg_id,
                    msg,
                    charge,
                };
                if inb.inputs.send(input).await.is_err() {
                    break;
                }
            }
            Ok(PeerFrame::ReadIndex(msg)) => {
                if inb
                    .inputs
                    .send(Input::ReadIndex { from, msg })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Ok(_) => {
                warn!(
                    peer = from,
                    "dropping peer stream: unexpected or spoofed frame"
                );
                break;
            }
            Err(e) => {
                warn!(peer = from, error = %e, "dropping peer stream: undecodable frame");
                break;
            }
        }
    }
    let mut current = inb.current.lock().expect("no panics while held");
    if current.get(&from).is_some_and(|(n, _)| *n == number) {
        current.remove(&from);
    }
}
