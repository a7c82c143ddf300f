//! A client session of the OmniKV client protocol, shared by the page and the Node.js CLI.
//!
//! The protocol's rules live here once: one request at a time per client id, a new sequence
//! number per new request, the same id on retry, and retry on another node only when the outcome
//! is unknown (`timeout`, `unavailable`, or the connection dropped).

use omnikv_core::{
    client::{ClientError, ClientOp, ClientRequest, ClientResponse, ReadMode},
    RequestId,
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
    /// Finished: a line to show, and whether it succeeded.
    Done { ok: bool, text: String },
}

pub struct ClientSession {
    client: u64,
    next_seq: u64,
    pending: Option<(ClientRequest, u32)>,
}

impl ClientSession {
    pub fn new(client: u64) -> ClientSession {
        ClientSession {
            client,
            next_seq: 1,
            pending: None,
        }
    }

    pub fn client_id(&self) -> u64 {
        self.client
    }

    pub fn pending(&self) -> Option<&ClientRequest> {
        self.pending.as_ref().map(|(r, _)| r)
    }

    /// Starts a new request, or refuses while one is in flight or when it breaks a limit.
    pub fn begin(&mut self, op: ClientOp) -> Result<ClientRequest, String> {
        if let Some((r, _)) = &self.pending {
            return Err(format!("request {} is still in flight", r.id.seq));
        }
        let request = ClientRequest {
            id: RequestId {
                client: self.client,
                seq: self.next_seq,
            },
            op,
        };
        request.validate().map_err(|e| e.to_string())?;
        self.next_seq += 1;
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
        match response {
            ClientResponse::Err {
                error: ClientError::Timeout { .. } | ClientError::Unavailable { .. },
                ..
            } => self.retry_or_fail(&describe_response(response)),
            _ => {
                let text = describe_response(response);
                let ok = matches!(response, ClientResponse::Ok { .. });
                self.pending = None;
                Step::Done { ok, text }
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
            self.pending = None;
            return Step::Done { ok: false, text };
        }
        *attempts += 1;
        Step::Retry(request.clone())
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
