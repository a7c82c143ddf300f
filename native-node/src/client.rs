//! Client side of the node protocols: used by the CLI, the launcher, benchmarks and tests.
//!
//! [`Client`] gives the retry discipline that makes writes exactly-once: one identity per
//! logical request, the same identity on every retry, moving to another node when one times
//! out or is unreachable.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use omnikv_core::{
    admin::{AdminRequest, AdminResponse, DumpPage},
    client::{Answer, ClientError, ClientOp, ClientRequest, ClientResponse, SessionClient},
    limits::DUMP_PAGE_KEYS_MAX,
    scan::{ScanPage, ScanRange},
    txn::{Guard, TxnOp, TxnResult},
    wire::{Encoding, POSTCARD_PROTOCOL},
};
use serde::{de::DeserializeOwned, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message as WsMessage, MaybeTlsStream, WebSocketStream};

use crate::ws_frames;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The request itself was refused; retrying cannot help.
    #[error("{0}")]
    Rejected(ClientError),
    /// No node could complete the request in time. A write may or may not have happened.
    #[error("no node completed the request within {elapsed_ms} ms (last error: {last})")]
    Unavailable { elapsed_ms: u64, last: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("undecodable reply: {0}")]
    Decode(String),
}

/// Largest reply decoded. The WebSocket's own message limit (tungstenite's default, 64 MiB)
/// already bounds what arrives; this names the same bound for the decoder.
const REPLY_BYTES_MAX: usize = 64 << 20;

/// One WebSocket connection to one endpoint of one node.
pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// What requests are written in, and replies expected in (the upgrade's subprotocol).
    encoding: Encoding,
}

impl Connection {
    /// `base` is a node's WebSocket base URL (`ws://host:port`); `endpoint` is `client`,
    /// `events` or `admin`.
    pub async fn open(
        base: &str,
        endpoint: &str,
        timeout: Duration,
    ) -> Result<Connection, ConnectionError> {
        Self::open_as(base, endpoint, timeout, None).await
    }

    /// [`Connection::open`], presenting `bearer` (the cluster secret, for `/admin` changes).
    pub async fn open_as(
        base: &str,
        endpoint: &str,
        timeout: Duration,
        bearer: Option<&str>,
    ) -> Result<Connection, ConnectionError> {
        Self::connect(base, endpoint, timeout, bearer, Encoding::Json).await
    }

    /// [`Connection::open`] in `encoding`: postcard is what the visualizer's page asks for
    /// (binary frames; read them with [`Connection::recv_binary`]).
    pub async fn open_in(
        base: &str,
        endpoint: &str,
        timeout: Duration,
        encoding: Encoding,
    ) -> Result<Connection, ConnectionError> {
        Self::connect(base, endpoint, timeout, None, encoding).await
    }

