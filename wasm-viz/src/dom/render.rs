//! Drawing the model: the ring (nodes, links, moving messages), one card per node (log strip,
//! snapshot block, KV table, actions), the client log, the inspector and the timeline bar.
//!
//! Elements are created once and then only their changed attributes and texts are written.
//! Everything carries data attributes (`data-node-id`, `data-role`, `data-state`,
//! `data-index`, `data-status`, `data-key`) so tests can check meaning rather than pixels.

use std::collections::VecDeque;

use omnikv_core::{event::MessageKind, NodeId};
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlInputElement};

use super::el::{self, attr, text, Slot};
use crate::{
    describe,
    model::{role_str, ClusterModel, NodeModel, NodeState, LOG_WINDOW_ENTRIES},
    timeline::Mode,
};

/// Messages drawn at once; older ones in flight are not drawn.
const MSG_DOTS_MAX: usize = 80;
/// How long a message takes to cross the ring on screen, in view time.
const MSG_FLIGHT_MS: f64 = 900.0;
const HEARTBEAT_FLIGHT_MS: f64 = 450.0;
/// While live, the text panels (tables, client log, inspector, notices, timeline line) are
/// refreshed at most this often; the ring, the messages and the log strips move every frame.
/// Text changing sixty times a second cannot be read, and re-laying it out costs the frame.
const PANELS_EVERY_MS: f64 = 100.0;
/// KV rows shown per node.
const KV_ROWS_SHOWN: usize = 30;
/// Client log rows shown.
const CLIENT_ROWS_SHOWN: usize = 25;
/// Notices shown.
const NOTICES_SHOWN: usize = 4;
/// What acts on the live cluster, disabled while an imported trace is shown: fieldsets, which
/// disable every control inside them.
const LIVE_ONLY_FIELDSETS: [&str; 3] = ["client-fields", "scenario-fields", "cards"];
const RING_CENTER: f64 = 200.0;
const RING_RADIUS: f64 = 140.0;

pub struct TimelineInfo {
    pub mode: Mode,
    pub start: u64,
    pub end: u64,
    pub cursor: u64,
    pub dropped: u64,
    pub cursor_ms: Option<u64>,
    pub trace: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Selection {
    None,
    Node(NodeId),
    Message(NodeId, u64),
}

struct Card {
    id: NodeId,
    root: Element,
    role: Element,
    state: Element,
    meta: Element,
    kill: Element,
    pause: Element,
    resume: Element,
    snap: Element,
    strip: Element,
    /// The entries drawn in the strip, by log index, ascending and contiguous.
    entries: VecDeque<(u64, Slot)>,
    kv_body: Element,
    /// Per row: the row, the key cell, the value cell.
    kv_rows: Vec<[Slot; 3]>,
    kv_note: Element,
}

pub struct View {
    drawn_version: u64,
    /// Model version and wall time of the last refresh of the text panels.
    panels_version: u64,
    panels_ms: f64,
    dirty: bool,
    ids: Vec<NodeId>,
    cards: Vec<Card>,
    selected: Selection,
    connection: Option<String>,
    /// The message circles, reused from frame to frame.
    dots: Vec<Slot>,
    /// Per row of the client log: the row and its five cells.
    client_rows: Vec<Vec<Slot>>,
    /// Whether the page last showed a trace (`None` before the first frame).
    trace_shown: Option<bool>,
}

/// Position of node `i` of `n` on the ring. Uses the browser's trigonometry: Rust's own would
/// add a software sin/cos to the wasm.
fn pos(i: usize, n: usize) -> (f64, f64) {
    let a = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * i as f64 / n.max(1) as f64;
    (
        RING_CENTER + RING_RADIUS * js_sys::Math::cos(a),
        RING_CENTER + RING_RADIUS * js_sys::Math::sin(a),
    )
}

/// SVG coordinates in whole units: precise enough, and integer formatting keeps the float
/// printing machinery out of the wasm.
fn f(v: f64) -> String {
    (v.round() as i64).to_string()
}

/// Microseconds as `12.3 ms`, without float formatting.
fn ms_text(us: u64) -> String {
    format!("{}.{} ms", us / 1000, (us % 1000) / 100)
}

impl View {
    pub fn new(_doc: &Document) -> View {
        View {
            drawn_version: u64::MAX,
            panels_version: u64::MAX,
            panels_ms: 0.0,
            dirty: true,
            ids: Vec::new(),
            cards: Vec::new(),
            selected: Selection::None,
            connection: Some(String::from("connecting to the launcher…")),
            dots: Vec::new(),
            client_rows: Vec::new(),
            trace_shown: None,
        }
    }

