//! The client form: put, get, delete, scan a prefix and compare-and-swap from the page, through
//! one node at a time, with the session and retry rules of [`crate::client::ClientSession`].
//!
//! Socket callbacks only note what happened (`lost`, `next`); a step that may replace the
//! socket runs from the next animation frame ([`ClientForm::frame`]), because a callback must
//! not free the closure that is running it.
//!
//! Each finished operation, with its invocation and response times, is kept for the app to
//! record ([`ClientForm::take_operations`]): the history the History drawer checks.

use omnikv_core::{
    client::{ClientOp, ClientRequest, ClientResponse},
    limits::CLIENT_FRAME_BYTES_MAX,
    linearizability::Operation,
    wire::encode_postcard,
    NodeId,
};
use web_sys::Document;

use super::{
    el::{self, attr, text},
    net::{decode_frame, Socket, SocketEvent},
    now_ms,
};
use crate::{
    client::{cas_op, describe_response, op_from_parts, ClientSession, Step},
    history,
};

/// How long the page waits for a client reply before treating the outcome as unknown.
const CLIENT_REPLY_TIMEOUT_MS: f64 = 12_000.0;

pub struct ClientForm {
    client_id: u64,
    session: ClientSession,
    /// The operation in flight as the user asked for it, and when (µs since the epoch).
    invoked: Option<(ClientOp, u64)>,
    /// Finished operations for the history, taken by the app to record.
    finished: Vec<Operation>,
    sock: Option<(NodeId, Socket)>,
    /// A frame waiting for its socket to open.
    queued: Option<Vec<u8>>,
    sent_ms: f64,
    began_ms: f64,
    /// Why the pending request's connection was lost, taken at the next frame.
    lost: Option<String>,
    /// A step decided inside a socket callback, taken at the next frame.
    next: Option<Step>,
    last_node: Option<NodeId>,
    /// Live nodes in the order clients try them (leader first).
    targets: Vec<NodeId>,
    /// Where the client socket reports.
    on_event: fn(NodeId, SocketEvent),
}

impl ClientForm {
    pub fn new(on_event: fn(NodeId, SocketEvent)) -> ClientForm {
        // A random client id: two open pages must not share request sessions.
        let client_id = (js_sys::Math::random() * 9.0e15) as u64 + 1;
        ClientForm {
            client_id,
            session: ClientSession::new(client_id),
            invoked: None,
            finished: Vec::new(),
            sock: None,
            queued: None,
            sent_ms: 0.0,
            began_ms: 0.0,
            lost: None,
            next: None,
            last_node: None,
            targets: Vec::new(),
            on_event,
        }
    }

    /// The nodes requests may go to, leader first; and a reply overdue becomes a lost one.
    pub fn set_targets(&mut self, targets: Vec<NodeId>) {
        self.targets = targets;
        if self.session.pending().is_some() && now_ms() - self.sent_ms > CLIENT_REPLY_TIMEOUT_MS {
            self.lost = Some("no reply in time".into());
        }
    }

    /// Starts `op` ("put", "get", "delete", "scan", "cas") with the form's fields.
    pub fn submit(&mut self, doc: &Document, op: &str, ws: &dyn Fn(NodeId) -> Option<String>) {
        let key = el::input_value(doc, "key");
        let value = el::input_value(doc, "value");
        let op = match op {
            "cas" => {
                let kind = el::input_value(doc, "expect-kind");
                cas_op(&key, Some(value), &kind, &el::input_value(doc, "expect"))
            }
            _ => op_from_parts(op, &key, &value, &el::input_value(doc, "read-mode")),
        };
        let op = match op {
            Ok(o) => o,
            Err(e) => return show_result(doc, false, &e),
        };
        match self.session.begin(op.clone()) {
            Ok(req) => {
                self.began_ms = now_ms();
                self.invoked = Some((op, micros(self.began_ms)));
                self.last_node = None;
                let line = format!("sending {}…", crate::describe::op(&req.op));
                show_result(doc, true, &line);
                self.send(doc, req, ws);
            }
            Err(e) => show_result(doc, false, &e),
        }
    }

    /// Takes the steps socket callbacks deferred.
    pub fn frame(&mut self, doc: &Document, ws: &dyn Fn(NodeId) -> Option<String>) {
        if let Some(why) = self.lost.take() {
            let step = self.session.on_lost(&why);
            self.after_step(doc, step, ws);
        }
        if let Some(step) = self.next.take() {
            self.after_step(doc, step, ws);
        }
    }

