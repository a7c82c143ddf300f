//! The page's client: one request at a time, by the protocol's rules in
//! `omnikv_core::client` (sessions, sequence numbers, which errors are retried with the same
//! id). A write first opens a session (once per page); a session that expired is reopened by
//! the next write.

use omnikv_core::{
    client::{ClientError, ClientOp, ClientRequest, ClientResponse, ReadMode, SessionClient},
    scan::{ScanPage, ScanRange},
    txn::{Found, Guard, TxnOp, TxnResult},
};

/// Attempts per request (the first try included) before the page gives up.
pub const ATTEMPTS_MAX: u32 = 4;
/// Keys in one scan from the page's form: a glance at a prefix, not an export.
pub const FORM_SCAN_KEYS: u32 = 20;
/// Entries of a scan spelled out in its one-line description.
const SCAN_ENTRIES_SHOWN: usize = 5;

/// What to do after a reply or a dropped connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not ours, or nothing pending.
    Ignore,
    /// Send this request again (same id), preferably to another node.
    Retry(ClientRequest),
    /// Send this next request (the write a new session was opened for).
    Send(ClientRequest),
    /// Finished: a line to show, and whether it succeeded.
    Done { ok: bool, text: String },
}

pub struct ClientSession {
    /// Pairs an `open_session` reply with its request, and names reads before a session.
    nonce: u64,
    session: SessionClient,
    pending: Option<(ClientRequest, u32)>,
    /// The write waiting for its session to open.
    waiting: Option<ClientOp>,
}

impl ClientSession {
    pub fn new(nonce: u64) -> ClientSession {
        ClientSession {
            nonce,
            session: SessionClient::without_session(nonce),
            pending: None,
            waiting: None,
        }
    }

    /// The session id, once a write opened one.
    pub fn session_id(&self) -> Option<u64> {
        self.session.session
    }

    pub fn pending(&self) -> Option<&ClientRequest> {
        self.pending.as_ref().map(|(r, _)| r)
    }

    /// Starts a new request, or refuses while one is in flight or when it breaks a limit.
    pub fn begin(&mut self, op: ClientOp) -> Result<ClientRequest, String> {
        if let Some((r, _)) = &self.pending {
            return Err(format!("request {} is still in flight", r.id.seq));
        }
        let probe = ClientRequest {
            id: omnikv_core::RequestId { client: 0, seq: 0 },
            op: op.clone(),
            forget_below: 0,
        };
        probe.validate().map_err(|e| e.to_string())?;
        let request = match op {
            ClientOp::Get { key, read } => self.session.read_request(key, read),
            scan @ ClientOp::Scan { .. } => self.session.read_op_request(scan),
            ClientOp::OpenSession => SessionClient::open_request(self.nonce),
            write if self.session.session.is_none() => {
                self.waiting = Some(write);
                SessionClient::open_request(self.nonce)
            }
            write => self.session.write_request(write),
        };
        self.pending = Some((request.clone(), 1));
        Ok(request)
    }

    /// Handles a reply frame.
    pub fn on_response(&mut self, response: &ClientResponse) -> Step {
        let Some((request, _)) = &self.pending else {
            return Step::Ignore;
        };
        let id = match response {
            ClientResponse::Ok { id, .. } => Some(*id),
            ClientResponse::Err { id, .. } => *id,
        };
        if id.is_some() && id != Some(request.id) {
            return Step::Ignore;
        }
        let opening = request.op == ClientOp::OpenSession;
        match response {
            ClientResponse::Err { error, .. } if error.retryable() => {
                self.retry_or_fail(&describe_response(response))
            }
            ClientResponse::Ok {
                index: Some(session),
                ..
            } if opening && self.waiting.is_some() => {
                self.session.opened(*session);
                let write = self.waiting.take().expect("checked");
                let request = self.session.write_request(write);
                self.pending = Some((request.clone(), 1));
                Step::Send(request)
            }
            _ => {
                let (request, _) = self.pending.take().expect("checked");
                self.session.settled(request.id);
                self.waiting = None;
                if let ClientResponse::Err {
                    error: ClientError::SessionExpired { .. },
                    ..
                } = response
                {
                    self.session = SessionClient::without_session(self.nonce);
                }
                Step::Done {
                    ok: reply_succeeded(response),
                    text: describe_response(response),
                }
            }
        }
    }

    /// The connection carrying the pending request closed or timed out on our side.
    pub fn on_lost(&mut self, why: &str) -> Step {
        if self.pending.is_none() {
            return Step::Ignore;
        }
        self.retry_or_fail(why)
    }

    fn retry_or_fail(&mut self, why: &str) -> Step {
        let Some((request, attempts)) = &mut self.pending else {
            return Step::Ignore;
        };
        if *attempts >= ATTEMPTS_MAX {
            let text = format!("gave up after {attempts} attempts: {why}");
            let id = request.id;
            self.pending = None;
            self.waiting = None;
            self.session.settled(id);
            return Step::Done { ok: false, text };
        }
        *attempts += 1;
        Step::Retry(self.session.retry(request))
    }
}