    pub fn invalidate(&mut self) {
        self.dirty = true;
    }

    pub fn select_node(&mut self, id: Option<NodeId>) {
        self.selected = id.map(Selection::Node).unwrap_or(Selection::None);
        self.dirty = true;
    }

    pub fn select_message(&mut self, from: NodeId, msg_id: u64) {
        self.selected = Selection::Message(from, msg_id);
        self.dirty = true;
    }

    pub fn set_connection(&mut self, c: Option<String>) {
        if self.connection != c {
            self.connection = c;
            self.dirty = true;
        }
    }

    pub fn set_result(&mut self, doc: &Document, ok: bool, line: &str) {
        if let Some(e) = el::by_id(doc, "result") {
            attr(&e, "data-status", if ok { "ok" } else { "err" });
            text(&e, line);
        }
    }

    pub fn set_action_status(&mut self, doc: &Document, line: &str) {
        if let Some(e) = el::by_id(doc, "action-status") {
            text(&e, line);
        }
    }

    pub fn draw(
        &mut self,
        doc: &Document,
        model: &ClusterModel,
        clock_ms: f64,
        info: &TimelineInfo,
    ) {
        let now = super::net::now_ms();
        let live = info.mode == Mode::Live;
        let panels = self.dirty
            || (model.version != self.panels_version
                && (!live || now - self.panels_ms >= PANELS_EVERY_MS));
        if panels {
            self.panels_version = model.version;
            self.panels_ms = now;
        }
        if panels || !live {
            self.draw_timeline(doc, info);
        }
        if self.trace_shown != Some(info.trace) {
            self.trace_shown = Some(info.trace);
            draw_source(doc, info.trace);
        }
        if self.dirty || panels || model.version != self.drawn_version {
            self.dirty = false;
            self.drawn_version = model.version;
            let ids: Vec<NodeId> = model.nodes.keys().copied().collect();
            if ids != self.ids {
                self.ids = ids;
                self.build_structure(doc);
            }
            self.draw_ring(doc, model);
            for card in &mut self.cards {
                if let Some(n) = model.nodes.get(&card.id) {
                    draw_card(doc, card, n, model.shown_leader() == Some(n.id), panels);
                }
            }
            if panels {
                self.draw_client_log(doc, model);
                self.draw_inspector(doc, model, clock_ms);
                self.draw_notices(doc, model);
            }
            if let Some(c) = el::by_id(doc, "connection") {
                text(&c, self.connection.as_deref().unwrap_or(""));
                attr(
                    &c,
                    "data-state",
                    if self.connection.is_some() {
                        "problem"
                    } else {
                        "ok"
                    },
                );
            }
        }
        self.draw_messages(doc, model, clock_ms);
    }