    async fn connect(
        base: &str,
        endpoint: &str,
        timeout: Duration,
        bearer: Option<&str>,
        encoding: Encoding,
    ) -> Result<Connection, ConnectionError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/{endpoint}", base.trim_end_matches('/'));
        let connect_err = |reason: String| ConnectionError::Connect {
            url: url.clone(),
            reason,
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| connect_err(e.to_string()))?;
        if let Some(b) = bearer {
            let value = format!("Bearer {b}")
                .parse()
                .map_err(|_| connect_err("the secret is not a valid header value".into()))?;
            request.headers_mut().insert("authorization", value);
        }
        if encoding == Encoding::Postcard {
            let protocol = POSTCARD_PROTOCOL.parse().expect("a valid header value");
            request
                .headers_mut()
                .insert("sec-websocket-protocol", protocol);
        }
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(crate::ws_conn::READ_BUFFER_BYTES);
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok((ws, _))) => Ok(Connection { ws, encoding }),
            Ok(Err(e)) => Err(ConnectionError::Connect {
                url,
                reason: e.to_string(),
            }),
            Err(_) => Err(ConnectionError::Connect {
                url,
                reason: "timed out".into(),
            }),
        }
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), ConnectionError> {
        self.ws
            .send(WsMessage::text(text))
            .await
            .map_err(|e| ConnectionError::Lost(e.to_string()))
    }

    /// The next text frame.
    pub async fn recv_text(&mut self, timeout: Duration) -> Result<String, ConnectionError> {
        loop {
            if let WsMessage::Text(t) = self.recv(timeout).await? {
                return Ok(t.to_string());
            }
        }
    }

    /// The next binary frame (a postcard connection's, see [`Connection::open_in`]).
    pub async fn recv_binary(&mut self, timeout: Duration) -> Result<Bytes, ConnectionError> {
        loop {
            if let WsMessage::Binary(b) = self.recv(timeout).await? {
                return Ok(b);
            }
        }
    }

    /// The next text or binary frame; pings, pongs and the like are skipped.
    async fn recv(&mut self, timeout: Duration) -> Result<WsMessage, ConnectionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| ConnectionError::Timeout(timeout))?;
            match next {
                Some(Ok(m @ (WsMessage::Text(_) | WsMessage::Binary(_)))) => return Ok(m),
                Some(Ok(WsMessage::Close(_))) | None => {
                    return Err(ConnectionError::Lost("closed by the node".into()))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ConnectionError::Lost(e.to_string())),
            }
        }
    }

    /// Sends `value` in the connection's encoding.
    async fn send_value<T: Serialize>(&mut self, value: &T) -> Result<(), ConnectionError> {
        self.ws
            .send(ws_frames::frame(self.encoding, value))
            .await
            .map_err(|e| ConnectionError::Lost(e.to_string()))
    }

    /// The next reply, decoded in the encoding its frame's type says.
    async fn recv_value<T: DeserializeOwned>(
        &mut self,
        timeout: Duration,
    ) -> Result<T, ConnectionError> {
        let msg = self.recv(timeout).await?;
        match ws_frames::decode(&msg, REPLY_BYTES_MAX) {
            Some(decoded) => decoded.map_err(|e| ConnectionError::Decode(e.to_string())),
            None => Err(ConnectionError::Decode("not a data frame".into())),
        }
    }

    pub async fn request(
        &mut self,
        req: &ClientRequest,
        timeout: Duration,
    ) -> Result<ClientResponse, ConnectionError> {
        self.send_value(req).await?;
        loop {
            let resp: ClientResponse = self.recv_value(timeout).await?;
            let matches = match &resp {
                ClientResponse::Ok { id, .. } => *id == req.id,
                ClientResponse::Err { id, .. } => id.is_none_or(|id| id == req.id),
            };
            // Replies to earlier, abandoned attempts on this connection are skipped.
            if matches {
                return Ok(resp);
            }
        }
    }

    pub async fn admin(
        &mut self,
        req: &AdminRequest,
        timeout: Duration,
    ) -> Result<AdminResponse, ConnectionError> {
        self.send_value(req).await?;
        self.recv_value(timeout).await
    }
}

/// One admin request on a fresh connection.
pub async fn admin(
    base: &str,
    req: &AdminRequest,
    timeout: Duration,
) -> Result<AdminResponse, ConnectionError> {
    admin_as(base, req, timeout, None).await
}

/// One admin request on a fresh connection that presents `secret` (needed for changes when the
/// node has a cluster secret).
pub async fn admin_as(
    base: &str,
    req: &AdminRequest,
    timeout: Duration,
    secret: Option<&str>,
) -> Result<AdminResponse, ConnectionError> {
    let mut conn = Connection::open_as(base, "admin", timeout, secret).await?;
    conn.admin(req, timeout).await
}

/// Reads a node's whole KV table by pages on one admin connection, handing each page to
/// `each` in key order; returns how many pages it read.
pub async fn walk_table(
    base: &str,
    timeout: Duration,
    mut each: impl FnMut(DumpPage),
) -> Result<u64, ConnectionError> {
    let mut conn = Connection::open(base, "admin", timeout).await?;
    let (mut after, mut pages) = (None, 0);
    loop {
        let req = AdminRequest::DumpPage {
            after: after.take(),
            limit: DUMP_PAGE_KEYS_MAX,
        };
        let page = match conn.admin(&req, timeout).await? {
            AdminResponse::DumpPage(page) => page,
            AdminResponse::Error { message } => return Err(ConnectionError::Decode(message)),
            other => return Err(ConnectionError::Decode(format!("not a page: {other:?}"))),
        };
        pages += 1;
        after = page.next_after.clone();
        each(page);
        if after.is_none() {
            return Ok(pages);
        }
    }
}

/// A random number that pairs a reply with its request before a session exists (53 bits,
/// exact in JavaScript numbers too).
pub fn nonce() -> u64 {
    rand::random::<u64>() >> 11
}

/// The session id an `open_session` reply names (its log index).
fn session_id(index: Option<u64>) -> Result<u64, CallError> {
    index.ok_or_else(|| {
        CallError::Rejected(ClientError::BadRequest {
            reason: "open_session answered without a session id".into(),
        })
    })
}

