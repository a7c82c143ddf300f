//! etcd through its v3 JSON gateway (`POST /v3/kv/put`, `/v3/kv/range` with base64 keys and
//! values; ranges are linearizable unless `serializable` is set), and
//! `/v3/maintenance/status` for the leader (used for both etcd backends: it needs no gRPC).
//!
//! Kept as an extra, labelled comparison: the gateway translates every request to gRPC inside
//! the server, work etcd's own users do not pay for, so etcd's own figures come from
//! `etcd_grpc`; scans and CAS, compared over gRPC only, are refused here. The HTTP client is
//! blocking (`ureq`), so each request runs on tokio's blocking pool; one agent per session
//! keeps one keep-alive connection.

use std::time::Duration;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde_json::{json, Value};

use super::{BackendError, BackendKind, LeaderView};
use crate::bench::workload::{Op, WorkloadKind};

const KIND: BackendKind = BackendKind::EtcdGateway;

pub struct GatewaySession {
    base: String,
    agent: ureq::Agent,
}

impl GatewaySession {
    pub fn new(endpoint: &str, timeout: Duration) -> GatewaySession {
        GatewaySession {
            base: endpoint.trim_end_matches('/').to_owned(),
            agent: ureq::AgentBuilder::new()
                .timeout(timeout)
                .max_idle_connections_per_host(1)
                .build(),
        }
    }

    pub async fn execute(&mut self, op: &Op) -> Result<(), BackendError> {
        match op {
            Op::Put { key, value } => self.put(key, value).await,
            Op::Get { key } => {
                self.call("/v3/kv/range", json!({"key": B64.encode(key)}))
                    .await
            }
            Op::PutThenDelete { key, value } => {
                self.put(key, value).await?;
                let body = json!({"key": B64.encode(key)});
                self.call("/v3/kv/deleterange", body).await
            }
            Op::PutMany { puts } => {
                for (key, value) in puts {
                    self.put(key, value).await?;
                }
                Ok(())
            }
            Op::Scan { .. } => Err(BackendError::unsupported(KIND, WorkloadKind::Scan)),
            Op::Cas { .. } => Err(BackendError::unsupported(KIND, WorkloadKind::Cas)),
        }
    }

    async fn put(&self, key: &str, value: &str) -> Result<(), BackendError> {
        let body = json!({"key": B64.encode(key), "value": B64.encode(value)});
        self.call("/v3/kv/put", body).await
    }

    async fn call(&self, path: &str, body: Value) -> Result<(), BackendError> {
        let url = format!("{}{path}", self.base);
        let agent = self.agent.clone();
        tokio::task::spawn_blocking(move || post(&agent, &url, &body))
            .await
            .map_err(|e| BackendError::Transport(e.to_string()))?
            .map(|_| ())
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<Value, BackendError> {
    match agent.post(url).send_json(body) {
        Ok(resp) => resp
            .into_json::<Value>()
            .map_err(|e| BackendError::Transport(e.to_string())),
        Err(ureq::Error::Status(code, resp)) => Err(BackendError::Refused(format!(
            "HTTP {code}: {}",
            resp.into_string().unwrap_or_default()
        ))),
        Err(e) => Err(BackendError::Transport(e.to_string())),
    }
}

/// A uint64 field of the gateway's JSON (encoded as a string), under either of its names.
fn u64_field(v: &Value, names: &[&str]) -> Option<u64> {
    names.iter().find_map(|n| match v.get(n)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    })
}

pub async fn leader(endpoints: &[String], timeout: Duration) -> Result<LeaderView, BackendError> {
    for (i, endpoint) in endpoints.iter().enumerate() {
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        let url = format!("{}/v3/maintenance/status", endpoint.trim_end_matches('/'));
        let Ok(Ok(status)) =
            tokio::task::spawn_blocking(move || post(&agent, &url, &json!({}))).await
        else {
            continue;
        };
        let member = status
            .get("header")
            .and_then(|h| u64_field(h, &["member_id", "memberId"]));
        let leader = u64_field(&status, &["leader"]);
        let term = u64_field(&status, &["raftTerm", "raft_term"]).unwrap_or(0);
        if let (Some(member), Some(leader)) = (member, leader) {
            if member == leader {
                return Ok(LeaderView {
                    leader,
                    term,
                    endpoint_index: i,
                    pid: None,
                });
            }
        }
    }
    Err(BackendError::NoLeader(endpoints.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_numbers_are_read_from_strings_or_numbers() {
        let v = json!({"leader": "123", "raftTerm": 4, "header": {"member_id": "123"}});
        assert_eq!(u64_field(&v, &["leader"]), Some(123));
        assert_eq!(u64_field(&v, &["raft_term", "raftTerm"]), Some(4));
        assert_eq!(
            u64_field(&v["header"], &["memberId", "member_id"]),
            Some(123)
        );
        assert_eq!(u64_field(&v, &["absent"]), None);
    }
}
