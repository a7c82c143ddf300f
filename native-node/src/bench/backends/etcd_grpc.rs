//! etcd over its native gRPC API (the `etcd-client` crate, on tonic): the way etcd's own users
//! and its benchmark tool drive it, so this is the etcd every comparison is made against.
//!
//! A put is a `Put`; a get is a `Range` of one key with default options, which etcd serves
//! linearizably (a read index through the leader), like OmniKV's linearizable get. A scan is a
//! `Range` of a prefix (`range_end` = the prefix with its last byte plus one) with a limit,
//! also linearizable; a CAS is a `Txn` comparing the key's value, then putting.
//! Connections are shared as `etcd/tools/benchmark` shares them (see [`Connections`]).
//!
//! Built only with the `etcd-grpc` feature: the crate needs `protoc` at build time and
//! compiles tonic, which the default build (CI, the demo) has no use for.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, Txn, TxnOp};

use super::{cas_answer, scan_answer, BackendError};
use crate::bench::workload::{Op, SCAN_LIMIT_KEYS};

/// How long opening one gRPC connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Open gRPC connections (one HTTP/2 connection each), from which sessions are handed out.
pub struct Connections {
    clients: Vec<Client>,
}

impl Connections {
    /// Opens `count` connections, the j-th to `endpoints[j % endpoints.len()]`, as
    /// `etcd/tools/benchmark` (3.4) dials its `--conns` connections round-robin over its
    /// endpoints. Each request is bounded by `timeout`.
    pub async fn open(
        endpoints: &[String],
        count: usize,
        timeout: Duration,
    ) -> Result<Connections, BackendError> {
        let mut clients = Vec::with_capacity(count);
        for j in 0..count {
            let endpoint = &endpoints[j % endpoints.len()];
            let options = ConnectOptions::new()
                .with_timeout(timeout)
                .with_connect_timeout(CONNECT_TIMEOUT);
            let client = Client::connect([endpoint.as_str()], Some(options))
                .await
                .map_err(|e| BackendError::Connect {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                })?;
            clients.push(client);
        }
        Ok(Connections { clients })
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// The session of client `i`: it shares connection `i % len()` with the other clients
    /// given that connection (gRPC multiplexes their requests as HTTP/2 streams), as the
    /// benchmark tool gives its client `i` connection `i % conns`.
    pub fn session(&self, i: usize) -> GrpcSession {
        GrpcSession {
            kv: self.clients[i % self.clients.len()].kv_client(),
        }
    }
}

pub struct GrpcSession {
    kv: KvClient,
}

impl GrpcSession {
    pub async fn execute(&mut self, op: &Op) -> Result<(), BackendError> {
        match op {
            Op::Put { key, value } => self.put(key, value).await,
            Op::Get { key } => self
                .kv
                .get(key.as_str(), None)
                .await
                .map(|_| ())
                .map_err(refused),
            Op::PutThenDelete { key, value } => {
                self.put(key, value).await?;
                self.kv
                    .delete(key.as_str(), None)
                    .await
                    .map(|_| ())
                    .map_err(refused)
            }
            Op::Scan { prefix } => {
                let options = GetOptions::new()
                    .with_prefix()
                    .with_limit(i64::from(SCAN_LIMIT_KEYS));
                let found = self
                    .kv
                    .get(prefix.as_str(), Some(options))
                    .await
                    .map_err(refused)?;
                scan_answer(prefix, found.kvs().len())
            }
            Op::Cas { key, expect, value } => {
                let txn = Txn::new()
                    .when([Compare::value(
                        key.as_str(),
                        CompareOp::Equal,
                        expect.as_str(),
                    )])
                    .and_then([TxnOp::put(key.as_str(), value.as_str(), None)]);
                let outcome = self.kv.txn(txn).await.map_err(refused)?;
                cas_answer(key, outcome.succeeded())
            }
            Op::PutMany { puts } => {
                let ops = (puts.iter()).map(|(k, v)| TxnOp::put(k.as_str(), v.as_str(), None));
                let txn = Txn::new().and_then(ops.collect::<Vec<_>>());
                self.kv.txn(txn).await.map(|_| ()).map_err(refused)
            }
        }
    }

    async fn put(&mut self, key: &str, value: &str) -> Result<(), BackendError> {
        self.kv
            .put(key, value, None)
            .await
            .map(|_| ())
            .map_err(refused)
    }
}

fn refused(e: etcd_client::Error) -> BackendError {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            BackendError::Refused(format!("{:?}: {}", status.code(), status.message()))
        }
        other => BackendError::Transport(other.to_string()),
    }
}