    fn choose_node(&self, doc: &Document) -> Option<NodeId> {
        let chosen = el::input_value(doc, "target-node").parse::<NodeId>().ok();
        let first_try = self.last_node.is_none();
        if let Some(n) = chosen.filter(|n| first_try && self.targets.contains(n)) {
            return Some(n);
        }
        // A retry moves on to the next node.
        self.targets
            .iter()
            .copied()
            .find(|n| Some(*n) != self.last_node)
            .or(self.targets.first().copied())
    }

    fn send(&mut self, doc: &Document, req: ClientRequest, ws: &dyn Fn(NodeId) -> Option<String>) {
        let Some(node) = self.choose_node(doc) else {
            self.lost = Some("no node is up".into());
            return;
        };
        self.last_node = Some(node);
        self.sent_ms = now_ms();
        let frame = encode_postcard(&req);
        let reuse = matches!(&self.sock, Some((n, s)) if *n == node && !s.is_closed());
        if !reuse {
            self.sock = None;
            let Some(base) = ws(node) else { return };
            let deliver = self.on_event;
            match Socket::open(&format!("{base}/client"), move |ev| deliver(node, ev)) {
                Ok(s) => self.sock = Some((node, s)),
                Err(e) => {
                    self.lost = Some(e);
                    return;
                }
            }
        }
        match &self.sock {
            Some((_, s)) if s.is_open() => {
                if !s.send(&frame) {
                    self.lost = Some("send failed".into());
                }
            }
            _ => self.queued = Some(frame),
        }
    }

    fn after_step(&mut self, doc: &Document, step: Step, ws: &dyn Fn(NodeId) -> Option<String>) {
        match step {
            Step::Ignore => {}
            Step::Send(req) => {
                // The next request of the same operation: no node to move away from.
                self.last_node = None;
                self.send(doc, req, ws);
            }
            Step::Retry(req) => {
                self.sock = None;
                self.send(doc, req, ws);
            }
            Step::Done { ok, text } => self.finish(doc, ok, &text, None),
        }
    }

    /// Shows the outcome and keeps the operation for the history (`reply`: `None` when the
    /// client gave up, so the outcome is unknown).
    fn finish(&mut self, doc: &Document, ok: bool, text: &str, reply: Option<&ClientResponse>) {
        let now = now_ms();
        if let Some((op, call_us)) = self.invoked.take() {
            let done = history::operation_of(self.client_id, &op, reply, call_us, micros(now));
            self.finished.extend(done);
        }
        let ms = now - self.began_ms;
        show_result(doc, ok, &format!("{text} — {} ms", ms as u64));
    }

    /// The operations finished since the last call.
    pub fn take_operations(&mut self) -> Vec<Operation> {
        std::mem::take(&mut self.finished)
    }

    /// What the client socket to `node` reports. Returns a notice for the record, if any.
    pub fn on_socket(&mut self, doc: &Document, node: NodeId, ev: SocketEvent) -> Option<String> {
        let current = matches!(&self.sock, Some((n, _)) if *n == node);
        if !current {
            return None;
        }
        match ev {
            SocketEvent::Open => {
                if let (Some(frame), Some((_, s))) = (self.queued.take(), &self.sock) {
                    if !s.send(&frame) {
                        self.lost = Some("send failed".into());
                    }
                }
            }
            SocketEvent::Frame(frame) => {
                match decode_frame::<ClientResponse>(frame, CLIENT_FRAME_BYTES_MAX) {
                    Ok(resp) => match self.session.on_response(&resp) {
                        // Retrying or sending may replace this socket: from the next frame.
                        Step::Retry(_) => self.lost = Some(describe_response(&resp)),
                        step @ Step::Send(_) => self.next = Some(step),
                        Step::Done { ok, text } => self.finish(doc, ok, &text, Some(&resp)),
                        Step::Ignore => {}
                    },
                    Err(e) => return Some(format!("node {node}: bad client reply: {e}")),
                }
            }
            SocketEvent::Closed(why) => {
                if self.session.pending().is_some() {
                    self.lost = Some(format!("node {node} {why}"));
                }
            }
        }
        None
    }
}

fn micros(ms: f64) -> u64 {
    (ms * 1000.0) as u64
}

/// The form's one-line answer.
pub fn show_result(doc: &Document, ok: bool, line: &str) {
    if let Some(e) = el::by_id(doc, "result") {
        attr(&e, "data-status", if ok { "ok" } else { "err" });
        text(&e, line);
    }
}
