//! A node's WebSocket endpoint: `/client` (requests and replies), `/events` (the event stream)
//! and `/admin` (link control, status, dumps), on one port.
//!
//! Connections never touch node state: they decode frames, hand typed inputs to the event loop
//! and write back what it answers. A malformed frame gets an error reply and the connection
//! stays open. Connections and per-connection reply queues are bounded. Who may connect, and
//! what `/admin` lets them do, is decided at the upgrade by [`UpgradePolicy`].

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::{ClientError, ClientRequest, ClientResponse},
    decode_json,
    limits::{ADMIN_FRAME_BYTES_MAX, CLIENT_FRAME_BYTES_MAX},
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio_tungstenite::tungstenite::{
    handshake::server::{ErrorResponse, Request, Response},
    http::{self, StatusCode},
    protocol::WebSocketConfig,
    Message as WsMessage,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::events::EventBus;
use crate::node::Input;
use crate::ws_access::{AdminRights, UpgradePolicy};

/// Open WebSocket connections per node.
pub const CONNECTIONS_MAX: usize = 1024;
/// Replies queued per client connection (pipelined requests in flight).
const REPLY_QUEUE_LEN: usize = 4096;
/// Frames larger than this are refused by the WebSocket layer itself and close the
/// connection; frames between the per-endpoint limit and this one get an error reply.
const WS_MESSAGE_BYTES_MAX: usize = 4 * CLIENT_FRAME_BYTES_MAX;
/// Events written before a flush, so one slow burst cannot hold a subscriber's socket forever.
const FLUSH_EVERY_FRAMES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Client,
    Events,
    Admin,
}

pub async fn serve(
    listener: TcpListener,
    policy: UpgradePolicy,
    inputs: mpsc::Sender<Input>,
    bus: EventBus,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let policy = Arc::new(policy);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = slots.clone().acquire_owned() => p.expect("semaphore never closes"),
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let inputs = inputs.clone();
        let bus = bus.clone();
        let shutdown = shutdown.clone();
        let policy = policy.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &policy, inputs, bus, shutdown).await {
                debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
}

/// An HTTP error reply to a refused upgrade.
fn refuse(status: StatusCode, reason: String) -> ErrorResponse {
    let mut err = ErrorResponse::new(Some(reason));
    *err.status_mut() = status;
    err
}