    fn build_structure(&mut self, doc: &Document) {
        let n = self.ids.len();
        if let Some(g) = el::by_id(doc, "ring-nodes") {
            el::ensure_children(&g, 0, || el::svg(doc, "g", ""));
            for (i, id) in self.ids.iter().enumerate() {
                let (x, y) = pos(i, n);
                let node = el::svg(doc, "g", "node");
                attr(&node, "data-node-id", &id.to_string());
                attr(&node, "data-node", &id.to_string());
                attr(&node, "data-action", "select-node");
                attr(&node, "transform", &format!("translate({},{})", f(x), f(y)));
                attr(&node, "role", "button");
                attr(&node, "tabindex", "0");
                attr(&node, "aria-label", &format!("Node {id}"));
                let c = el::svg(doc, "circle", "body");
                attr(&c, "r", "30");
                el::child(&node, &c);
                let name = el::svg(doc, "text", "name");
                attr(&name, "y", "-4");
                text(&name, &format!("N{id}"));
                el::child(&node, &name);
                let sub = el::svg(doc, "text", "sub");
                attr(&sub, "y", "13");
                el::child(&node, &sub);
                let crown = el::svg(doc, "text", "crown");
                attr(&crown, "y", "-38");
                text(&crown, "leader");
                el::child(&node, &crown);
                el::child(&g, &node);
            }
        }
        if let Some(g) = el::by_id(doc, "ring-links") {
            el::ensure_children(&g, 0, || el::svg(doc, "g", ""));
            for i in 0..n {
                for j in i + 1..n {
                    let (a, b) = (self.ids[i], self.ids[j]);
                    let (x1, y1) = pos(i, n);
                    let (x2, y2) = pos(j, n);
                    let link = el::svg(doc, "g", "link");
                    attr(&link, "data-action", "link");
                    attr(&link, "data-a", &a.to_string());
                    attr(&link, "data-b", &b.to_string());
                    attr(&link, "role", "button");
                    attr(&link, "tabindex", "0");
                    for class in ["hit", "wire"] {
                        let l = el::svg(doc, "line", class);
                        attr(&l, "x1", &f(x1));
                        attr(&l, "y1", &f(y1));
                        attr(&l, "x2", &f(x2));
                        attr(&l, "y2", &f(y2));
                        el::child(&link, &l);
                    }
                    el::child(&g, &link);
                }
            }
        }
        if let Some(sel) = el::by_id(doc, "target-node") {
            el::ensure_children(&sel, 1 + n, || el::html(doc, "option", ""));
            for (i, id) in self.ids.iter().enumerate() {
                if let Some(o) = el::nth(&sel, i + 1) {
                    attr(&o, "value", &id.to_string());
                    text(&o, &format!("node {id}"));
                }
            }
        }
        let Some(container) = el::by_id(doc, "cards") else {
            return;
        };
        el::ensure_children(&container, 0, || el::html(doc, "div", ""));
        self.cards = self
            .ids
            .iter()
            .map(|id| make_card(doc, &container, *id))
            .collect();
    }

    fn draw_ring(&self, doc: &Document, model: &ClusterModel) {
        let leader = model.shown_leader();
        if let Some(g) = el::by_id(doc, "ring-nodes") {
            for (i, id) in self.ids.iter().enumerate() {
                let (Some(e), Some(n)) = (el::nth(&g, i), model.nodes.get(id)) else {
                    continue;
                };
                attr(&e, "data-role", role_str(n.shown_role()));
                attr(&e, "data-state", n.state().as_str());
                attr(
                    &e,
                    "data-leader",
                    if leader == Some(*id) { "true" } else { "false" },
                );
                attr(
                    &e,
                    "data-selected",
                    if self.selected == Selection::Node(*id) {
                        "true"
                    } else {
                        "false"
                    },
                );
                if let Some(sub) = e.query_selector(".sub").ok().flatten() {
                    let line = match (n.state(), n.ballot) {
                        (NodeState::Down, _) => "down".to_string(),
                        (NodeState::Paused, _) => "paused".to_string(),
                        (_, Some(b)) => format!("b{}", describe::ballot(&b)),
                        _ => n.state().as_str().to_string(),
                    };
                    text(&sub, &line);
                }
                let label = format!(
                    "Node {id}: {} {}",
                    n.state().as_str(),
                    role_str(n.shown_role())
                );
                attr(&e, "aria-label", &label);
            }
        }
        if let Some(g) = el::by_id(doc, "ring-links") {
            let links = g.children();
            for i in 0..links.length() {
                let Some(l) = links.item(i) else { continue };
                let a: NodeId = l
                    .get_attribute("data-a")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let b: NodeId = l
                    .get_attribute("data-b")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let enabled = model.link_connected(a, b).unwrap_or(true);
                let stream_up = |x: NodeId, y: NodeId| {
                    model
                        .nodes
                        .get(&x)
                        .and_then(|n| n.peer(y))
                        .map(|p| p.connected)
                };
                let dead = |x: NodeId| {
                    matches!(
                        model.nodes.get(&x).map(|n| n.state()),
                        Some(NodeState::Down | NodeState::Paused)
                    )
                };
                let transport = if dead(a) || dead(b) {
                    "down"
                } else {
                    match (stream_up(a, b), stream_up(b, a)) {
                        (Some(false), _) | (_, Some(false)) => "down",
                        _ => "up",
                    }
                };
                attr(&l, "data-connected", if enabled { "true" } else { "false" });
                attr(&l, "data-transport", transport);
                let label = if enabled {
                    format!("Cut link {a}–{b}")
                } else {
                    format!("Heal link {a}–{b}")
                };
                attr(&l, "aria-label", &label);
            }
        }
    }

