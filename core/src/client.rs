//! The client protocol: JSON text frames over a node's `/client` WebSocket.
//!
//! A client first opens a session (`open_session`; the reply's `index` is the session id), then
//! sends writes under that id with `seq` 0, 1, 2, ... It may pipeline any number up to
//! [`SESSION_WINDOW`] on one or several connections and nodes; each reply carries the request's
//! id. Every request gets exactly one reply, also when it fails (a timeout is an error reply,
//! never silence). A request whose outcome is unknown ([`ClientError::outcome_unknown`]) may be
//! retried with the same id, through any node: it is applied exactly once (see
//! [`crate::session`] for the rule and [`SessionClient`] for the client's side of it). Reads need
//! no session.

use serde::{Deserialize, Serialize};

use crate::command::{KVCommand, RequestId};
use crate::limits::{KEY_BYTES_MAX, TXN_PARTS_MAX, VALUE_BYTES_MAX};
use crate::scan::{ScanPage, ScanRange};
use crate::session::{SessionRefusal, SESSION_WINDOW};
use crate::txn::{Guard, TxnOp, TxnResult};

/// How a Get is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Linearizable: sees every write acknowledged before it was sent (the read-index protocol,
    /// see `peer::ReadIndexMsg`).
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
    /// Compare-and-swap and batches: `ops` apply together, in one log entry, if every guard
    /// holds (see [`crate::txn`]). A write: it needs a session.
    Txn {
        #[serde(default)]
        guards: Vec<Guard>,
        ops: Vec<TxnOp>,
    },
    /// One page of an ordered scan (see [`crate::scan`]). A read: it needs no session.
    Scan {
        range: ScanRange,
        #[serde(default)]
        read: ReadMode,
    },
    /// Opens a session; `id.client` is any number that pairs the reply with the request.
    OpenSession,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    pub id: RequestId,
    pub op: ClientOp,
    /// The client has an answer for every `seq` of its session below this one and will never
    /// send them again: the cluster may forget their outcomes.
    #[serde(default)]
    pub forget_below: u64,
}

impl ClientRequest {
    /// Checks limits a decoder cannot express.
    pub fn validate(&self) -> Result<(), ClientError> {
        let bad = |reason: String| Err(ClientError::BadRequest { reason });
        match &self.op {
            ClientOp::Put { key, value } => check_key_value(key, Some(value)),
            ClientOp::Get { key, .. } | ClientOp::Delete { key } => check_key_value(key, None),
            ClientOp::OpenSession => Ok(()),
            ClientOp::Scan { range, .. } => range.problem().map_or(Ok(()), bad),
            ClientOp::Txn { guards, ops } => {
                if ops.is_empty() && guards.is_empty() {
                    return bad("a transaction needs a guard or a write".into());
                }
                if guards.len() + ops.len() > TXN_PARTS_MAX {
                    let parts = guards.len() + ops.len();
                    return bad(format!(
                        "a transaction of {parts} guards and writes exceeds {TXN_PARTS_MAX}"
                    ));
                }
                for g in guards {
                    let value = match g {
                        Guard::Value { value, .. } => Some(value.as_str()),
                        _ => None,
                    };
                    check_key_value(g.key(), value)?;
                }
                for op in ops {
                    check_key_value(op.key(), op.value())?;
                }
                // No larger than the largest put: every bound that holds for a put's command
                // (events, log entries, replies) then holds for a transaction's too.
                let bytes = self.to_command().map_or(0, |c| c.payload_bytes());
                if bytes > KEY_BYTES_MAX + VALUE_BYTES_MAX {
                    let most = KEY_BYTES_MAX + VALUE_BYTES_MAX;
                    return bad(format!(
                        "a transaction of {bytes} bytes of keys and values exceeds {most}"
                    ));
                }
                Ok(())
            }
        }
    }