async fn connection(
    stream: TcpStream,
    policy: &UpgradePolicy,
    inputs: mpsc::Sender<Input>,
    bus: EventBus,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut endpoint = None;
    let mut rights = AdminRights::ReadOnly;
    let route = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        if let Err(e) = policy.check_origin(header(http::header::ORIGIN)) {
            return Err(refuse(StatusCode::FORBIDDEN, e.to_string()));
        }
        endpoint = match req.uri().path() {
            "/client" => Some(Endpoint::Client),
            "/events" => Some(Endpoint::Events),
            "/admin" => Some(Endpoint::Admin),
            _ => None,
        };
        match endpoint {
            None => Err(refuse(
                StatusCode::NOT_FOUND,
                "unknown endpoint: use /client, /events or /admin".into(),
            )),
            Some(Endpoint::Admin) => match policy.admin_rights(header(http::header::AUTHORIZATION))
            {
                Ok(r) => {
                    rights = r;
                    Ok(resp)
                }
                Err(e) => Err(refuse(StatusCode::UNAUTHORIZED, e.to_string())),
            },
            Some(_) => Ok(resp),
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(WS_MESSAGE_BYTES_MAX))
        .max_frame_size(Some(WS_MESSAGE_BYTES_MAX));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, route, Some(config)).await?;
    match endpoint.expect("set by a successful handshake") {
        Endpoint::Client => client(ws, inputs, shutdown).await,
        Endpoint::Events => events(ws, bus, shutdown).await,
        Endpoint::Admin => admin(ws, rights, inputs, shutdown).await,
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

fn text_of(msg: &WsMessage) -> Option<&[u8]> {
    match msg {
        WsMessage::Text(t) => Some(t.as_bytes()),
        WsMessage::Binary(b) => Some(b),
        _ => None,
    }
}

async fn client(
    ws: Ws,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    let (reply_tx, mut reply_rx) = mpsc::channel::<ClientResponse>(REPLY_QUEUE_LEN);
    let writer = tokio::spawn(async move {
        'replies: while let Some(resp) = reply_rx.recv().await {
            // Replies already waiting share one write.
            let mut next = Some(resp);
            while let Some(resp) = next.take() {
                let json = serde_json::to_string(&resp).expect("responses serialise");
                if sink.feed(WsMessage::text(json)).await.is_err() {
                    break 'replies;
                }
                next = reply_rx.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = stream.next() => m,
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                let _ = reply_tx.try_send(bad_request(format!("connection error: {e}")));
                break;
            }
            None => break,
        };
        if msg.is_close() {
            break;
        }
        let Some(bytes) = text_of(&msg) else { continue };
        match decode_json::<ClientRequest>(bytes, CLIENT_FRAME_BYTES_MAX) {
            Ok(req) => {
                let input = Input::Client {
                    req,
                    reply: reply_tx.clone(),
                };
                if inputs.send(input).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                if reply_tx.send(bad_request(e.to_string())).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(reply_tx);
    let _ = writer.await;
    Ok(())
}

fn bad_request(reason: String) -> ClientResponse {
    ClientResponse::Err {
        id: None,
        error: ClientError::BadRequest { reason },
    }
}

async fn events(ws: Ws, bus: EventBus, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    let (status, mut rx) = bus.subscribe();
    if let Some(status) = status {
        sink.send(WsMessage::text(status.to_string())).await?;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            incoming = stream.next() => match incoming {
                // Subscribers have nothing to say; anything but a close is ignored.
                Some(Ok(m)) if !m.is_close() => continue,
                _ => break,
            },
            event = rx.recv() => {
                // Everything already queued goes out in one write: one syscall per burst,
                // not per event, so a busy node pays little for its watchers.
                let mut next = Some(event);
                let mut queued = 0;
                while let Some(event) = next.take() {
                    match event {
                        Ok(frame) => sink.feed(WsMessage::text(frame.to_string())).await?,
                        Err(broadcast::error::RecvError::Lagged(dropped)) => {
                            sink.feed(WsMessage::text(bus.lag_notice(dropped))).await?
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                    queued += 1;
                    if queued < FLUSH_EVERY_FRAMES {
                        next = match rx.try_recv() {
                            Ok(frame) => Some(Ok(frame)),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                Some(Err(broadcast::error::RecvError::Lagged(n)))
                            }
                            Err(_) => None,
                        };
                    }
                }
                sink.flush().await?;
            }
        }
    }
    let _ = sink.close().await;
    Ok(())
}

async fn admin(
    ws: Ws,
    rights: AdminRights,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = stream.next() => m,
        };
        let msg = match msg {
            Some(Ok(m)) if !m.is_close() => m,
            _ => break,
        };
        let Some(bytes) = text_of(&msg) else { continue };
        let resp = match decode_json::<AdminRequest>(bytes, ADMIN_FRAME_BYTES_MAX) {
            Ok(req) if !rights.allows(&req) => AdminResponse::Error {
                message: "this request changes the node: it needs the cluster secret \
                          (Authorization: Bearer SECRET on the /admin upgrade)"
                    .into(),
            },
            Ok(req) => {
                let (tx, rx) = oneshot::channel();
                if inputs.send(Input::Admin { req, reply: tx }).await.is_err() {
                    break;
                }
                match rx.await {
                    Ok(r) => r,
                    Err(_) => break,
                }
            }
            Err(e) => AdminResponse::Error {
                message: e.to_string(),
            },
        };
        let json = serde_json::to_string(&resp).expect("responses serialise");
        sink.send(WsMessage::text(json)).await?;
    }
    let _ = sink.close().await;
    Ok(())
}
