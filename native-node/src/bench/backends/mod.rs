//! The systems a benchmark can drive, behind one interface: a [`Session`] is one client's
//! connection that executes [`Op`]s one at a time, [`open_sessions`] opens a run's sessions
//! (sharing connections where the system's own benchmark does), and [`leader`] tells who leads
//! and in which term (to detect leader changes and to pick the process to kill in a failover
//! trial).
//!
//! The gRPC backend is compiled only with the `etcd-grpc` feature; without it
//! [`BackendKind::Etcd`] still names results (the report reads them) but cannot be driven.

mod etcd_gateway;
#[cfg(feature = "etcd-grpc")]
mod etcd_grpc;
mod omnikv;

use std::time::Duration;

use omnikv_core::wire::Encoding;

use crate::bench::workload::{Op, WorkloadKind, SCAN_LIMIT_KEYS};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// OmniKV's WebSocket client protocol (`ws://host:port`).
    Omnikv,
    /// etcd v3's native gRPC API (`http://host:port`; needs the `etcd-grpc` feature).
    Etcd,
    /// etcd v3's JSON gateway (`http://host:port`), an extra comparison that understates etcd.
    EtcdGateway,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Omnikv => "OmniKV",
            BackendKind::Etcd => "etcd",
            BackendKind::EtcdGateway => "etcd (JSON gateway)",
        }
    }

    /// How the load generator talks to the system: protocol, then client library.
    pub fn driven_by(self) -> (&'static str, &'static str) {
        match self {
            BackendKind::Omnikv => (
                "WebSocket `/client`, postcard frames (the page's binary encoding), one client session per connection",
                "tokio-tungstenite",
            ),
            BackendKind::Etcd => (
                "gRPC, default (linearizable) consistency",
                "etcd-client (tonic)",
            ),
            BackendKind::EtcdGateway => (
                "HTTP/1.1 JSON gateway",
                "ureq, one keep-alive connection per client",
            ),
        }
    }

    /// The requests the system is sent for a kind of workload, or `None` when this backend
    /// does not run it.
    pub fn requests(self, kind: WorkloadKind) -> Option<String> {
        let limit = SCAN_LIMIT_KEYS;
        Some(match (self, kind) {
            (BackendKind::Omnikv, WorkloadKind::PutGet) => "`put`, linearizable `get`".into(),
            (BackendKind::Omnikv, WorkloadKind::Scan) => {
                format!("linearizable `scan` of a prefix, limit {limit}")
            }
            (BackendKind::Omnikv, WorkloadKind::Cas) => {
                "`txn` of one `value` guard and one `put`".into()
            }
            (BackendKind::Etcd, WorkloadKind::PutGet) => "KV.Put, KV.Range of one key".into(),
            (BackendKind::Etcd, WorkloadKind::Scan) => {
                format!("KV.Range of a prefix (range_end = prefix + 1), limit {limit}")
            }
            (BackendKind::Etcd, WorkloadKind::Cas) => {
                "KV.Txn: compare value EQUAL, then put".into()
            }
            (BackendKind::EtcdGateway, WorkloadKind::PutGet) => {
                "`/v3/kv/put`, `/v3/kv/range` of one key".into()
            }
            (BackendKind::EtcdGateway, WorkloadKind::Scan | WorkloadKind::Cas) => return None,
        })
    }

    /// Every kind, in report order.
    pub const ALL: [BackendKind; 3] = [
        BackendKind::Omnikv,
        BackendKind::Etcd,
        BackendKind::EtcdGateway,
    ];
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
    /// The system answered, but not what the operation expects (a scan that misses keys, a
    /// CAS whose comparison failed): counted as an error, so a wrong answer cannot look fast.
    #[error("wrong answer: {0}")]
    WrongAnswer(String),
    #[error("the benchmark does not run {workload} on {backend}")]
    Unsupported {
        backend: &'static str,
        workload: &'static str,
    },
    #[error("no leader known to any of {0} endpoints")]
    NoLeader(usize),
    #[error("etcd over gRPC is not in this build: build omnikv with `--features etcd-grpc`")]
    NotBuilt,
}

impl BackendError {
    /// `backend` does not run workloads of `kind` (see [`BackendKind::requests`]).
    pub fn unsupported(backend: BackendKind, kind: WorkloadKind) -> BackendError {
        BackendError::Unsupported {
            backend: backend.name(),
            workload: kind.name(),
        }
    }
}

/// One client's connection to one endpoint (or its share of one, over gRPC).
pub enum Session {
    // Boxed: an OmniKV session holds its WebSocket state inline, the others a handle.
    Omnikv(Box<omnikv::OmnikvSession>),
    #[cfg(feature = "etcd-grpc")]
    Etcd(etcd_grpc::GrpcSession),
    EtcdGateway(etcd_gateway::GatewaySession),
}