/// Builds a client operation from form or command-line words: put, get, delete, or a scan of
/// the first [`FORM_SCAN_KEYS`] keys with the prefix `key`.
pub fn op_from_parts(op: &str, key: &str, value: &str, read: &str) -> Result<ClientOp, String> {
    let key = key.to_owned();
    let read = match read {
        "" | "linearizable" => ReadMode::Linearizable,
        "local" => ReadMode::Local,
        other => return Err(format!("unknown read mode \"{other}\"")),
    };
    match op {
        "put" => Ok(ClientOp::Put {
            key,
            value: value.to_owned(),
        }),
        "get" => Ok(ClientOp::Get { key, read }),
        "delete" => Ok(ClientOp::Delete { key }),
        "scan" => Ok(ClientOp::Scan {
            range: ScanRange {
                prefix: Some(key),
                limit: FORM_SCAN_KEYS,
                ..ScanRange::default()
            },
            read,
        }),
        other => Err(format!(
            "unknown operation \"{other}\" (put, get, delete or scan)"
        )),
    }
}

/// A compare-and-swap of `key` to `value` (`None`: delete it) if it holds `expect`
/// (`expect_kind` "value"), is absent ("absent") or was last written at index `expect`
/// ("index"): one guard and one write, applied together or not at all.
pub fn cas_op(
    key: &str,
    value: Option<String>,
    expect_kind: &str,
    expect: &str,
) -> Result<ClientOp, String> {
    let key = key.to_owned();
    let guard = match expect_kind {
        "value" => Guard::Value {
            key: key.clone(),
            value: expect.to_owned(),
        },
        "absent" => Guard::Absent { key: key.clone() },
        "index" => Guard::ModIndex {
            key: key.clone(),
            mod_index: expect
                .trim()
                .parse()
                .map_err(|_| format!("expected index \"{expect}\" is not a log index"))?,
        },
        other => {
            return Err(format!(
                "unknown expectation \"{other}\" (value, absent or index)"
            ))
        }
    };
    let op = match value {
        Some(value) => TxnOp::Put { key, value },
        None => TxnOp::Delete { key },
    };
    Ok(ClientOp::Txn {
        guards: vec![guard],
        ops: vec![op],
    })
}

/// One line for a reply, as the page and the CLI print it.
pub fn describe_response(response: &ClientResponse) -> String {
    match response {
        ClientResponse::Ok {
            value,
            node,
            index,
            txn,
            scan,
            ..
        } => {
            let at = format!("(node {node}{})", index_suffix(*index));
            match (txn, scan, value) {
                (Some(t), _, _) => format!("{} {at}", describe_txn(t)),
                (_, Some(page), _) => format!("{} {at}", describe_scan(page)),
                (_, _, Some(v)) => format!("{v} {at}"),
                _ => format!("ok {at}"),
            }
        }
        ClientResponse::Err { error, .. } => format!("error: {error}"),
    }
}

/// Whether a reply is a success to show as one: a transaction whose guard failed is a normal
/// reply, but not the outcome its sender hoped for.
pub fn reply_succeeded(response: &ClientResponse) -> bool {
    match response {
        ClientResponse::Ok { txn, .. } => txn.as_ref().is_none_or(|t| t.succeeded),
        ClientResponse::Err { .. } => false,
    }
}

fn describe_txn(t: &TxnResult) -> String {
    if t.succeeded {
        return "swapped".into();
    }
    let found: Vec<String> = t.found.iter().map(describe_found).collect();
    match found.is_empty() {
        true => "comparison failed".into(),
        false => format!("comparison failed: found {}", found.join(", ")),
    }
}

fn describe_found(f: &Found) -> String {
    match (&f.value, f.mod_index) {
        (Some(v), Some(i)) => format!("{}={v} (index {i})", f.key),
        (None, Some(i)) => format!("{} at index {i}", f.key),
        _ => format!("{} absent", f.key),
    }
}

fn describe_scan(page: &ScanPage) -> String {
    let shown: Vec<String> = (page.entries.iter().take(SCAN_ENTRIES_SHOWN))
        .map(|e| format!("{}={}", e.key, e.value))
        .collect();
    let more = page.entries.len() > SCAN_ENTRIES_SHOWN || page.next_after.is_some();
    let count = match (page.entries.len(), page.next_after.is_some()) {
        (1, false) => "1 key".to_string(),
        (n, false) => format!("{n} keys"),
        (n, true) => format!("first {n} keys"),
    };
    match (shown.is_empty(), more) {
        (true, _) => "no keys".into(),
        (false, false) => format!("{count}: {}", shown.join(", ")),
        (false, true) => format!("{count}: {}, …", shown.join(", ")),
    }
}

fn index_suffix(index: Option<u64>) -> String {
    index.map(|i| format!(", index {i}")).unwrap_or_default()
}
