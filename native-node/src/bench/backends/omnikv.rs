//! OmniKV backend: the node's `/client` WebSocket protocol, one request in flight per session,
//! and `/admin` status for the leader.

use std::time::Duration;

use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::{ClientOp, ClientRequest, ClientResponse, ReadMode},
    event::Role,
};

use super::{BackendError, LeaderView};
use crate::bench::workload::Op;
use crate::client::{self, Connection, RequestIds};

pub struct OmnikvSession {
    endpoint: String,
    timeout: Duration,
    conn: Option<Connection>,
    ids: RequestIds,
}

impl OmnikvSession {
    pub async fn open(endpoint: &str, timeout: Duration) -> Result<OmnikvSession, BackendError> {
        let mut s = OmnikvSession {
            endpoint: endpoint.to_owned(),
            timeout,
            conn: None,
            ids: RequestIds::random(),
        };
        s.connect().await?;
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
        let op = match op {
            Op::Put { key, value } => ClientOp::Put {
                key: key.clone(),
                value: value.clone(),
            },
            Op::Get { key } => ClientOp::Get {
                key: key.clone(),
                read: ReadMode::Linearizable,
            },
        };
        let req = ClientRequest {
            id: self.ids.next(),
            op,
        };
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
