//! OmniKV backend: the node's `/client` WebSocket protocol, one request in flight per session
//! (each benchmark client opens a client session when it connects, or before every write with
//! `session_per_op`), on a connection of its own or on one it shares with other clients (see
//! `shared_connection`), and `/admin` status for the leader.
//!
//! A scan is one linearizable `scan` page of the prefix; a CAS is a `txn` of one `value` guard
//! and one `put`, the request `omnikv cas` sends.

use std::time::Duration;

use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::{Answer, ClientOp, ClientRequest, ReadMode, SessionClient},
    event::Role,
    scan::ScanRange,
    txn::{Guard, TxnOp},
};

use super::{cas_answer, scan_answer, BackendError, LeaderView};
use crate::bench::workload::{Op, SCAN_LIMIT_KEYS};
use crate::client::{self, CallError, Connection, ConnectionError};
use crate::shared_connection::SharedConnection;

/// How a session reaches its node.
// The session is boxed whole (see `Session`), so the larger variant costs nothing apart.
#[allow(clippy::large_enum_variant)]
enum Link {
    /// A connection of its own, opened again after a failure.
    Own(Option<Connection>),
    /// A connection shared with other clients; a failure fails the session's requests.
    Shared(SharedConnection),
}

pub struct OmnikvSession {
    endpoint: String,
    timeout: Duration,
    link: Link,
    session: SessionClient,
    /// Open a new session before every write: as many client ids as writes, to measure what
    /// the cluster keeps per session (it keeps at most `SESSIONS_MAX`).
    session_per_op: bool,
}

impl OmnikvSession {
    pub async fn open(
        endpoint: &str,
        timeout: Duration,
        session_per_op: bool,
    ) -> Result<OmnikvSession, BackendError> {
        let mut s = OmnikvSession {
            endpoint: endpoint.to_owned(),
            timeout,
            link: Link::Own(None),
            session: SessionClient::default(),
            session_per_op,
        };
        s.open_session().await?;
        Ok(s)
    }

    /// A session on `conn`, which other sessions share.
    pub async fn open_shared(
        conn: SharedConnection,
        endpoint: &str,
        timeout: Duration,
    ) -> Result<OmnikvSession, BackendError> {
        let mut s = OmnikvSession {
            endpoint: endpoint.to_owned(),
            timeout,
            link: Link::Shared(conn),
            session: SessionClient::default(),
            session_per_op: false,
        };
        s.open_session().await?;
        Ok(s)
    }

    async fn open_session(&mut self) -> Result<(), BackendError> {
        let timeout = self.timeout;
        let opened = match &mut self.link {
            Link::Own(_) => client::open_session(self.connect().await?, timeout).await,
            Link::Shared(shared) => {
                let req = SessionClient::open_request(client::nonce());
                client::session_opened(shared.request(req, timeout).await, timeout)
            }
        };
        match opened {
            Ok(id) => {
                self.session = SessionClient::new(id);
                Ok(())
            }
            Err(e) => {
                // With a session per operation this runs again on the next one: on a fresh
                // connection if this one failed.
                if matches!(e, CallError::Unavailable { .. }) {
                    self.drop_own_connection();
                }
                Err(BackendError::Refused(e.to_string()))
            }
        }
    }

    fn drop_own_connection(&mut self) {
        if let Link::Own(conn) = &mut self.link {
            *conn = None;
        }
    }

    async fn connect(&mut self) -> Result<&mut Connection, BackendError> {
        let Link::Own(conn) = &mut self.link else {
            unreachable!("only a session with a connection of its own connects");
        };
        if conn.is_none() {
            let opened = Connection::open(&self.endpoint, "client", self.timeout)
                .await
                .map_err(|e| BackendError::Connect {
                    endpoint: self.endpoint.clone(),
                    reason: e.to_string(),
                })?;
            *conn = Some(opened);
        }
        Ok(conn.as_mut().expect("set above"))
    }

    pub async fn execute(&mut self, op: &Op) -> Result<(), BackendError> {
        if self.session_per_op && op.is_write() {
            self.open_session().await?;
        }
        let req = match op {
            Op::Put { key, value } => self.session.write_request(ClientOp::Put {
                key: key.clone(),
                value: value.clone(),
            }),
            Op::Get { key } => self
                .session
                .read_request(key.clone(), ReadMode::Linearizable),
            Op::PutThenDelete { key, value } => {
                let put = self.session.write_request(ClientOp::Put {
                    key: key.clone(),
                    value: value.clone(),
                });
                self.send(put).await?;
                self.session
                    .write_request(ClientOp::Delete { key: key.clone() })
            }
            Op::Scan { prefix } => self.session.read_op_request(ClientOp::Scan {
                range: ScanRange {
                    prefix: Some(prefix.clone()),
                    limit: SCAN_LIMIT_KEYS,
                    ..ScanRange::default()
                },
                read: ReadMode::Linearizable,
            }),
            Op::PutMany { puts } => self.session.write_request(ClientOp::Txn {
                guards: Vec::new(),
                ops: (puts.iter())
                    .map(|(key, value)| TxnOp::Put {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            }),
            Op::Cas { key, expect, value } => self.session.write_request(ClientOp::Txn {
                guards: vec![Guard::Value {
                    key: key.clone(),
                    value: expect.clone(),
                }],
                ops: vec![TxnOp::Put {
                    key: key.clone(),
                    value: value.clone(),
                }],
            }),
        };
        let answer = self.send(req).await?;
        match op {
            Op::Scan { prefix } => {
                scan_answer(prefix, answer.scan.map_or(0, |page| page.entries.len()))
            }
            Op::Cas { key, .. } => cas_answer(key, answer.txn.is_some_and(|t| t.succeeded)),
            _ => Ok(()),
        }
    }

    async fn send(&mut self, req: ClientRequest) -> Result<Answer, BackendError> {
        // The benchmark does not retry: an error is counted, and its request settled.
        self.session.settled(req.id);
        let timeout = self.timeout;
        let sent: Result<_, ConnectionError> = match &self.link {
            Link::Own(_) => self.connect().await?.request(&req, timeout).await,
            Link::Shared(shared) => shared.request(req, timeout).await,
        };
        match sent {
            Ok(resp) => resp
                .into_result()
                .map(|(_, _, answer)| answer)
                .map_err(|error| BackendError::Refused(error.to_string())),
            Err(e) => {
                self.drop_own_connection();
                Err(BackendError::Transport(e.to_string()))
            }
        }
    }
}

pub async fn leader(endpoints: &[String], timeout: Duration) -> Result<LeaderView, BackendError> {
    for (i, endpoint) in endpoints.iter().enumerate() {
        let Ok(AdminResponse::Status(status)) =
            client::admin(endpoint, &AdminRequest::Status, timeout).await
        else {
            continue;
        };
        if status.role == Role::Leader {
            return Ok(LeaderView {
                leader: status.id,
                term: status.ballot.n as u64,
                endpoint_index: i,
                pid: Some(status.pid),
            });
        }
    }
    Err(BackendError::NoLeader(endpoints.len()))
}
