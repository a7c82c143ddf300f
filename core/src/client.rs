//! The client protocol: JSON text frames over a node's `/client` WebSocket.
//!
//! A client may pipeline requests on one connection; each reply carries the request's id. Every
//! request gets exactly one reply, also when it fails (a timeout is an error reply, never
//! silence). A request whose outcome is unknown (`timeout`, `unavailable`) may be retried with
//! the same id: it is applied at most once.

use serde::{Deserialize, Serialize};

use crate::command::{KVCommand, RequestId};
use crate::limits::{KEY_BYTES_MAX, VALUE_BYTES_MAX};

/// How a Get is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Through the log: sees every write acknowledged before it was sent.
    #[default]
    Linearizable,
    /// From the receiving node's table: fast, possibly stale.
    Local,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientOp {
    Put {
        key: String,
        value: String,
    },
    Get {
        key: String,
        #[serde(default)]
        read: ReadMode,
    },
    Delete {
        key: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    pub id: RequestId,
    pub op: ClientOp,
}

impl ClientRequest {
    /// Checks limits a decoder cannot express.
    pub fn validate(&self) -> Result<(), ClientError> {
        let (key, value) = match &self.op {
            ClientOp::Put { key, value } => (key, Some(value)),
            ClientOp::Get { key, .. } | ClientOp::Delete { key } => (key, None),
        };
        if key.is_empty() {
            return Err(ClientError::BadRequest {
                reason: "key must not be empty".into(),
            });
        }
        if key.len() > KEY_BYTES_MAX {
            return Err(ClientError::BadRequest {
                reason: format!("key of {} bytes exceeds {KEY_BYTES_MAX}", key.len()),
            });
        }
        if let Some(v) = value {
            if v.len() > VALUE_BYTES_MAX {
                return Err(ClientError::BadRequest {
                    reason: format!("value of {} bytes exceeds {VALUE_BYTES_MAX}", v.len()),
                });
            }
        }
        Ok(())
    }

    /// The log entry for this request, or `None` for a local read.
    pub fn to_command(&self) -> Option<KVCommand> {
        let id = self.id;
        match &self.op {
            ClientOp::Put { key, value } => Some(KVCommand::Put {
                id,
                key: key.clone(),
                value: value.clone(),
            }),
            ClientOp::Delete { key } => Some(KVCommand::Delete {
                id,
                key: key.clone(),
            }),
            ClientOp::Get {
                key,
                read: ReadMode::Linearizable,
            } => Some(KVCommand::Get {
                id,
                key: key.clone(),
            }),
            ClientOp::Get {
                read: ReadMode::Local,
                ..
            } => None,
        }
    }
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientError {
    /// The request was malformed or broke a limit; nothing changed.
    #[error("bad request: {reason}")]
    BadRequest { reason: String },
    /// Not decided within the node's timeout. The outcome is unknown: retry with the same id.
    #[error("not decided within {timeout_ms} ms (outcome unknown; retry with the same id)")]
    Timeout { timeout_ms: u64 },
    /// The node has too many requests in flight; nothing was proposed.
    #[error("node overloaded ({in_flight} requests in flight); retry later")]
    Overloaded { in_flight: usize },
    /// The node could not propose (for example, it is shutting down). Outcome unknown.
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientResponse {
    /// The request took effect (or, for a Get, was served). `value` is the value read by a Get
    /// (`None`: absent) and `None` for writes.
    Ok {
        id: RequestId,
        value: Option<String>,
        /// The node that answered.
        node: u64,
        /// Log index at which it was applied (`None` for a local read).
        index: Option<u64>,
    },
    /// The request failed. `id` is absent when the frame could not be decoded.
    Err {
        id: Option<RequestId>,
        error: ClientError,
    },
}

crate::json_enum!(ReadMode {
    "linearizable" => Linearizable,
    "local" => Local,
});

crate::json_enum!(deny_unknown_fields ClientOp {
    "put" => Put { key, value },
    "get" => Get { key, read = ReadMode::default() },
    "delete" => Delete { key },
});

crate::json_enum!(deny_unknown_fields ClientError {
    "bad_request" => BadRequest { reason },
    "timeout" => Timeout { timeout_ms },
    "overloaded" => Overloaded { in_flight },
    "unavailable" => Unavailable { reason },
});

crate::json_enum!(deny_unknown_fields ClientResponse {
    "ok" => Ok { id, value, node, index },
    "err" => Err { id, error },
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_form() {
        let json = r#"{"id":{"client":7,"seq":1},"op":{"put":{"key":"a","value":"b"}}}"#;
        let req: ClientRequest = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&req).unwrap(), json);
        let get: ClientRequest =
            serde_json::from_str(r#"{"id":{"client":7,"seq":2},"op":{"get":{"key":"a"}}}"#)
                .unwrap();
        assert!(matches!(
            get.op,
            ClientOp::Get {
                read: ReadMode::Linearizable,
                ..
            }
        ));
    }

    #[test]
    fn unknown_fields_and_commands_are_rejected() {
        for bad in [
            r#"{"id":{"client":7,"seq":1},"op":{"put":{"key":"a","value":"b","x":1}}}"#,
            r#"{"id":{"client":7,"seq":1},"op":{"scan":{"key":"a"}}}"#,
            r#"{"id":{"client":7,"seq":1},"op":{"get":{"key":"a"}},"extra":true}"#,
            r#"{"id":{"client":7},"op":{"get":{"key":"a"}}}"#,
        ] {
            assert!(serde_json::from_str::<ClientRequest>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let req = |key: String, value: String| ClientRequest {
            id: RequestId { client: 1, seq: 1 },
            op: ClientOp::Put { key, value },
        };
        assert!(req("k".into(), "v".into()).validate().is_ok());
        assert!(req(String::new(), "v".into()).validate().is_err());
        assert!(req("k".repeat(KEY_BYTES_MAX + 1), "v".into())
            .validate()
            .is_err());
        assert!(req("k".into(), "v".repeat(VALUE_BYTES_MAX + 1))
            .validate()
            .is_err());
    }

    #[test]
    fn responses_round_trip() {
        let id = RequestId { client: 1, seq: 2 };
        for r in [
            ClientResponse::Ok {
                id,
                value: Some("v".into()),
                node: 1,
                index: Some(3),
            },
            ClientResponse::Err {
                id: None,
                error: ClientError::BadRequest { reason: "x".into() },
            },
            ClientResponse::Err {
                id: Some(id),
                error: ClientError::Timeout { timeout_ms: 5 },
            },
            ClientResponse::Err {
                id: Some(id),
                error: ClientError::Overloaded { in_flight: 5 },
            },
            ClientResponse::Err {
                id: Some(id),
                error: ClientError::Unavailable { reason: "x".into() },
            },
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<ClientResponse>(&json).unwrap(), r);
        }
    }
}