    /// The log entry for this request, or `None` for a local read.
    pub fn to_command(&self) -> Option<KVCommand> {
        let (id, forget_below) = (self.id, self.forget_below);
        match &self.op {
            ClientOp::Put { key, value } => Some(KVCommand::Put {
                id,
                key: key.clone(),
                value: value.clone(),
                forget_below,
            }),
            ClientOp::Delete { key } => Some(KVCommand::Delete {
                id,
                key: key.clone(),
                forget_below,
            }),
            ClientOp::Txn { guards, ops } => Some(KVCommand::Txn {
                id,
                guards: guards.clone(),
                ops: ops.clone(),
                forget_below,
            }),
            ClientOp::Scan {
                range,
                read: ReadMode::Linearizable,
            } => Some(KVCommand::Scan {
                id,
                range: Box::new(range.clone()),
            }),
            ClientOp::Scan {
                read: ReadMode::Local,
                ..
            } => None,
            ClientOp::OpenSession => Some(KVCommand::OpenSession { id }),
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

fn check_key_value(key: &str, value: Option<&str>) -> Result<(), ClientError> {
    let bad = |reason: String| Err(ClientError::BadRequest { reason });
    if key.is_empty() {
        return bad("key must not be empty".into());
    }
    if key.len() > KEY_BYTES_MAX {
        return bad(format!(
            "key of {} bytes exceeds {KEY_BYTES_MAX}",
            key.len()
        ));
    }
    match value {
        Some(v) if v.len() > VALUE_BYTES_MAX => bad(format!(
            "value of {} bytes exceeds {VALUE_BYTES_MAX}",
            v.len()
        )),
        _ => Ok(()),
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
    /// The session does not exist (never opened, or expired) or has forgotten this request.
    /// This copy changed nothing; an earlier copy may have been applied. Open a new session.
    #[error("session expired: {reason}")]
    SessionExpired { reason: String },
}

impl ClientError {
    /// Whether the request may have been applied, so that it must be retried with the same id
    /// (through any node) and never under a new one. The one retry rule of every client.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout { .. } | ClientError::Unavailable { .. }
        )
    }

    /// Whether sending the same request again (same id) can succeed: outcome unknown, or
    /// refused for load before anything was proposed.
    pub fn retryable(&self) -> bool {
        self.outcome_unknown() || matches!(self, ClientError::Overloaded { .. })
    }
}

impl From<SessionRefusal> for ClientError {
    fn from(r: SessionRefusal) -> Self {
        match r {
            // The session cannot take the request: a new session can.
            SessionRefusal::Expired { .. }
            | SessionRefusal::Forgotten { .. }
            | SessionRefusal::BeyondWindow { .. } => ClientError::SessionExpired {
                reason: r.to_string(),
            },
            SessionRefusal::SeqReused { .. } => ClientError::BadRequest {
                reason: r.to_string(),
            },
        }
    }
}

/// Set in the `client` of a session client's reads (see `SessionClient::new`).
const READER_BIT: u64 = 1 << 62;

/// The client's side of a session, without I/O: which id and `seq` a new write gets, and what
/// it may let the cluster forget. The CLI, the benchmark, the page and the Node.js client all
/// use it, so they follow one rule.
#[derive(Clone, Debug, Default)]
pub struct SessionClient {
    /// The session id, once `open_session` was answered.
    pub session: Option<u64>,
    /// The `client` of every read request. Reads keep no session state, so they are numbered
    /// apart from writes: a read taking a write's `seq` would move the client's floor without
    /// moving the session's, until the session refused every write.
    reader: u64,
    next_read_seq: u64,
    /// The next write's `seq` in the session.
    next_seq: u64,
    /// Writes sent and not yet answered (ok, refused, or given up as indeterminate), in
    /// increasing order (seqs are handed out in order).
    unanswered: Vec<u64>,
}

impl SessionClient {
    /// A client of the session `session` (the `index` of the `open_session` reply).
    pub fn new(session: u64) -> SessionClient {
        SessionClient {
            session: Some(session),
            // Session ids are log indices, far below this bit: reads never share their ids.
            reader: session | READER_BIT,
            ..SessionClient::default()
        }
    }

    /// A client without a session yet; its reads use `nonce` as their `client`.
    pub fn without_session(nonce: u64) -> SessionClient {
        SessionClient {
            reader: nonce,
            ..SessionClient::default()
        }
    }

    /// The session is open (from the `open_session` reply's index). Writes start at `seq` 0
    /// in it; reads go on as before.
    pub fn opened(&mut self, session: u64) {
        *self = SessionClient {
            session: Some(session),
            reader: self.reader,
            next_read_seq: self.next_read_seq,
            ..SessionClient::default()
        };
    }

    /// The request that opens a session; `nonce` pairs the reply with it.
    pub fn open_request(nonce: u64) -> ClientRequest {
        ClientRequest {
            id: RequestId {
                client: nonce,
                seq: 0,
            },
            op: ClientOp::OpenSession,
            forget_below: 0,
        }
    }

    /// Whether another write may be sent now: at most [`SESSION_WINDOW`] above the oldest
    /// unanswered one, so the cluster never refuses it as beyond the window.
    pub fn can_send(&self) -> bool {
        self.session.is_some() && self.next_seq - self.floor() < SESSION_WINDOW
    }

    fn floor(&self) -> u64 {
        self.unanswered.first().copied().unwrap_or(self.next_seq)
    }

    /// A new write (a fresh `seq`); for reads, use [`SessionClient::read_request`].
    pub fn write_request(&mut self, op: ClientOp) -> ClientRequest {
        let client = self.session.expect("a write needs an open session");
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unanswered.push(seq);
        ClientRequest {
            id: RequestId { client, seq },
            op,
            forget_below: self.floor(),
        }
    }

    /// The same request again, with the floor as it is now.
    pub fn retry(&self, req: &ClientRequest) -> ClientRequest {
        ClientRequest {
            forget_below: self.floor().min(req.id.seq),
            ..req.clone()
        }
    }

    /// The request `id` is settled: answered, or abandoned as indeterminate. A write will not
    /// be sent again, so the cluster may forget it (reads and other ids change nothing).
    pub fn settled(&mut self, id: RequestId) {
        if Some(id.client) != self.session {
            return;
        }
        if let Ok(i) = self.unanswered.binary_search(&id.seq) {
            self.unanswered.remove(i);
        }
    }

    /// A read, numbered apart from writes (see `reader`).
    pub fn read_request(&mut self, key: String, read: ReadMode) -> ClientRequest {
        self.read_op_request(ClientOp::Get { key, read })
    }

    /// A read (a get or a scan), numbered apart from writes (see `reader`).
    pub fn read_op_request(&mut self, op: ClientOp) -> ClientRequest {
        debug_assert!(!op.is_write(), "a write needs write_request");
        let seq = self.next_read_seq;
        self.next_read_seq += 1;
        ClientRequest {
            id: RequestId {
                client: self.reader,
                seq,
            },
            op,
            forget_below: 0,
        }
    }
}

impl ClientOp {
    /// Whether it changes the table (and so needs a session).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            ClientOp::Put { .. } | ClientOp::Delete { .. } | ClientOp::Txn { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientResponse {
    /// The request took effect (or, for a read, was served). `value` is the value read by a
    /// Get (`None`: absent) and `None` otherwise.
    Ok {
        id: RequestId,
        value: Option<String>,
        /// The node that answered.
        node: u64,
        /// Log index at which it was applied (`None` for a local read). For a copy of a write
        /// applied earlier, the first copy's index.
        index: Option<u64>,
        /// For a Get of a live key: the log index of the key's last write.
        #[serde(default)]
        mod_index: Option<u64>,
        /// For a transaction: whether its guards held, and what failed ones found.
        #[serde(default)]
        txn: Option<TxnResult>,
        /// For a scan: the page.
        #[serde(default)]
        scan: Option<ScanPage>,
    },
    /// The request failed. `id` is absent when the frame could not be decoded.
    Err {
        id: Option<RequestId>,
        error: ClientError,
    },
}

/// What an ok reply carries besides its id, node and index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub value: Option<String>,
    pub mod_index: Option<u64>,
    pub txn: Option<TxnResult>,
    pub scan: Option<ScanPage>,
}

impl ClientResponse {
    /// The ok reply to `id`, sent by `node`, carrying `answer`.
    pub fn ok(id: RequestId, node: u64, index: Option<u64>, answer: Answer) -> ClientResponse {
        let Answer {
            value,
            mod_index,
            txn,
            scan,
        } = answer;
        ClientResponse::Ok {
            id,
            value,
            node,
            index,
            mod_index,
            txn,
            scan,
        }
    }