    fn draw_messages(&mut self, doc: &Document, model: &ClusterModel, clock_ms: f64) {
        let Some(g) = el::by_id(doc, "ring-msgs") else {
            return;
        };
        let n = self.ids.len();
        let index = |id: NodeId| self.ids.iter().position(|x| *x == id);
        let mut dots = Vec::with_capacity(MSG_DOTS_MAX);
        for m in model.messages.iter().rev() {
            if dots.len() == MSG_DOTS_MAX {
                break;
            }
            let hb = m.info.kind.is_heartbeat();
            let flight = if hb {
                HEARTBEAT_FLIGHT_MS
            } else {
                MSG_FLIGHT_MS
            };
            let p = (clock_ms - m.sent_ms as f64) / flight;
            if !(0.0..1.0).contains(&p) {
                continue;
            }
            let (Some(i), Some(j)) = (index(m.info.from), index(m.info.to)) else {
                continue;
            };
            let ((x1, y1), (x2, y2)) = (pos(i, n), pos(j, n));
            dots.push((m, x1 + (x2 - x1) * p, y1 + (y2 - y1) * p, hb));
        }
        if dots.is_empty() && self.dots.is_empty() {
            return;
        }
        el::ensure_slots(
            &g,
            &mut self.dots,
            dots.len(),
            |s| &s.el,
            || {
                let c = el::svg(doc, "circle", "msg");
                attr(&c, "data-action", "select-msg");
                Slot::new(c)
            },
        );
        // Written only when they change: positions every frame, the rest when a circle starts
        // showing another message.
        for (c, (m, x, y, hb)) in self.dots.iter_mut().zip(&dots) {
            c.attr("cx", &f(*x));
            c.attr("cy", &f(*y));
            c.attr("r", if *hb { "3" } else { "7" });
            c.attr("data-kind", describe::kind_name(m.info.kind));
            c.attr("data-class", kind_class(m.info.kind));
            c.attr("data-from", &m.info.from.to_string());
            c.attr("data-msg-id", &m.info.msg_id.to_string());
            let selected = self.selected == Selection::Message(m.info.from, m.info.msg_id);
            c.attr("data-selected", if selected { "true" } else { "false" });
        }
    }

    fn draw_client_log(&mut self, doc: &Document, model: &ClusterModel) {
        let Some(body) = el::by_id(doc, "client-rows") else {
            return;
        };
        let rows: Vec<_> = model
            .client_log
            .iter()
            .rev()
            .take(CLIENT_ROWS_SHOWN)
            .collect();
        el::ensure_slots(
            &body,
            &mut self.client_rows,
            rows.len(),
            |r| &r[0].el,
            || {
                let tr = el::html(doc, "tr", "");
                let mut row = vec![Slot::new(tr.clone())];
                for _ in 0..5 {
                    let td = el::html(doc, "td", "");
                    el::child(&tr, &td);
                    row.push(Slot::new(td));
                }
                row
            },
        );
        for (slots, r) in self.client_rows.iter_mut().zip(&rows) {
            let status = match &r.outcome {
                None => "pending",
                Some(omnikv_core::event::RequestOutcome::Ok { .. }) => "ok",
                Some(_) => "err",
            };
            slots[0].attr("data-status", status);
            slots[0].attr("data-request", &format!("{}/{}", r.id.client, r.id.seq));
            let cells = [
                describe::op(&r.op),
                if r.attempts > 1 {
                    format!("{} ({} tries)", r.node, r.attempts)
                } else {
                    r.node.to_string()
                },
                r.outcome
                    .as_ref()
                    .map(describe::outcome)
                    .unwrap_or_else(|| "…".into()),
                r.latency_us.map(ms_text).unwrap_or_default(),
                format!("{}/{}", r.id.client % 10_000, r.id.seq),
            ];
            for (td, c) in slots[1..].iter_mut().zip(&cells) {
                td.text(c);
            }
        }
    }

