//! A pipelining client for the real-process tests: many writes in flight under one session, as
//! the protocol allows, resent with the same ids through another node when a node stops
//! answering. It records what was acknowledged (with the index the cluster named) and what was
//! left indeterminate, so tests can hold the cluster to every acknowledgement.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use omnikv_core::{
    client::{ClientError, ClientOp, ClientRequest, ClientResponse, SessionClient},
    RequestId,
};
use omnikv_node::client::{open_session, Connection};
use tokio::time::Instant;

/// A write the cluster acknowledged.
#[derive(Clone, Debug)]
pub struct AckedWrite {
    pub id: RequestId,
    pub key: String,
    /// `None` for a delete.
    pub value: Option<String>,
    /// The log index the reply named.
    pub index: u64,
    /// When the write was first sent (its invocation).
    pub sent: Instant,
    /// When its acknowledgement arrived (its completion).
    pub answered: Instant,
}

/// A write given up without an answer: it may or may not have been applied.
#[derive(Clone, Debug)]
pub struct UnansweredWrite {
    pub req: ClientRequest,
    /// When it was first sent.
    pub sent: Instant,
}

/// What a pipelined run saw.
#[derive(Debug, Default)]
pub struct PipelineReport {
    pub acked: Vec<AckedWrite>,
    /// Writes given up at the deadline: applied or not.
    pub indeterminate: Vec<UnansweredWrite>,
    /// Times the writer moved to another node and resent what was in flight.
    pub switches: u64,
}

pub struct PipelinedWriter {
    urls: Vec<String>,
    current: usize,
    conn: Option<Connection>,
    session: SessionClient,
    window: usize,
    /// Writes sent and not answered, by `seq`, with the time each was first sent.
    in_flight: BTreeMap<u64, UnansweredWrite>,
    /// A node that says nothing for this long is given up for another.
    pub reply_timeout: Duration,
    /// Acknowledged so far, for a test that acts on progress.
    pub progress: Arc<AtomicUsize>,
    /// A request could not be sent (no connection, or it broke): everything in flight must
    /// be sent again, or that request would wait forever for an answer.
    unsent: bool,
    report: PipelineReport,
}

impl PipelinedWriter {
    /// `urls`: nodes' WebSocket base URLs, the first tried first; `window`: writes in flight.
    pub fn new(urls: Vec<String>, window: usize) -> PipelinedWriter {
        PipelinedWriter {
            urls,
            current: 0,
            conn: None,
            session: SessionClient::default(),
            window,
            in_flight: BTreeMap::new(),
            reply_timeout: Duration::from_secs(3),
            progress: Arc::new(AtomicUsize::new(0)),
            unsent: false,
            report: PipelineReport::default(),
        }
    }

    /// Sends every op (writes only) with up to `window` in flight, until all are answered or
    /// `deadline` passes.
    pub async fn run(self, ops: Vec<ClientOp>, deadline: Instant) -> PipelineReport {
        self.run_stream(ops.into_iter(), deadline).await
    }

    /// As [`PipelinedWriter::run`], for ops made as they are sent. The stream may be endless
    /// and end when its maker says so (the nemesis stops its writers that way); the writer
    /// then waits for what is in flight, until `deadline`.
    pub async fn run_stream(
        mut self,
        mut ops: impl Iterator<Item = ClientOp>,
        deadline: Instant,
    ) -> PipelineReport {
        self.open(deadline).await;
        loop {
            while self.in_flight.len() < self.window && self.session.can_send() {
                let Some(op) = ops.next() else { break };
                let req = self.session.write_request(op);
                let sent = Instant::now();
                let write = UnansweredWrite {
                    req: req.clone(),
                    sent,
                };
                self.in_flight.insert(req.id.seq, write);
                self.send(&req).await;
            }
            if self.in_flight.is_empty() || Instant::now() >= deadline {
                break;
            }
            if self.unsent {
                // Something in flight was never sent: send it all again, on a new connection
                // to this node or, if it cannot be reached, through the next one.
                if self.connection().await.is_some() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    self.resend_in_flight().await;
                } else {
                    self.switch_node().await;
                }
            } else if !self.receive().await {
                self.switch_node().await;
            }
        }
        self.report.indeterminate = std::mem::take(&mut self.in_flight).into_values().collect();
        self.report
    }

    async fn open(&mut self, deadline: Instant) {
        let timeout = self.reply_timeout;
        while Instant::now() < deadline {
            if let Some(conn) = self.connection().await {
                if let Ok(id) = open_session(conn, timeout).await {
                    self.session.opened(id);
                    return;
                }
            }
            self.switch_node().await;
        }
        panic!("no node opened a session before the deadline");
    }

    async fn connection(&mut self) -> Option<&mut Connection> {
        if self.conn.is_none() {
            let url = &self.urls[self.current];
            self.conn = Connection::open(url, "client", self.reply_timeout)
                .await
                .ok();
        }
        self.conn.as_mut()
    }

    async fn send(&mut self, req: &ClientRequest) {
        let text = serde_json::to_string(req).expect("requests serialise");
        let Some(conn) = self.connection().await else {
            self.unsent = true;
            return;
        };
        if conn.send_text(text).await.is_err() {
            self.conn = None;
            self.unsent = true;
        }
    }

    /// Handles one reply; false when the node should be given up.
    async fn receive(&mut self) -> bool {
        let timeout = self.reply_timeout;
        let Some(conn) = self.connection().await else {
            return false;
        };
        let Ok(text) = conn.recv_text(timeout).await else {
            return false;
        };
        let resp: ClientResponse = serde_json::from_str(&text).expect("replies decode");
        match resp {
            ClientResponse::Ok {
                id,
                value: _,
                index,
                ..
            } => {
                if let Some(write) = self.in_flight.remove(&id.seq) {
                    self.session.settled(id);
                    let (key, value) = match write.req.op {
                        ClientOp::Put { key, value } => (key, Some(value)),
                        ClientOp::Delete { key } => (key, None),
                        other => panic!("the writer sends writes only, not {other:?}"),
                    };
                    self.report.acked.push(AckedWrite {
                        id,
                        key,
                        value,
                        index: index.expect("a logged write names its index"),
                        sent: write.sent,
                        answered: Instant::now(),
                    });
                    self.progress.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            ClientResponse::Err { id: Some(id), .. } if !self.in_flight.contains_key(&id.seq) => {
                true // a late answer to a copy of something already answered
            }
            ClientResponse::Err { error, .. } if error.retryable() => false,
            ClientResponse::Err { id, error } => refused(id, error),
        }
    }

    /// Moves to the next node and resends everything in flight with the same ids, newest
    /// first: the protocol lets copies arrive in any order, and this order is the one most
    /// likely to expose a rule that depends on it.
    async fn switch_node(&mut self) {
        self.report.switches += 1;
        self.conn = None;
        self.current = (self.current + 1) % self.urls.len();
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.resend_in_flight().await;
    }

    /// Sends everything in flight again, newest first.
    async fn resend_in_flight(&mut self) {
        self.unsent = false;
        let resend: Vec<ClientRequest> = self
            .in_flight
            .values()
            .rev()
            .map(|w| self.session.retry(&w.req))
            .collect();
        for req in resend {
            self.send(&req).await;
        }
    }
}

fn refused(id: Option<RequestId>, error: ClientError) -> bool {
    panic!("a write of a client that follows the protocol was refused: {id:?}: {error}")
}
