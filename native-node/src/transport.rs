//! Peer links: one ordered TCP stream per peer and direction, reconnecting.
//!
//! Each node dials every peer and sends on that stream; it receives on the streams its peers
//! dialled. OmniPaxos' accept-phase messages carry sequence numbers and need per-peer order,
//! which one TCP stream gives. A stream opens with a `Hello` carrying the cluster id and the
//! sender's id; anything else is refused. Links can be cut by the operator: a cut link drops
//! traffic both ways in this process, which is how the demo's partitions are real to OmniPaxos.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use omnikv_core::limits::PEER_FRAME_BYTES_MAX;
use omnikv_core::peer::PeerFrame;
use omnikv_core::NodeId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::input::NodeInput as Input;

/// Frames queued per peer; beyond this, messages to a slow or dead peer are dropped (OmniPaxos
/// resends and resynchronises after `reconnected`).
pub const PEER_QUEUE_LEN: usize = 4096;
const RECONNECT_DELAY: Duration = Duration::from_millis(50);
const HELLO_TIMEOUT: Duration = Duration::from_secs(2);

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(PEER_FRAME_BYTES_MAX)
        .new_codec()
}

/// Per-peer flags shared by the event loop and the link tasks.
#[derive(Default)]
pub struct LinkState {
    /// Not cut by the operator.
    pub enabled: AtomicBool,
    /// The outgoing stream is established.
    pub connected: AtomicBool,
}

pub struct Transport {
    links: BTreeMap<NodeId, (mpsc::Sender<Bytes>, Arc<LinkState>)>,
    dropped: u64,
}

impl Transport {
    /// Starts the listener and one dialer per peer. `peers` excludes this node.
    pub fn start(
        id: NodeId,
        cluster_id: String,
        listener: TcpListener,
        peers: BTreeMap<NodeId, SocketAddr>,
        cut: &[NodeId],
        inputs: mpsc::Sender<Input>,
        shutdown: CancellationToken,
    ) -> Transport {
        let mut links = BTreeMap::new();
        for (&peer, &addr) in &peers {
            let state = Arc::new(LinkState::default());
            state.enabled.store(!cut.contains(&peer), Ordering::Release);
            let (tx, rx) = mpsc::channel(PEER_QUEUE_LEN);
            tokio::spawn(dial(
                id,
                cluster_id.clone(),
                peer,
                addr,
                rx,
                state.clone(),
                inputs.clone(),
                shutdown.clone(),
            ));
            links.insert(peer, (tx, state));
        }
        let states: BTreeMap<NodeId, Arc<LinkState>> =
            links.iter().map(|(&p, (_, s))| (p, s.clone())).collect();
        tokio::spawn(accept(listener, cluster_id, states, inputs, shutdown));
        Transport { links, dropped: 0 }
    }

    /// Queues a frame for `to`. Returns false if it was dropped (link cut or queue full).
    pub fn send(&mut self, to: NodeId, frame: Bytes) -> bool {
        let Some((tx, state)) = self.links.get(&to) else {
            return false;
        };
        if !state.enabled.load(Ordering::Acquire) || tx.try_send(frame).is_err() {
            self.dropped += 1;
            return false;
        }
        true
    }

    pub fn set_link(&self, peer: NodeId, enabled: bool) -> bool {
        match self.links.get(&peer) {
            Some((_, state)) => {
                state.enabled.store(enabled, Ordering::Release);
                true
            }
            None => false,
        }
    }

    pub fn is_peer(&self, peer: NodeId) -> bool {
        self.links.contains_key(&peer)
    }

    pub fn link_enabled(&self, peer: NodeId) -> bool {
        self.links
            .get(&peer)
            .is_some_and(|(_, s)| s.enabled.load(Ordering::Acquire))
    }

    /// The link to `peer` is neither cut nor down.
    pub fn link_up(&self, peer: NodeId) -> bool {
        self.links.get(&peer).is_some_and(|(_, s)| {
            s.enabled.load(Ordering::Acquire) && s.connected.load(Ordering::Acquire)
        })
    }

    pub fn peers(&self) -> impl Iterator<Item = (NodeId, bool, bool)> + '_ {
        self.links.iter().map(|(&p, (_, s))| {
            (
                p,
                s.connected.load(Ordering::Acquire),
                s.enabled.load(Ordering::Acquire),
            )
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn dial(
    id: NodeId,
    cluster_id: String,
    peer: NodeId,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    state: Arc<LinkState>,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) {
    let hello = Bytes::from(
        serde_json::to_vec(&PeerFrame::Hello {
            cluster_id,
            from: id,
        })
        .expect("hello serialises"),
    );
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = TcpStream::connect(addr) => s,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(_) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(RECONNECT_DELAY) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let mut out = FramedWrite::new(stream, codec());
        if out.send(hello.clone()).await.is_err() {
            continue;
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
                f = rx.recv() => f,
            };
            let Some(frame) = frame else { return };
            // Frames already queued go out in one write: fewer syscalls under load.
            let mut ok = out.feed(frame).await.is_ok();
            while ok {
                match rx.try_recv() {
                    Ok(f) => ok = out.feed(f).await.is_ok(),
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

async fn accept(
    listener: TcpListener,
    cluster_id: String,
    states: BTreeMap<NodeId, Arc<LinkState>>,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) {
    let states = Arc::new(states);
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => return,
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
        tokio::spawn(receive(
            stream,
            remote,
            cluster_id.clone(),
            states.clone(),
            inputs.clone(),
            shutdown.clone(),
        ));
    }
}

async fn receive(
    stream: TcpStream,
    remote: SocketAddr,
    cluster_id: String,
    states: Arc<BTreeMap<NodeId, Arc<LinkState>>>,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) {
    let mut frames = FramedRead::new(stream, codec());
    let hello = tokio::time::timeout(HELLO_TIMEOUT, frames.next()).await;
    let from = match hello {
        Ok(Some(Ok(bytes))) => match serde_json::from_slice::<PeerFrame>(&bytes) {
            Ok(PeerFrame::Hello {
                cluster_id: c,
                from,
            }) if c == cluster_id && states.contains_key(&from) => from,
            Ok(PeerFrame::Hello {
                cluster_id: c,
                from,
            }) => {
                warn!(%remote, cluster = %c, from, "refused peer: not a member of this cluster");
                return;
            }
            _ => {
                warn!(%remote, "refused peer: no hello");
                return;
            }
        },
        _ => {
            warn!(%remote, "refused peer: no hello in time");
            return;
        }
    };
    let state = &states[&from];
    info!(peer = from, "peer connected");
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = frames.next() => n,
        };
        let bytes = match next {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                warn!(peer = from, error = %e, "peer stream error");
                return;
            }
            None => return,
        };
        if !state.enabled.load(Ordering::Acquire) {
            continue;
        }
        match serde_json::from_slice::<PeerFrame>(&bytes) {
            Ok(PeerFrame::Paxos { msg_id, msg }) if msg.get_sender() == from => {
                if inputs
                    .send(Input::Peer { from, msg_id, msg })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) => {
                warn!(
                    peer = from,
                    "dropping peer stream: unexpected or spoofed frame"
                );
                return;
            }
            Err(e) => {
                warn!(peer = from, error = %e, "dropping peer stream: undecodable frame");
                return;
            }
        }
    }
}