    fn draw_inspector(&self, doc: &Document, model: &ClusterModel, clock_ms: f64) {
        let Some(body) = el::by_id(doc, "inspector-rows") else {
            return;
        };
        if let Some(drawer) = el::by_id(doc, "inspector") {
            set_flag(&drawer, "hidden", self.selected == Selection::None);
        }
        let mut rows: Vec<(String, String)> = Vec::new();
        let title = match self.selected {
            Selection::None => String::new(),
            Selection::Node(id) => {
                if let Some(n) = model.nodes.get(&id) {
                    node_rows(n, clock_ms, &mut rows);
                }
                format!("Node {id}")
            }
            Selection::Message(from, msg_id) => {
                let m = model
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.info.from == from && m.info.msg_id == msg_id);
                if let Some(m) = m {
                    for (k, v) in describe::message_fields(&m.info) {
                        rows.push((k.to_string(), v));
                    }
                    rows.push(("sent".into(), format!("{} ms", m.sent_ms)));
                    let rcv = m
                        .received_ms
                        .map(|r| format!("{} ms (+{} ms)", r, r.saturating_sub(m.sent_ms)))
                        .unwrap_or_else(|| "not seen".into());
                    rows.push(("received".into(), rcv));
                }
                format!("Message {from}/{msg_id}")
            }
        };
        if let Some(t) = el::by_id(doc, "inspector-title") {
            text(&t, &title);
        }
        el::ensure_children(&body, rows.len(), || {
            let tr = el::html(doc, "tr", "");
            el::child(&tr, &el::html(doc, "th", ""));
            el::child(&tr, &el::html(doc, "td", ""));
            tr
        });
        for (i, (k, v)) in rows.iter().enumerate() {
            if let Some(tr) = el::nth(&body, i) {
                if let (Some(th), Some(td)) = (el::nth(&tr, 0), el::nth(&tr, 1)) {
                    text(&th, k);
                    text(&td, v);
                }
            }
        }
    }

    fn draw_notices(&self, doc: &Document, model: &ClusterModel) {
        let Some(ul) = el::by_id(doc, "notices") else {
            return;
        };
        let items: Vec<_> = model.notices.iter().rev().take(NOTICES_SHOWN).collect();
        el::ensure_children(&ul, items.len(), || el::html(doc, "li", ""));
        for (i, n) in items.iter().enumerate() {
            if let Some(li) = el::nth(&ul, i) {
                text(&li, &n.text);
            }
        }
    }

    fn draw_timeline(&self, doc: &Document, info: &TimelineInfo) {
        let mode = match info.mode {
            Mode::Live => "live",
            Mode::Paused => "paused",
            Mode::Replay { .. } => "replay",
        };
        if let Some(b) = doc.body() {
            attr(&b, "data-mode", mode);
        }
        if let Some(s) = el::by_id(doc, "scrub") {
            attr(&s, "min", &info.start.to_string());
            attr(&s, "max", &info.end.to_string());
            attr(&s, "data-cursor", &info.cursor.to_string());
            if let Some(i) = s.dyn_ref::<HtmlInputElement>() {
                if i.value_as_number() as u64 != info.cursor {
                    i.set_value(&info.cursor.to_string());
                }
            }
        }
        if let Some(p) = el::by_id(doc, "pause-view") {
            attr(
                &p,
                "aria-pressed",
                if info.mode == Mode::Paused {
                    "true"
                } else {
                    "false"
                },
            );
        }
        if let Some(t) = el::by_id(doc, "timeline-info") {
            let source = if info.trace { "trace" } else { "recording" };
            let mut line = match info.mode {
                Mode::Live => format!("live · {} events recorded", info.end - info.start),
                _ => format!(
                    "{mode} · {} / {}{}",
                    info.cursor - info.start,
                    info.end - info.start,
                    info.cursor_ms.map(clock_text).unwrap_or_default()
                ),
            };
            line.push_str(&format!(" · {source}"));
            if info.dropped > 0 {
                line.push_str(&format!(" · {} oldest dropped", info.dropped));
            }
            text(&t, &line);
        }
    }
}

