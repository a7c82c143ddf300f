//! The systems a benchmark can drive, behind one interface: a [`Session`] is one client's
//! connection that executes [`Op`]s one at a time, and [`leader`] tells who leads and in which
//! term (to detect leader changes and to pick the process to kill in a failover trial).

mod etcd;
mod omnikv;

use std::time::Duration;

use crate::bench::workload::Op;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// OmniKV's WebSocket client protocol (`ws://host:port`).
    Omnikv,
    /// etcd v3's JSON gateway (`http://host:port`).
    Etcd,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Omnikv => "OmniKV",
            BackendKind::Etcd => "etcd",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// The request failed in transport (timeout, lost connection, bad reply).
    #[error("request failed: {0}")]
    Transport(String),
    /// The system answered with an error.
    #[error("refused: {0}")]
    Refused(String),
    #[error("no leader known to any of {0} endpoints")]
    NoLeader(usize),
}

/// One client's connection to one endpoint.
pub enum Session {
    Omnikv(omnikv::OmnikvSession),
    Etcd(etcd::EtcdSession),
}

impl Session {
    /// `session_per_op`: OmniKV opens a new client session before every write (etcd has no
    /// client sessions and ignores it).
    pub async fn open(
        kind: BackendKind,
        endpoint: &str,
        timeout: Duration,
        session_per_op: bool,
    ) -> Result<Session, BackendError> {
        Ok(match kind {
            BackendKind::Omnikv => Session::Omnikv(
                omnikv::OmnikvSession::open(endpoint, timeout, session_per_op).await?,
            ),
            BackendKind::Etcd => Session::Etcd(etcd::EtcdSession::new(endpoint, timeout)),
        })
    }

    /// Executes one operation and waits for its answer. Gets are linearizable on both systems.
    pub async fn execute(&mut self, op: &Op) -> Result<(), BackendError> {
        match self {
            Session::Omnikv(s) => s.execute(op).await,
            Session::Etcd(s) => s.execute(op).await,
        }
    }
}

/// Who leads, as seen by the endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderView {
    /// The system's own id of the leader.
    pub leader: u64,
    /// OmniPaxos ballot number or Raft term.
    pub term: u64,
    /// Index into the endpoint list of the leader's endpoint.
    pub endpoint_index: usize,
    /// The leader's process id, when the system reports it (OmniKV does).
    pub pid: Option<u32>,
}

pub async fn leader(
    kind: BackendKind,
    endpoints: &[String],
    timeout: Duration,
) -> Result<LeaderView, BackendError> {
    match kind {
        BackendKind::Omnikv => omnikv::leader(endpoints, timeout).await,
        BackendKind::Etcd => etcd::leader(endpoints, timeout).await,
    }
}
