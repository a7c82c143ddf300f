//! A node's WebSocket endpoint: `/client` (requests and replies), `/events` (the event stream),
//! `/admin` (link control, status, dumps, dump pages) and `/watch` (changes to a range of keys,
//! see `watchers`), on one port.
//!
//! Connections never touch node state: they decode frames, hand typed inputs to the event loop
//! and write back what it answers. A malformed frame gets an error reply and the connection
//! stays open. Who may connect, and what `/admin` lets them do, is decided at the upgrade by
//! [`UpgradePolicy`].
//!
//! Everything a connection can hold is bounded, in count and in time: connections in their
//! upgrade ([`HANDSHAKES_MAX`], the oldest dropped for a newcomer, each given
//! [`HANDSHAKE_TIMEOUT`]), open connections ([`CONNECTIONS_MAX`]), requests in flight per
//! client connection ([`REQUESTS_IN_FLIGHT_MAX`]: the reader stops reading beyond it, so a
//! pipelining client is slowed by TCP instead of filling the node's pending table), bytes held
//! by requests in flight, per connection ([`CONNECTION_BYTES_IN_FLIGHT_MAX`]) and per node
//! ([`CLIENT_BYTES_IN_FLIGHT_MAX`]), a write that makes no progress ([`WRITE_TIMEOUT`]) and a
//! peer that has gone silent ([`IDLE_TIMEOUT`]; the node pings every
//! [`PING_EVERY`](crate::ws_conn::PING_EVERY), and browsers and WebSocket libraries answer pings
//! by themselves).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use omnikv_core::wire::Encoding;
use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::{ClientError, ClientOp, ClientRequest, ClientResponse},
    limits::{ADMIN_FRAME_BYTES_MAX, CLIENT_FRAME_BYTES_MAX, VALUE_BYTES_MAX},
    scan::SCAN_REPLY_BYTES_MAX,
    txn::FOUND_VALUE_BYTES_MAX,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::{
    handshake::server::{ErrorResponse, Request, Response},
    http::{self, StatusCode},
    protocol::WebSocketConfig,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::budget::{ByteBudget, Charge};
use crate::changes::ChangeFeed;
use crate::dump_pages::DumpPages;
use crate::events::EventBus;
use crate::handshakes::{HandshakePool, HandshakeTicket};
use crate::input::ClientReplyTx;
use crate::input::NodeInput as Input;
use crate::ws_access::{AdminRights, UpgradePolicy};
use crate::ws_conn::{
    ping_ticker, ping_unless_idle, send_ping, Ws, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, WRITE_TIMEOUT,
};
use crate::ws_frames;

/// Open WebSocket connections per node (upgrades done).
pub const CONNECTIONS_MAX: usize = 1024;
/// Connections in their upgrade at once; a newcomer beyond it drops the oldest.
pub const HANDSHAKES_MAX: usize = 128;
/// Requests read from one client connection and not yet answered: as many as one session may
/// pipeline (its window), so that a well-behaved client is never slowed, while one connection
/// still cannot take every place of the node's pending table (`--pending-max`, 16 times more).
pub const REQUESTS_IN_FLIGHT_MAX: usize = omnikv_core::session::SESSION_WINDOW as usize;
/// Replies queued per client connection. At most [`REQUESTS_IN_FLIGHT_MAX`] are ever waiting
/// (one per request read), so the node's `try_send` of a reply never finds it full.
const REPLY_QUEUE_LEN: usize = 4096;
/// Bytes one client connection's requests may hold from the frame read to the reply written
/// (see [`request_bytes`]).
pub const CONNECTION_BYTES_IN_FLIGHT_MAX: usize = 16 << 20;
/// Bytes all client requests of the node may hold, the same way.
pub const CLIENT_BYTES_IN_FLIGHT_MAX: usize = 256 << 20;
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
    Watch,
}

/// What every connection task of one node shares.
struct Shared {
    policy: UpgradePolicy,
    /// Places for open connections, taken at the upgrade (a full node answers 503).
    slots: Arc<Semaphore>,
    inputs: mpsc::Sender<Input>,
    bus: EventBus,
    pages: Arc<DumpPages>,
    /// The window of recent changes that watchers read.
    changes: ChangeFeed,
    /// Bytes held by the client requests of every connection.
    client_bytes: ByteBudget,
    shutdown: CancellationToken,
}