fn clock_text(ms: u64) -> String {
    format!(" · {} UTC", describe::clock(ms))
}

fn kind_class(k: MessageKind) -> &'static str {
    match k {
        MessageKind::HeartbeatRequest | MessageKind::HeartbeatReply => "heartbeat",
        MessageKind::PrepareReq | MessageKind::Prepare | MessageKind::Promise => "election",
        MessageKind::AcceptSync => "sync",
        MessageKind::AcceptDecide | MessageKind::Accepted | MessageKind::NotAccepted => "replicate",
        MessageKind::Decide => "decide",
        MessageKind::ProposalForward => "forward",
        _ => "other",
    }
}

fn node_rows(n: &NodeModel, clock_ms: f64, rows: &mut Vec<(String, String)>) {
    let b = |v: Option<omnikv_core::event::BallotView>| {
        v.map(|b| describe::ballot(&b)).unwrap_or("-".into())
    };
    rows.push(("state".into(), n.state().as_str().into()));
    rows.push(("role".into(), role_str(n.shown_role()).into()));
    rows.push((
        "leader".into(),
        n.leader.map(|l| l.to_string()).unwrap_or("-".into()),
    ));
    rows.push(("ballot".into(), b(n.ballot)));
    rows.push(("promise".into(), b(n.promise)));
    rows.push(("accepted_idx".into(), n.accepted_idx.to_string()));
    rows.push(("decided_idx".into(), n.decided_idx.to_string()));
    rows.push(("applied_idx".into(), n.applied_idx.to_string()));
    rows.push(("compacted_idx".into(), n.compacted_idx.to_string()));
    rows.push(("keys".into(), n.kv.len().to_string()));
    if n.details_sampled > 0 {
        rows.push((
            "not drawn (busy)".into(),
            format!("{} messages and client events", n.details_sampled),
        ));
    }
    rows.push(("data dir".into(), n.data_dir.clone()));
    rows.push((
        "pid".into(),
        n.pid.map(|p| p.to_string()).unwrap_or("-".into()),
    ));
    if n.started_at_ms > 0 {
        let up_s = ((clock_ms - n.started_at_ms as f64) / 1000.0).max(0.0);
        rows.push(("uptime".into(), format!("{} s", up_s as u64)));
    }
    rows.push(("peer addr".into(), n.peer_addr.clone()));
    let peers: Vec<String> = n
        .peers
        .iter()
        .map(|p| {
            let s = if !p.link_enabled {
                "cut"
            } else if p.connected {
                "up"
            } else {
                "down"
            };
            format!("{}:{s}", p.id)
        })
        .collect();
    rows.push(("peers".into(), peers.join(" ")));
    rows.push((
        "event stream".into(),
        if n.stream_connected { "open" } else { "closed" }.into(),
    ));
}