/// Opens a session on `conn`; returns its id.
pub async fn open_session(conn: &mut Connection, timeout: Duration) -> Result<u64, CallError> {
    let req = SessionClient::open_request(nonce());
    match conn.request(&req, timeout).await {
        Ok(ClientResponse::Ok { index, .. }) => session_id(index),
        Ok(ClientResponse::Err { error, .. }) => Err(CallError::Rejected(error)),
        Err(e) => Err(CallError::Unavailable {
            elapsed_ms: timeout.as_millis() as u64,
            last: e.to_string(),
        }),
    }
}

/// An ok reply: who answered, the log index it names, and what it carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub node: u64,
    pub index: Option<u64>,
    pub answer: Answer,
}

/// A client of the cluster with exactly-once retries. One request at a time; writes open a
/// session first (once), reads need none.
pub struct Client {
    nodes: Vec<String>,
    session: SessionClient,
    /// The id of the last write sent, for callers that keep a ledger of what was acknowledged.
    last_write: Option<omnikv_core::RequestId>,
    current: usize,
    conn: Option<Connection>,
    /// How long one attempt on one node may take.
    pub attempt_timeout: Duration,
    /// How long a request may take over all attempts.
    pub total_timeout: Duration,
}

impl Client {
    /// `nodes`: WebSocket base URLs; the first is tried first.
    pub fn new(nodes: Vec<String>) -> Client {
        assert!(!nodes.is_empty(), "a client needs at least one node");
        Client {
            nodes,
            session: SessionClient::without_session(nonce()),
            last_write: None,
            current: 0,
            conn: None,
            attempt_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(10),
        }
    }

    /// The session id, once a write has opened one.
    pub fn session_id(&self) -> Option<u64> {
        self.session.session
    }

    /// The id of the last write this client sent (its session and `seq`).
    pub fn last_write_id(&self) -> Option<omnikv_core::RequestId> {
        self.last_write
    }

    /// Sends `op` until one node answers it; returns the value (for Get) and the node.
    pub async fn execute(&mut self, op: ClientOp) -> Result<(Option<String>, u64), CallError> {
        self.execute_indexed(op).await.map(|(v, node, _)| (v, node))
    }

    /// As [`Client::execute`], also returning the log index the request was applied at.
    pub async fn execute_indexed(
        &mut self,
        op: ClientOp,
    ) -> Result<(Option<String>, u64, Option<u64>), CallError> {
        let reply = self.call(op).await?;
        Ok((reply.answer.value, reply.node, reply.index))
    }

    /// Sends `op` until one node answers it; returns the whole reply.
    pub async fn call(&mut self, op: ClientOp) -> Result<Reply, CallError> {
        let req = match op {
            ClientOp::OpenSession => SessionClient::open_request(nonce()),
            read if !read.is_write() => self.session.read_op_request(read),
            write => {
                if self.session.session.is_none() {
                    let opened = self.send(SessionClient::open_request(nonce())).await?;
                    self.session.opened(session_id(opened.index)?);
                }
                let req = self.session.write_request(write);
                self.last_write = Some(req.id);
                req
            }
        };
        let result = self.send(req.clone()).await;
        self.session.settled(req.id);
        if matches!(
            result,
            Err(CallError::Rejected(ClientError::SessionExpired { .. }))
        ) {
            // The next write opens a new session.
            self.session = SessionClient::without_session(nonce());
        }
        result
    }

