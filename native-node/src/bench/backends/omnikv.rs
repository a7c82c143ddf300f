//! OmniKV backend: the node's `/client` WebSocket protocol, one request in flight per session
//! (each benchmark client opens a client session when it connects), and `/admin` status for
//! the leader.

use std::time::Duration;

use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::{ClientOp, ClientResponse, ReadMode, SessionClient},
    event::Role,
};

use super::{BackendError, LeaderView};
use crate::bench::workload::Op;
use crate::client::{self, Connection};

pub struct OmnikvSession {
    endpoint: String,
    timeout: Duration,
    conn: Option<Connection>,
    session: SessionClient,
}

impl OmnikvSession {
    pub async fn open(endpoint: &str, timeout: Duration) -> Result<OmnikvSession, BackendError> {
        let mut s = OmnikvSession {
            endpoint: endpoint.to_owned(),
            timeout,
            conn: None,
            session: SessionClient::default(),
        };
        let conn = s.connect().await?;
        let id = client::open_session(conn, timeout)
            .await
            .map_err(|e| BackendError::Refused(e.to_string()))?;
        s.session = SessionClient::new(id);
        Ok(s)
    }

    async fn connect(&mut self) -> Result<&mut Connection, BackendError> {
        if self.conn.is_none() {
            let conn = Connection::open(&self.endpoint, "client", self.timeout)
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
        let req = match op {
            Op::Put { key, value } => self.session.write_request(ClientOp::Put {
                key: key.clone(),
                value: value.clone(),
            }),
            Op::Get { key } => self
                .session
                .read_request(key.clone(), ReadMode::Linearizable),
        };
        // The benchmark does not retry: an error is counted, and its request settled.
        self.session.settled(req.id.seq);
        let timeout = self.timeout;
        let conn = self.connect().await?;
        match conn.request(&req, timeout).await {
            Ok(ClientResponse::Ok { .. }) => Ok(()),
            Ok(ClientResponse::Err { error, .. }) => Err(BackendError::Refused(error.to_string())),
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