fn make_card(doc: &Document, container: &Element, id: NodeId) -> Card {
    let root = el::html(doc, "article", "card");
    attr(&root, "data-node-id", &id.to_string());
    attr(&root, "aria-label", &format!("Node {id} details"));
    let head = el::html(doc, "header", "");
    let title = el::html(doc, "h3", "");
    attr(&title, "data-action", "select-node");
    attr(&title, "data-node", &id.to_string());
    text(&title, &format!("Node {id}"));
    let role = el::html(doc, "span", "badge role");
    let state = el::html(doc, "span", "badge state");
    el::child(&head, &title);
    el::child(&head, &role);
    el::child(&head, &state);
    el::child(&root, &head);
    let meta = el::html(doc, "div", "meta");
    el::child(&root, &meta);
    let actions = el::html(doc, "div", "actions");
    let mut buttons = Vec::new();
    for (op, label) in [
        ("kill", "Kill"),
        ("pause", "Pause"),
        ("resume", "Resume"),
        ("restart", "Restart"),
    ] {
        let b = el::html(doc, "button", "");
        attr(&b, "type", "button");
        attr(&b, "data-action", "node");
        attr(&b, "data-op", op);
        attr(&b, "data-node", &id.to_string());
        attr(&b, "aria-label", &format!("{label} node {id}"));
        text(&b, label);
        el::child(&actions, &b);
        buttons.push(b);
    }
    el::child(&root, &actions);
    let log_wrap = el::html(doc, "div", "log");
    attr(&log_wrap, "aria-label", &format!("Log of node {id}"));
    let snap = el::html(doc, "span", "snap");
    attr(&snap, "data-status", "compacted");
    let strip = el::html(doc, "span", "strip");
    el::child(&log_wrap, &snap);
    el::child(&log_wrap, &strip);
    el::child(&root, &log_wrap);
    let table = el::html(doc, "table", "kv");
    attr(&table, "data-kv-node", &id.to_string());
    attr(&table, "aria-label", &format!("Keys on node {id}"));
    let kv_body = el::html(doc, "tbody", "");
    el::child(&table, &kv_body);
    el::child(&root, &table);
    let kv_note = el::html(doc, "div", "kv-note");
    el::child(&root, &kv_note);
    el::child(container, &root);
    let mut it = buttons.into_iter();
    let kill = it.next().unwrap_or_else(|| el::html(doc, "button", ""));
    let pause = it.next().unwrap_or_else(|| el::html(doc, "button", ""));
    let resume = it.next().unwrap_or_else(|| el::html(doc, "button", ""));
    Card {
        id,
        root,
        role,
        state,
        meta,
        kill,
        pause,
        resume,
        snap,
        strip,
        entries: VecDeque::new(),
        kv_body,
        kv_rows: Vec::new(),
        kv_note,
    }
}

/// Says whether the page shows an imported trace or the live cluster (the header's words come
/// from `body[data-source]` in CSS), and disables what would act on the live cluster.
fn draw_source(doc: &Document, trace: bool) {
    if let Some(b) = doc.body() {
        attr(&b, "data-source", if trace { "trace" } else { "live" });
    }
    doc.set_title(if trace {
        "OmniKV — trace"
    } else {
        "OmniKV — live cluster"
    });
    for id in LIVE_ONLY_FIELDSETS {
        if let Some(e) = el::by_id(doc, id) {
            set_flag(&e, "disabled", trace);
        }
    }
    // SVG has no disabled links: mark them, and `App` ignores their clicks.
    if let Some(g) = el::by_id(doc, "ring-links") {
        attr(&g, "aria-disabled", if trace { "true" } else { "false" });
    }
}

/// Adds or removes a boolean attribute (`disabled`, `hidden`).
fn set_flag(e: &Element, name: &str, on: bool) {
    if on != e.has_attribute(name) {
        if on {
            let _ = e.set_attribute(name, "");
        } else {
            let _ = e.remove_attribute(name);
        }
    }
}

fn set_disabled(e: &Element, disabled: bool) {
    set_flag(e, "disabled", disabled);
}

