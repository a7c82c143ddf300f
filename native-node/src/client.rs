//! Client side of the node protocols: used by the CLI, the launcher, benchmarks and tests.
//!
//! [`Client`] gives the retry discipline that makes writes exactly-once: one identity per
//! logical request, the same identity on every retry, moving to another node when one times
//! out or is unreachable.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::{ClientError, ClientOp, ClientRequest, ClientResponse},
    RequestId,
};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message as WsMessage, MaybeTlsStream, WebSocketStream};

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

/// One WebSocket connection to one endpoint of one node.
pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
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
        let connect = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok((ws, _))) => Ok(Connection { ws }),
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
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| ConnectionError::Timeout(timeout))?;
            match next {
                Some(Ok(WsMessage::Text(t))) => return Ok(t.to_string()),
                Some(Ok(WsMessage::Close(_))) | None => {
                    return Err(ConnectionError::Lost("closed by the node".into()))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ConnectionError::Lost(e.to_string())),
            }
        }
    }

    pub async fn request(
        &mut self,
        req: &ClientRequest,
        timeout: Duration,
    ) -> Result<ClientResponse, ConnectionError> {
        self.send_text(serde_json::to_string(req).expect("requests serialise"))
            .await?;
        loop {
            let text = self.recv_text(timeout).await?;
            let resp: ClientResponse =
                serde_json::from_str(&text).map_err(|e| ConnectionError::Decode(e.to_string()))?;
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
        self.send_text(serde_json::to_string(req).expect("requests serialise"))
            .await?;
        let text = self.recv_text(timeout).await?;
        serde_json::from_str(&text).map_err(|e| ConnectionError::Decode(e.to_string()))
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

/// The identities one client gives its requests: a random client id (53 bits, exact in
/// JavaScript numbers too) and a sequence number that grows by one per new request. Retries
/// reuse the id they were given, which is what makes them safe.
#[derive(Clone, Debug)]
pub struct RequestIds {
    client: u64,
    next_seq: u64,
}

impl RequestIds {
    pub fn random() -> RequestIds {
        RequestIds {
            client: rand::random::<u64>() >> 11,
            next_seq: 1,
        }
    }

    pub fn client(&self) -> u64 {
        self.client
    }

    pub fn next(&mut self) -> RequestId {
        let id = RequestId {
            client: self.client,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        id
    }
}

/// A client of the cluster with exactly-once retries. One request at a time.
pub struct Client {
    nodes: Vec<String>,
    ids: RequestIds,
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
            ids: RequestIds::random(),
            current: 0,
            conn: None,
            attempt_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(10),
        }
    }

    pub fn client_id(&self) -> u64 {
        self.ids.client()
    }

    /// Sends `op` until one node answers it; returns the value (for Get) and the node.
    pub async fn execute(&mut self, op: ClientOp) -> Result<(Option<String>, u64), CallError> {
        let req = ClientRequest {
            id: self.ids.next(),
            op,
        };
        let started = tokio::time::Instant::now();
        let mut last = String::from("no attempt");
        while started.elapsed() < self.total_timeout {
            match self.attempt(&req).await {
                Ok(ClientResponse::Ok { value, node, .. }) => return Ok((value, node)),
                Ok(ClientResponse::Err {
                    error: e @ ClientError::BadRequest { .. },
                    ..
                }) => return Err(CallError::Rejected(e)),
                Ok(ClientResponse::Err { error, .. }) => last = error.to_string(),
                Err(e) => last = e.to_string(),
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
}
