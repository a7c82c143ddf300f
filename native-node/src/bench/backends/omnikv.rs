//! OmniKV backend: the node's `/client` WebSocket protocol (in postcard, the binary encoding the
//! visualizer's page speaks, unless a run asks for JSON), one request in flight per session
//! (each benchmark client opens a client session when it connects, or before every write with
//! `session_per_op`), and `/admin` status for the leader.
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
    wire::Encoding,
};

use super::{cas_answer, scan_answer, BackendError, LeaderView};
use crate::bench::workload::{Op, SCAN_LIMIT_KEYS};
use crate::client::{self, CallError, Connection};

pub struct OmnikvSession {
    endpoint: String,
    timeout: Duration,
    conn: Option<Connection>,
    session: SessionClient,
    /// Open a new session before every write: as many client ids as writes, to measure what
    /// the cluster keeps per session (it keeps at most `SESSIONS_MAX`).
    session_per_op: bool,
    encoding: Encoding,
}

impl OmnikvSession {
    pub async fn open(
        endpoint: &str,
        timeout: Duration,
        session_per_op: bool,
        encoding: Encoding,
    ) -> Result<OmnikvSession, BackendError> {
        let mut s = OmnikvSession {
            endpoint: endpoint.to_owned(),
            timeout,
            conn: None,
            session: SessionClient::default(),
            session_per_op,
            encoding,
        };
        s.open_session().await?;
        Ok(s)
    }

    async fn open_session(&mut self) -> Result<(), BackendError> {
        let timeout = self.timeout;
        let conn = self.connect().await?;
        match client::open_session(conn, timeout).await {
            Ok(id) => {
                self.session = SessionClient::new(id);
                Ok(())
            }
            Err(e) => {
                // With a session per operation this runs again on the next one: on a fresh
                // connection if this one failed.
                if matches!(e, CallError::Unavailable { .. }) {
                    self.conn = None;
                }
                Err(BackendError::Refused(e.to_string()))
            }
        }
    }

    async fn connect(&mut self) -> Result<&mut Connection, BackendError> {
        if self.conn.is_none() {
            let conn = Connection::open_in(&self.endpoint, "client", self.timeout, self.encoding)
                .await
                .map_err(|e| BackendError::Connect {
                    endpoint: self.endpoint.clone(),
                    reason: e.to_string(),
                })?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("set above"))
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
        let conn = self.connect().await?;
        match conn.request(&req, timeout).await {
            Ok(resp) => resp
                .into_result()
                .map(|(_, _, answer)| answer)
                .map_err(|error| BackendError::Refused(error.to_string())),
            Err(e) => {
                self.conn = None;
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