fn draw_card(doc: &Document, c: &mut Card, n: &NodeModel, is_leader: bool, panels: bool) {
    let state = n.state();
    let role = role_str(n.shown_role());
    attr(&c.root, "data-role", role);
    attr(&c.root, "data-state", state.as_str());
    attr(
        &c.root,
        "data-leader",
        if is_leader { "true" } else { "false" },
    );
    text(&c.role, role);
    attr(&c.role, "data-role", role);
    text(&c.state, state.as_str());
    attr(&c.state, "data-state", state.as_str());
    let ballot = n.ballot.map(|b| describe::ballot(&b)).unwrap_or("-".into());
    text(
        &c.meta,
        &format!(
            "ballot {ballot} · accepted {} · decided {} · applied {}",
            n.accepted_idx, n.decided_idx, n.applied_idx
        ),
    );
    set_disabled(&c.kill, state == NodeState::Down);
    set_disabled(
        &c.pause,
        !matches!(state, NodeState::Up | NodeState::Recovering),
    );
    set_disabled(&c.resume, state != NodeState::Paused);

    // Snapshot block for the compacted prefix.
    if n.compacted_idx > 0 {
        let keys = match n.snapshot.as_ref().map(|s| s.key_count) {
            Some(k) if k > 0 => format!(" · {k} keys"),
            _ => String::new(),
        };
        let how = if n.snapshot.as_ref().is_some_and(|s| s.installed) {
            "installed"
        } else {
            "snapshot"
        };
        attr(&c.snap, "data-index", &n.compacted_idx.to_string());
        attr(
            &c.snap,
            "data-installed",
            if how == "installed" { "true" } else { "false" },
        );
        text(&c.snap, &format!("{how} ..{}{keys}", n.compacted_idx));
        attr(
            &c.snap,
            "title",
            &format!("entries 0..{} compacted into a snapshot", n.compacted_idx),
        );
        let _ = c.snap.remove_attribute("hidden");
    } else if !c.snap.has_attribute("hidden") {
        let _ = c.snap.set_attribute("hidden", "");
    }

    // Log strip: the newest entries after the compacted prefix.
    let first = n
        .compacted_idx
        .max(n.accepted_idx.saturating_sub(LOG_WINDOW_ENTRIES as u64 / 2));
    let end = n.accepted_idx.max(first);
    // The strip slides as the log grows: entries that fell out of the window are removed, new
    // ones appended, and the ones that stay keep their elements (only their status changes).
    if c.entries.front().is_some_and(|(i, _)| *i > first) {
        while let Some((_, e)) = c.entries.pop_front() {
            e.el.remove();
        }
    }
    while c.entries.front().is_some_and(|(i, _)| *i < first) {
        if let Some((_, e)) = c.entries.pop_front() {
            e.el.remove();
        }
    }
    while c.entries.back().is_some_and(|(i, _)| *i >= end) {
        if let Some((_, e)) = c.entries.pop_back() {
            e.el.remove();
        }
    }
    let mut next = c.entries.back().map_or(first, |(i, _)| i + 1);
    while next < end {
        let e = el::html(doc, "span", "entry");
        el::child(&c.strip, &e);
        c.entries.push_back((next, Slot::new(e)));
        next += 1;
    }
    for (idx, e) in c.entries.iter_mut() {
        let idx = &*idx;
        let cmd = n.log.get(*idx).and_then(|c| c.as_ref());
        e.attr("data-index", &idx.to_string());
        e.attr("data-status", n.entry_status(*idx).as_str());
        let title = cmd
            .map(describe::command)
            .unwrap_or_else(|| "(command not shown)".into());
        e.attr(
            "title",
            &format!("#{idx} {title} — {}", n.entry_status(*idx).as_str()),
        );
        let label = match cmd {
            Some(c) => {
                let key = c.key();
                let short: String = key.chars().take(6).collect();
                format!("{idx}\n{short}")
            }
            None => format!("{idx}\n·"),
        };
        e.text(&label);
    }

    if !panels {
        return;
    }
    // KV table.
    let rows: Vec<_> = n.kv.iter().take(KV_ROWS_SHOWN).collect();
    el::ensure_slots(
        &c.kv_body,
        &mut c.kv_rows,
        rows.len(),
        |r| &r[0].el,
        || {
            let tr = el::html(doc, "tr", "");
            let k = el::html(doc, "td", "k");
            let v = el::html(doc, "td", "v");
            el::child(&tr, &k);
            el::child(&tr, &v);
            [Slot::new(tr), Slot::new(k), Slot::new(v)]
        },
    );
    for ([tr, kt, vt], (k, v)) in c.kv_rows.iter_mut().zip(&rows) {
        let unknown = n.kv_unknown.contains(*k);
        tr.attr("data-key", k);
        tr.attr("data-value", v);
        kt.text(k);
        vt.text(if unknown { "(in snapshot)" } else { v });
    }
    let mut note = String::new();
    if n.kv.is_empty() {
        note.push_str("no keys");
    }
    if n.kv.len() > KV_ROWS_SHOWN {
        note.push_str(&format!("+{} more keys", n.kv.len() - KV_ROWS_SHOWN));
    }
    if n.kv_truncated {
        note.push_str(" · the node holds more keys than the page keeps");
    }
    if n.kv_partial {
        note.push_str(" · partial view (joined late or events dropped)");
    }
    text(&c.kv_note, note.trim_start_matches(" · "));
}
