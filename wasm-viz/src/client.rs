//! The page's client: one request at a time, by the protocol's rules in
//! `omnikv_core::client` (sessions, sequence numbers, which errors are retried with the same
//! id). A write first opens a session (once per page); a session that expired is reopened by
//! the next write.

use omnikv_core::client::{
    ClientError, ClientOp, ClientRequest, ClientResponse, ReadMode, SessionClient,
};

/// Attempts per request (the first try included) before the page gives up.
pub const ATTEMPTS_MAX: u32 = 4;

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
                    ok: matches!(response, ClientResponse::Ok { .. }),
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

/// Builds a client operation from form or command-line words.
pub fn op_from_parts(op: &str, key: &str, value: &str, read: &str) -> Result<ClientOp, String> {
    let key = key.to_owned();
    match op {
        "put" => Ok(ClientOp::Put {
            key,
            value: value.to_owned(),
        }),
        "get" => Ok(ClientOp::Get {
            key,
            read: match read {
                "" | "linearizable" => ReadMode::Linearizable,
                "local" => ReadMode::Local,
                other => return Err(format!("unknown read mode {other:?}")),
            },
        }),
        "delete" => Ok(ClientOp::Delete { key }),
        other => Err(format!("unknown operation {other:?} (put, get or delete)")),
    }
}

/// One line for a reply, as the page and the CLI print it.
pub fn describe_response(response: &ClientResponse) -> String {
    match response {
        ClientResponse::Ok {
            value: Some(v),
            node,
            index,
            ..
        } => format!("{v} (node {node}{})", index_suffix(*index)),
        ClientResponse::Ok {
            value: None,
            node,
            index,
            ..
        } => format!("ok (node {node}{})", index_suffix(*index)),
        ClientResponse::Err { error, .. } => format!("error: {error}"),
    }
}

fn index_suffix(index: Option<u64>) -> String {
    index.map(|i| format!(", index {i}")).unwrap_or_default()
}