    /// Sends `req` (again, with the current floor, on each retry) until a node answers it.
    async fn send(&mut self, req: ClientRequest) -> Result<Reply, CallError> {
        let started = tokio::time::Instant::now();
        let mut last = String::from("no attempt");
        let mut maybe_applied = false;
        while started.elapsed() < self.total_timeout {
            let attempt = self.session.retry(&req);
            match self
                .attempt(&attempt)
                .await
                .map(ClientResponse::into_result)
            {
                Ok(Ok((node, index, answer))) => {
                    return Ok(Reply {
                        node,
                        index,
                        answer,
                    })
                }
                Ok(Err(error)) if error.retryable() => {
                    maybe_applied |= error.outcome_unknown();
                    last = error.to_string();
                }
                Ok(Err(error)) => {
                    // An earlier attempt may have been applied: the outcome is unknown.
                    if maybe_applied && matches!(error, ClientError::SessionExpired { .. }) {
                        return Err(CallError::Unavailable {
                            elapsed_ms: started.elapsed().as_millis() as u64,
                            last: error.to_string(),
                        });
                    }
                    return Err(CallError::Rejected(error));
                }
                Err(e) => {
                    maybe_applied = true;
                    last = e.to_string();
                }
            }
            self.conn = None;
            self.current = (self.current + 1) % self.nodes.len();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(CallError::Unavailable {
            elapsed_ms: started.elapsed().as_millis() as u64,
            last,
        })
    }

    async fn attempt(&mut self, req: &ClientRequest) -> Result<ClientResponse, ConnectionError> {
        if self.conn.is_none() {
            let base = &self.nodes[self.current];
            self.conn = Some(Connection::open(base, "client", self.attempt_timeout).await?);
        }
        let conn = self.conn.as_mut().expect("opened above");
        conn.request(req, self.attempt_timeout).await
    }

    pub async fn put(&mut self, key: &str, value: &str) -> Result<(), CallError> {
        self.execute(ClientOp::Put {
            key: key.into(),
            value: value.into(),
        })
        .await
        .map(|_| ())
    }

    pub async fn get(
        &mut self,
        key: &str,
        read: omnikv_core::client::ReadMode,
    ) -> Result<Option<String>, CallError> {
        self.execute(ClientOp::Get {
            key: key.into(),
            read,
        })
        .await
        .map(|(v, _)| v)
    }

    pub async fn delete(&mut self, key: &str) -> Result<(), CallError> {
        self.execute(ClientOp::Delete { key: key.into() })
            .await
            .map(|_| ())
    }

    /// Applies `ops` atomically if every guard holds; returns the outcome (a failed guard is
    /// an outcome, with what it found) and the log index it was applied at.
    pub async fn txn(
        &mut self,
        guards: Vec<Guard>,
        ops: Vec<TxnOp>,
    ) -> Result<(TxnResult, Option<u64>), CallError> {
        let reply = self.call(ClientOp::Txn { guards, ops }).await?;
        let result = reply.answer.txn.ok_or_else(|| {
            CallError::Rejected(ClientError::BadRequest {
                reason: "a transaction was answered without its outcome".into(),
            })
        })?;
        Ok((result, reply.index))
    }

    /// One page of a scan.
    pub async fn scan(
        &mut self,
        range: ScanRange,
        read: omnikv_core::client::ReadMode,
    ) -> Result<ScanPage, CallError> {
        let reply = self.call(ClientOp::Scan { range, read }).await?;
        Ok(reply.answer.scan.unwrap_or_default())
    }
}

/// How a watch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchEnd {
    /// The caller stopped it.
    Stopped,
    /// The nodes no longer keep changes from the watch's index; they keep `oldest_index` on.
    Compacted { oldest_index: u64 },
}

/// Watches `request` through `nodes`: calls `each` with every change in log order until it
/// returns false. When a node fails, the watch moves on to the next with `from_index` set to
/// where the last frame left it, so no change is seen twice or missed. Gives up when no node
/// has answered for `give_up_after`.
pub async fn watch(
    nodes: &[String],
    mut request: omnikv_core::watch::WatchRequest,
    give_up_after: Duration,
    mut each: impl FnMut(&omnikv_core::watch::Change) -> bool,
) -> Result<WatchEnd, ConnectionError> {
    use omnikv_core::watch::WatchFrame;
    let mut heard_at = tokio::time::Instant::now();
    let mut last_error = ConnectionError::Lost("no node tried".into());
    for base in nodes.iter().cycle() {
        if heard_at.elapsed() > give_up_after {
            return Err(last_error);
        }
        let attempt = async {
            let mut conn = Connection::open(base, "watch", give_up_after).await?;
            conn.send_text(serde_json::to_string(&request).expect("requests serialise"))
                .await?;
            loop {
                // The node sends progress at least every second while it lives.
                let text = conn.recv_text(give_up_after).await?;
                heard_at = tokio::time::Instant::now();
                let frame: WatchFrame = serde_json::from_str(&text)
                    .map_err(|e| ConnectionError::Decode(e.to_string()))?;
                match frame {
                    WatchFrame::Changes { changes, up_to } => {
                        for c in &changes {
                            if !each(c) {
                                return Ok(WatchEnd::Stopped);
                            }
                        }
                        request.from_index = Some(up_to);
                    }
                    WatchFrame::Compacted { oldest_index } => {
                        return Ok(WatchEnd::Compacted { oldest_index })
                    }
                    WatchFrame::Error { message } => return Err(ConnectionError::Decode(message)),
                }
            }
        };
        match attempt.await {
            Ok(end) => return Ok(end),
            Err(e @ ConnectionError::Decode(_)) => return Err(e),
            Err(e) => last_error = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!("a watch needs at least one node")
}