/// What sessions to open for a run.
pub struct SessionPlan<'a> {
    pub kind: BackendKind,
    pub endpoints: &'a [String],
    pub clients: usize,
    /// gRPC connections shared by the clients (etcd); 0: one per endpoint. The other
    /// backends open one connection per client.
    pub connections: usize,
    pub timeout: Duration,
    /// OmniKV opens a new client session before every write (etcd has no client sessions).
    pub session_per_op: bool,
    /// What OmniKV's clients write on `/client`.
    pub encoding: Encoding,
}

/// A run's sessions, client `i` on endpoint `i % endpoints`, and how many connections they use.
pub async fn open_sessions(plan: &SessionPlan<'_>) -> Result<(Vec<Session>, usize), BackendError> {
    if plan.kind == BackendKind::Etcd {
        return open_grpc_sessions(plan).await;
    }
    let mut sessions = Vec::with_capacity(plan.clients);
    for i in 0..plan.clients {
        let endpoint = &plan.endpoints[i % plan.endpoints.len()];
        let session = Session::open(
            plan.kind,
            endpoint,
            plan.timeout,
            plan.session_per_op,
            plan.encoding,
        );
        sessions.push(session.await?);
    }
    Ok((sessions, plan.clients))
}

#[cfg(feature = "etcd-grpc")]
async fn open_grpc_sessions(plan: &SessionPlan<'_>) -> Result<(Vec<Session>, usize), BackendError> {
    let count = if plan.connections == 0 {
        plan.endpoints.len()
    } else {
        plan.connections
    };
    // More connections than clients would stay idle.
    let conns =
        etcd_grpc::Connections::open(plan.endpoints, count.min(plan.clients), plan.timeout).await?;
    let sessions = (0..plan.clients)
        .map(|i| Session::Etcd(conns.session(i)))
        .collect();
    Ok((sessions, conns.len()))
}

#[cfg(not(feature = "etcd-grpc"))]
async fn open_grpc_sessions(_: &SessionPlan<'_>) -> Result<(Vec<Session>, usize), BackendError> {
    Err(BackendError::NotBuilt)
}

impl Session {
    /// One session on its own connection to `endpoint`.
    pub async fn open(
        kind: BackendKind,
        endpoint: &str,
        timeout: Duration,
        session_per_op: bool,
        encoding: Encoding,
    ) -> Result<Session, BackendError> {
        Ok(match kind {
            BackendKind::Omnikv => Session::Omnikv(Box::new(
                omnikv::OmnikvSession::open(endpoint, timeout, session_per_op, encoding).await?,
            )),
            BackendKind::Etcd => {
                let endpoints = [endpoint.to_owned()];
                let plan = SessionPlan {
                    kind,
                    endpoints: &endpoints,
                    clients: 1,
                    connections: 1,
                    timeout,
                    session_per_op,
                    encoding,
                };
                let (mut one, _) = open_grpc_sessions(&plan).await?;
                one.pop().expect("one session asked for")
            }
            BackendKind::EtcdGateway => {
                Session::EtcdGateway(etcd_gateway::GatewaySession::new(endpoint, timeout))
            }
        })
    }

    /// Executes one operation and waits for its answer. Gets and scans are linearizable on
    /// every backend; a scan or a CAS whose answer is not the expected one is an error.
    pub async fn execute(&mut self, op: &Op) -> Result<(), BackendError> {
        match self {
            Session::Omnikv(s) => s.execute(op).await,
            #[cfg(feature = "etcd-grpc")]
            Session::Etcd(s) => s.execute(op).await,
            Session::EtcdGateway(s) => s.execute(op).await,
        }
    }
}

/// A scan's answer: every key of its prefix (all were preloaded).
fn scan_answer(prefix: &str, keys: usize) -> Result<(), BackendError> {
    if keys == SCAN_LIMIT_KEYS as usize {
        Ok(())
    } else {
        Err(BackendError::WrongAnswer(format!(
            "a scan of {prefix} found {keys} keys, not {SCAN_LIMIT_KEYS}"
        )))
    }
}

/// A CAS's answer: its comparison held (it expects the preloaded value).
fn cas_answer(key: &str, succeeded: bool) -> Result<(), BackendError> {
    if succeeded {
        Ok(())
    } else {
        Err(BackendError::WrongAnswer(format!(
            "the comparison of a CAS on {key} failed"
        )))
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
        // Status is read through the gateway for both etcd backends: it is not measured.
        BackendKind::Etcd | BackendKind::EtcdGateway => {
            etcd_gateway::leader(endpoints, timeout).await
        }
    }
}
