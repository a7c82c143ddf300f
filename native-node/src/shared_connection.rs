//! Client sessions sharing one `/client` WebSocket connection, as gRPC clients share theirs:
//! the protocol lets any number of sessions pipeline on one connection (each reply carries its
//! request's id), so a node reads a burst of requests per wake-up and writes a burst of replies
//! per write. The load generator drives OmniKV this way, as it drives etcd.
//!
//! One task per connection owns the socket. Callers hand it a request and a place for the
//! answer; it writes every request waiting, reads replies and routes each by its id. Each client
//! has at most one request in flight, so the routing table holds at most one entry per client.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use omnikv_core::client::{ClientRequest, ClientResponse};
use omnikv_core::RequestId;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::client::{Connection, ConnectionError};

/// Requests waiting for the connection's task: one per client at most, so this never fills
/// in a closed loop; an open loop's late clients wait here, which their latency shows.
const WAITING_REQUESTS_MAX: usize = 1024;

type Answer = Result<ClientResponse, ConnectionError>;

/// A handle on one shared connection; cheap to clone, one per client.
#[derive(Clone)]
pub struct SharedConnection {
    requests: mpsc::Sender<(ClientRequest, oneshot::Sender<Answer>)>,
}

impl SharedConnection {
    /// Opens the connection to `endpoint`'s `/client` and starts its task.
    pub async fn open(endpoint: &str, timeout: Duration) -> Result<Self, ConnectionError> {
        let conn = Connection::open(endpoint, "client", timeout).await?;
        let (requests, waiting) = mpsc::channel(WAITING_REQUESTS_MAX);
        tokio::spawn(serve(conn, waiting));
        Ok(SharedConnection { requests })
    }

    /// Sends `req` and waits at most `timeout` for its reply.
    pub async fn request(&self, req: ClientRequest, timeout: Duration) -> Answer {
        let (tx, rx) = oneshot::channel();
        let lost = || ConnectionError::Lost("the shared connection closed".into());
        self.requests.send((req, tx)).await.map_err(|_| lost())?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(lost()),
            Err(_) => Err(ConnectionError::Timeout(timeout)),
        }
    }
}

/// The connection's task: runs until the socket fails or every handle is dropped, then fails
/// whatever still waits.
async fn serve(
    conn: Connection,
    mut waiting: mpsc::Receiver<(ClientRequest, oneshot::Sender<Answer>)>,
) {
    let (mut sink, mut stream) = conn.into_ws().split();
    let mut pending: HashMap<RequestId, oneshot::Sender<Answer>> = HashMap::new();
    let failure = loop {
        tokio::select! {
            next = waiting.recv() => {
                let Some(first) = next else { break None };
                // Requests already waiting share one write.
                let mut next = Some(first);
                let mut wrote = Ok(());
                while let Some((req, tx)) = next.take() {
                    let json = serde_json::to_string(&req).expect("requests serialise");
                    pending.insert(req.id, tx);
                    wrote = sink.feed(WsMessage::text(json)).await;
                    if wrote.is_err() {
                        break;
                    }
                    next = waiting.try_recv().ok();
                }
                if let Err(e) = wrote.and(sink.flush().await) {
                    break Some(e.to_string());
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    if let Err(reason) = route(&text, &mut pending) {
                        break Some(reason);
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None => break Some("closed by the node".into()),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Some(e.to_string()),
            },
        }
    };
    let reason = failure.unwrap_or_else(|| "closed".into());
    for (_, tx) in pending.drain() {
        let _ = tx.send(Err(ConnectionError::Lost(reason.clone())));
    }
}

/// Hands a reply to the request it answers. A reply without an id (a frame the node could not
/// read) cannot be routed: the connection is failed, since its requests' fates are unknown.
fn route(
    text: &str,
    pending: &mut HashMap<RequestId, oneshot::Sender<Answer>>,
) -> Result<(), String> {
    let resp: ClientResponse =
        serde_json::from_str(text).map_err(|e| format!("undecodable reply: {e}"))?;
    let id = match &resp {
        ClientResponse::Ok { id, .. } => Some(*id),
        ClientResponse::Err { id, .. } => *id,
    };
    let id = id.ok_or_else(|| format!("a reply with no request id: {text}"))?;
    // A reply whose caller gave up (timed out) finds no one waiting.
    if let Some(tx) = pending.remove(&id) {
        let _ = tx.send(Ok(resp));
    }
    Ok(())
}