pub async fn serve(
    listener: TcpListener,
    policy: UpgradePolicy,
    inputs: mpsc::Sender<Input>,
    bus: EventBus,
    pages: DumpPages,
    changes: ChangeFeed,
    shutdown: CancellationToken,
) {
    let handshakes = HandshakePool::new(HANDSHAKES_MAX);
    let shared = Arc::new(Shared {
        policy,
        slots: Arc::new(Semaphore::new(CONNECTIONS_MAX)),
        inputs,
        bus,
        pages: Arc::new(pages),
        changes,
        client_bytes: ByteBudget::new(CLIENT_BYTES_IN_FLIGHT_MAX),
        shutdown,
    });
    loop {
        // Accepting never waits for a place: a connection in its upgrade takes one from the
        // handshake pool (evicting the oldest), an upgraded one a slot (or a 503).
        let stream = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    // Out of file descriptors, usually: give connections time to close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let ticket = handshakes.admit();
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, ticket, &shared).await {
                debug!(error = %e, "connection ended");
            }
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
    ticket: HandshakeTicket,
    shared: &Shared,
) -> anyhow::Result<()> {
    let mut endpoint = None;
    let mut rights = AdminRights::ReadOnly;
    let mut slot: Option<OwnedSemaphorePermit> = None;
    let mut encoding = Encoding::Json;
    // The callback's signature is tungstenite's, large error type included.
    #[allow(clippy::result_large_err)]
    let route = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        if let Err(e) = shared.policy.check_origin(header(http::header::ORIGIN)) {
            return Err(refuse(StatusCode::FORBIDDEN, e.to_string()));
        }
        endpoint = match req.uri().path() {
            "/client" => Some(Endpoint::Client),
            "/events" => Some(Endpoint::Events),
            "/admin" => Some(Endpoint::Admin),
            "/watch" => Some(Endpoint::Watch),
            _ => None,
        };
        match endpoint {
            None => {
                return Err(refuse(
                    StatusCode::NOT_FOUND,
                    "unknown endpoint: use /client, /events, /admin or /watch".into(),
                ))
            }
            Some(Endpoint::Admin) => {
                match shared
                    .policy
                    .admin_rights(header(http::header::AUTHORIZATION))
                {
                    Ok(r) => rights = r,
                    Err(e) => return Err(refuse(StatusCode::UNAUTHORIZED, e.to_string())),
                }
            }
            Some(_) => {}
        }
        encoding = ws_frames::negotiate(req, &mut resp);
        match shared.slots.clone().try_acquire_owned() {
            Ok(permit) => slot = Some(permit),
            Err(_) => {
                return Err(refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("this node serves {CONNECTIONS_MAX} connections already"),
                ))
            }
        }
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(crate::ws_conn::READ_BUFFER_BYTES)
        .max_message_size(Some(WS_MESSAGE_BYTES_MAX))
        .max_frame_size(Some(WS_MESSAGE_BYTES_MAX));
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(stream, route, Some(config));
    let ws = tokio::select! {
        _ = ticket.evicted() => anyhow::bail!("dropped for newer connections during the upgrade"),
        r = timeout(HANDSHAKE_TIMEOUT, upgrade) => r.context("no upgrade in time")??,
    };
    drop(ticket);
    let _slot = slot.expect("taken by a successful upgrade");
    let (inputs, shutdown) = (shared.inputs.clone(), shared.shutdown.clone());
    match endpoint.expect("set by a successful handshake") {
        Endpoint::Client => {
            let budget = shared.client_bytes.clone();
            client(ws, encoding, inputs, budget, shutdown).await
        }
        Endpoint::Events => events(ws, encoding, shared.bus.clone(), shutdown).await,
        Endpoint::Admin => {
            let pages = shared.pages.clone();
            admin(ws, encoding, rights, inputs, pages, shutdown).await
        }
        Endpoint::Watch => {
            crate::watchers::serve(ws, encoding, shared.changes.clone(), shutdown).await
        }
    }
}

/// What a request holds while in flight: its frame, and room for its reply (a read's value may
/// be as large as any value, a transaction's failed guards carry as much, a scan page its
/// bytes; other replies are small).
fn request_bytes(frame_len: usize, req: &ClientRequest) -> usize {
    let reply_bytes = match req.op {
        ClientOp::Get { .. } => VALUE_BYTES_MAX,
        ClientOp::Txn { .. } => FOUND_VALUE_BYTES_MAX,
        ClientOp::Scan { .. } => SCAN_REPLY_BYTES_MAX,
        _ => 0,
    };
    frame_len + reply_bytes + REPLY_OVERHEAD_BYTES
}

/// Room for a reply's envelope (id, outcome, index).
const REPLY_OVERHEAD_BYTES: usize = 256;