    /// An ok reply's node, index and answer; an error reply's error.
    pub fn into_result(self) -> Result<(u64, Option<u64>, Answer), ClientError> {
        match self {
            ClientResponse::Ok {
                value,
                node,
                index,
                mod_index,
                txn,
                scan,
                ..
            } => {
                let answer = Answer {
                    value,
                    mod_index,
                    txn,
                    scan,
                };
                Ok((node, index, answer))
            }
            ClientResponse::Err { error, .. } => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_form() {
        let json =
            r#"{"id":{"client":7,"seq":1},"op":{"put":{"key":"a","value":"b"}},"forget_below":1}"#;
        let req: ClientRequest = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&req).unwrap(), json);
        let open: ClientRequest =
            serde_json::from_str(r#"{"id":{"client":9,"seq":0},"op":"open_session"}"#).unwrap();
        assert_eq!(open, SessionClient::open_request(9));
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
            r#"{"id":{"client":7,"seq":1},"op":{"txn":{"ops":[],"x":1}}}"#,
            r#"{"id":{"client":7,"seq":1},"op":{"get":{"key":"a"}},"extra":true}"#,
            r#"{"id":{"client":7},"op":{"get":{"key":"a"}}}"#,
        ] {
            assert!(serde_json::from_str::<ClientRequest>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_session_client_pipelines_within_the_window_and_forgets_what_is_settled() {
        let mut c = SessionClient::without_session(77);
        assert!(!c.can_send());
        assert_eq!(c.read_request("k".into(), ReadMode::Local).id.client, 77);
        c.opened(5);
        let put = |c: &mut SessionClient| c.write_request(ClientOp::Delete { key: "k".into() });
        let first = put(&mut c);
        assert_eq!((first.id.client, first.forget_below), (5, first.id.seq));
        let mut sent = vec![first];
        while c.can_send() {
            sent.push(put(&mut c));
        }
        assert_eq!(sent.len() as u64, SESSION_WINDOW);
        assert!(sent.iter().all(|r| r.forget_below == sent[0].id.seq));
        // Answers out of order: the floor moves only past what is settled.
        c.settled(sent[1].id);
        assert!(!c.can_send());
        c.settled(sent[0].id);
        assert!(c.can_send());
        let next = put(&mut c);
        assert_eq!(next.forget_below, sent[2].id.seq);
        assert_eq!(c.retry(&sent[5]).forget_below, sent[2].id.seq);
    }

    #[test]
    fn reads_between_writes_do_not_move_the_floor() {
        let mut c = SessionClient::new(5);
        let first = c.write_request(ClientOp::Delete { key: "k".into() });
        c.settled(first.id);
        for _ in 0..3000 {
            let read = c.read_request("k".into(), ReadMode::Linearizable);
            assert_ne!(read.id.client, 5, "reads never share a write's id");
            c.settled(read.id);
        }
        let next = c.write_request(ClientOp::Delete { key: "k".into() });
        assert_eq!((next.id.seq, next.forget_below), (1, 1));
    }

    #[test]
    fn retry_rules() {
        assert!(ClientError::Timeout { timeout_ms: 1 }.outcome_unknown());
        assert!(ClientError::Unavailable { reason: "x".into() }.outcome_unknown());
        assert!(!ClientError::Overloaded { in_flight: 1 }.outcome_unknown());
        assert!(ClientError::Overloaded { in_flight: 1 }.retryable());
        assert!(!ClientError::BadRequest { reason: "x".into() }.retryable());
        assert!(!ClientError::SessionExpired { reason: "x".into() }.retryable());
    }

    #[test]
    fn limits_are_enforced() {
        let req = |key: String, value: String| ClientRequest {
            id: RequestId { client: 1, seq: 1 },
            op: ClientOp::Put { key, value },
            forget_below: 0,
        };
        assert!(req("k".into(), "v".into()).validate().is_ok());
        assert!(req(String::new(), "v".into()).validate().is_err());
        assert!(req("k".repeat(KEY_BYTES_MAX + 1), "v".into())
            .validate()
            .is_err());
        assert!(req("k".into(), "v".repeat(VALUE_BYTES_MAX + 1))
            .validate()
            .is_err());
        // A transaction carries no more than the largest put.
        let txn = |values: usize| ClientRequest {
            id: RequestId { client: 1, seq: 1 },
            op: ClientOp::Txn {
                guards: vec![],
                ops: (0..values)
                    .map(|i| TxnOp::Put {
                        key: format!("k{i}"),
                        value: "v".repeat(VALUE_BYTES_MAX / 2),
                    })
                    .collect(),
            },
            forget_below: 0,
        };
        assert!(txn(2).validate().is_ok());
        assert!(txn(3).validate().is_err());
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
                mod_index: Some(2),
                txn: None,
                scan: None,
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