async fn client(
    ws: Ws,
    encoding: Encoding,
    inputs: mpsc::Sender<Input>,
    node_bytes: ByteBudget,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    let (reply_tx, mut reply_rx) = mpsc::channel::<(ClientResponse, Charge)>(REPLY_QUEUE_LEN);
    let connection_bytes = ByteBudget::new(CONNECTION_BYTES_IN_FLIGHT_MAX);
    // One permit per frame read, given back when its (single) reply is taken for writing.
    let in_flight = Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT_MAX));
    // Cancelled when the writer stops (the client stopped reading): the reader stops too.
    let writer_done = CancellationToken::new();
    let writer = {
        let in_flight = in_flight.clone();
        let done = writer_done.clone().drop_guard();
        tokio::spawn(async move {
            let _done = done;
            let mut ping = ping_ticker();
            loop {
                let resp = tokio::select! {
                    r = reply_rx.recv() => match r {
                        Some(r) => r,
                        None => break,
                    },
                    // The reader knows when the client was last heard; this half only pings.
                    _ = ping.tick() => match send_ping(&mut sink).await {
                        Ok(()) => continue,
                        Err(_) => break,
                    },
                };
                // Replies already waiting share one write.
                let burst = async {
                    let mut next = Some(resp);
                    while let Some((resp, charge)) = next.take() {
                        in_flight.add_permits(1);
                        sink.feed(ws_frames::frame(encoding, &resp)).await?;
                        drop(charge);
                        next = reply_rx.try_recv().ok();
                    }
                    sink.flush().await
                };
                match timeout(WRITE_TIMEOUT, burst).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
            let _ = timeout(WRITE_TIMEOUT, sink.close()).await;
        })
    };
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = writer_done.cancelled() => break,
            p = in_flight.acquire() => p.expect("never closed"),
        };
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = writer_done.cancelled() => break,
            m = timeout(IDLE_TIMEOUT, stream.next()) => match m {
                Ok(m) => m,
                Err(_) => break, // silent for too long, pongs included
            },
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                let reply = (
                    bad_request(format!("connection error: {e}")),
                    Charge::none(),
                );
                let _ = reply_tx.try_send(reply);
                break;
            }
            None => break,
        };
        if msg.is_close() {
            break;
        }
        let (Some(frame_len), Some(decoded)) = (
            ws_frames::payload_len(&msg),
            ws_frames::decode::<ClientRequest>(&msg, CLIENT_FRAME_BYTES_MAX),
        ) else {
            continue;
        };
        // This frame gets exactly one reply; the writer returns the permit with it.
        permit.forget();
        match decoded {
            Ok(req) => {
                // The connection's own budget first: a connection that spent it waits without
                // taking bytes the node's other connections could use.
                let held = request_bytes(frame_len, &req);
                let charge = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = writer_done.cancelled() => break,
                    c = async {
                        let mine = connection_bytes.charge(held).await;
                        mine.and(node_bytes.charge(held).await)
                    } => c,
                };
                let reply = ClientReplyTx {
                    tx: reply_tx.clone(),
                    charge,
                };
                if inputs.send(Input::Client { req, reply }).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                let reply = (bad_request(e.to_string()), Charge::none());
                if reply_tx.send(reply).await.is_err() {
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

async fn events(
    ws: Ws,
    encoding: Encoding,
    bus: EventBus,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    let mut subscription = bus.subscribe(encoding);
    if let Some(status) = subscription.status().and_then(|s| s.message(encoding)) {
        timeout(WRITE_TIMEOUT, sink.send(status))
            .await
            .context("subscriber not reading")??;
    }
    let rx = subscription.frames();
    let mut ping = ping_ticker();
    let mut heard_at = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            incoming = stream.next() => match incoming {
                // Subscribers have nothing to say; anything but a close is ignored, but shows
                // that they are alive.
                Some(Ok(m)) if !m.is_close() => heard_at = Instant::now(),
                _ => break,
            },
            _ = ping.tick() => {
                if !ping_unless_idle(&mut sink, heard_at).await.context("subscriber not reading")? {
                    break;
                }
            }
            event = rx.recv() => {
                // Everything already queued goes out in one write: one syscall per burst,
                // not per event, so a busy node pays little for its watchers.
                let burst = async {
                    let mut next = Some(event);
                    let mut queued = 0;
                    while let Some(event) = next.take() {
                        match event {
                            Ok(frame) => {
                                if let Some(message) = frame.message(encoding) {
                                    sink.feed(message).await?
                                }
                            }
                            Err(broadcast::error::RecvError::Lagged(dropped)) => {
                                let notice = bus.lag_notice(dropped).message(encoding);
                                sink.feed(notice.expect("notices are in both encodings")).await?
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
                    sink.flush().await
                };
                timeout(WRITE_TIMEOUT, burst)
                    .await
                    .context("subscriber not reading")??;
            }
        }
    }
    let _ = timeout(WRITE_TIMEOUT, sink.close()).await;
    Ok(())
}

async fn admin(
    ws: Ws,
    encoding: Encoding,
    rights: AdminRights,
    inputs: mpsc::Sender<Input>,
    pages: Arc<DumpPages>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    let mut ping = ping_ticker();
    let mut heard_at = Instant::now();
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ping.tick() => {
                if !ping_unless_idle(&mut sink, heard_at).await.context("admin client not reading")? {
                    break;
                }
                continue;
            }
            m = stream.next() => m,
        };
        let msg = match msg {
            Some(Ok(m)) if !m.is_close() => m,
            _ => break,
        };
        heard_at = Instant::now();
        let Some(decoded) = ws_frames::decode::<AdminRequest>(&msg, ADMIN_FRAME_BYTES_MAX) else {
            continue;
        };
        let resp = match decoded {
            Ok(req) if !rights.allows(&req) => AdminResponse::Error {
                message: "this request changes the node: it needs the cluster secret \
                          (Authorization: Bearer SECRET on the /admin upgrade)"
                    .into(),
            },
            Ok(AdminRequest::DumpPage { after, limit }) => pages.page(after, limit).await,
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
        timeout(WRITE_TIMEOUT, sink.send(ws_frames::frame(encoding, &resp)))
            .await
            .context("admin client not reading")??;
    }
    let _ = timeout(WRITE_TIMEOUT, sink.close()).await;
    Ok(())
}
