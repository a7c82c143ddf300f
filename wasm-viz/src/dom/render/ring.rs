//! The ring: one circle per node, one line per link (click to cut or heal), and messages as
//! dots flying from sender to receiver. A held link is drawn dashed, with the messages waiting
//! in each direction written next to their sender.

use omnikv_core::NodeId;
use wasm_bindgen::JsCast;
use web_sys::Document;

use super::{bool_str, f, kind_class, Selection};
use crate::model::MessageView;
use crate::{
    describe,
    dom::el::{self, attr, text, KeyedSlots, Slot},
    model::{role_str, ClusterModel, NodeState},
};

/// Messages drawn at once; one that takes off while they fly is not drawn.
const MSG_DOTS_MAX: usize = 80;
/// Of those, heartbeats at most: an idle cluster's heartbeats must leave room for a write's
/// messages.
const HEARTBEAT_DOTS_MAX: usize = 30;
/// How long a message takes to cross the ring on screen, in view time.
const MSG_FLIGHT_MS: f64 = 900.0;
const HEARTBEAT_FLIGHT_MS: f64 = 450.0;
const RING_CENTER: f64 = 200.0;
const RING_RADIUS: f64 = 140.0;

#[derive(Default)]
pub struct Ring {
    /// The message circles on screen, by `(from, msg_id)`, and whether each is a heartbeat.
    dots: KeyedSlots<(NodeId, u64), bool>,
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

impl Ring {
    /// Creates the node circles and link lines for nodes `ids`.
    pub fn build(&mut self, doc: &Document, ids: &[NodeId]) {
        if let Some(g) = el::by_id(doc, "ring-nodes") {
            el::ensure_children(&g, 0, || el::svg(doc, "g", ""));
            for (i, id) in ids.iter().enumerate() {
                el::child(&g, &make_node(doc, *id, pos(i, ids.len())));
            }
        }
        if let Some(g) = el::by_id(doc, "ring-links") {
            el::ensure_children(&g, 0, || el::svg(doc, "g", ""));
            let n = ids.len();
            for i in 0..n {
                for j in i + 1..n {
                    let link = make_link(doc, (ids[i], ids[j]), pos(i, n), pos(j, n));
                    el::child(&g, &link);
                }
            }
        }
    }

    pub fn draw(&self, doc: &Document, ids: &[NodeId], model: &ClusterModel, selected: Selection) {
        let leader = model.shown_leader();
        if let Some(g) = el::by_id(doc, "ring-nodes") {
            for (i, id) in ids.iter().enumerate() {
                if let Some(e) = el::nth(&g, i) {
                    draw_node(&e, *id, model, leader, selected);
                }
            }
        }
        if let Some(g) = el::by_id(doc, "ring-links") {
            let links = g.children();
            for i in 0..links.length() {
                if let Some(l) = links.item(i) {
                    draw_link(&l, model);
                }
            }
        }
    }

    /// Moves each drawn message along its link. A circle keeps its message from take-off to
    /// landing, and a message takes off on screen only while fewer than [`MSG_DOTS_MAX`] fly:
    /// under load the ring shows a steady sample of whole flights (newest first) instead of
    /// circles that change message every frame, and a frame writes positions, not identities.
    pub fn draw_messages(
        &mut self,
        doc: &Document,
        ids: &[NodeId],
        model: &ClusterModel,
        clock_ms: f64,
        selected: Selection,
    ) {
        let Some(g) = el::by_id(doc, "ring-msgs") else {
            return;
        };
        let n = ids.len();
        let index = |id: NodeId| ids.iter().position(|x| *x == id);
        let mut flying: Vec<Flight> = Vec::with_capacity(MSG_DOTS_MAX);
        // Circles per class (heartbeats, the rest) after this frame's take-offs.
        let mut room = [HEARTBEAT_DOTS_MAX, MSG_DOTS_MAX - HEARTBEAT_DOTS_MAX];
        for (_, hb, _) in &self.dots.shown {
            let class = usize::from(!hb);
            room[class] = room[class].saturating_sub(1);
        }
        for m in model.messages.iter().rev() {
            let hb = m.info.kind.is_heartbeat();
            let flight = if hb {
                HEARTBEAT_FLIGHT_MS
            } else {
                MSG_FLIGHT_MS
            };
            let p = (clock_ms - m.sent_ms as f64) / flight;
            // Landed, or (replaying) not yet sent.
            if !(0.0..1.0).contains(&p) {
                continue;
            }
            let (Some(i), Some(j)) = (index(m.info.from), index(m.info.to)) else {
                continue;
            };
            let key = (m.info.from, m.info.msg_id);
            if self.dots.position(&key).is_none() {
                let class = usize::from(!hb);
                if room[class] == 0 {
                    continue;
                }
                room[class] -= 1;
            }
            let ((x1, y1), (x2, y2)) = (pos(i, n), pos(j, n));
            flying.push(Flight {
                m,
                x: x1 + (x2 - x1) * p,
                y: y1 + (y2 - y1) * p,
            });
        }
        self.dots.retain(|key| {
            flying
                .iter()
                .any(|f| (f.m.info.from, f.m.info.msg_id) == *key)
        });
        for f in flying {
            let key = (f.m.info.from, f.m.info.msg_id);
            let k = self.dots.show(&g, key, f.m.info.kind.is_heartbeat(), || {
                let c = el::svg(doc, "circle", "msg");
                attr(&c, "data-action", "select-msg");
                Slot::new(c)
            });
            let c = &mut self.dots.shown[k].2;
            let m = f.m;
            c.attr("cx", &super::f(f.x));
            c.attr("cy", &super::f(f.y));
            c.attr("r", if m.info.kind.is_heartbeat() { "3" } else { "7" });
            c.attr("data-kind", describe::kind_name(m.info.kind));
            c.attr("data-class", kind_class(m.info.kind));
            c.attr("data-from", &m.info.from.to_string());
            c.attr("data-msg-id", &m.info.msg_id.to_string());
            let sel = selected == Selection::Message(m.info.from, m.info.msg_id);
            c.attr("data-selected", bool_str(sel));
        }
    }
}

/// A message in the air this frame, and where.
struct Flight<'m> {
    m: &'m MessageView,
    x: f64,
    y: f64,
}

fn make_node(doc: &Document, id: NodeId, (x, y): (f64, f64)) -> web_sys::Element {
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
    for (class, y, words) in [
        ("name", "-4", format!("N{id}")),
        ("sub", "13", String::new()),
        ("crown", "-38", "leader".to_string()),
    ] {
        let t = el::svg(doc, "text", class);
        attr(&t, "y", y);
        text(&t, &words);
        el::child(&node, &t);
    }
    node
}

fn make_link(
    doc: &Document,
    (a, b): (NodeId, NodeId),
    (x1, y1): (f64, f64),
    (x2, y2): (f64, f64),
) -> web_sys::Element {
    let link = el::svg(doc, "g", "link");
    attr(&link, "data-action", "link");
    attr(&link, "data-a", &a.to_string());
    attr(&link, "data-b", &b.to_string());
    attr(&link, "role", "button");
    attr(&link, "tabindex", "0");
    let tip = el::svg(doc, "title", "");
    text(&tip, "click: cut or heal · shift-click: hold or release");
    el::child(&link, &tip);
    for class in ["hit", "wire"] {
        let l = el::svg(doc, "line", class);
        attr(&l, "x1", &f(x1));
        attr(&l, "y1", &f(y1));
        attr(&l, "x2", &f(x2));
        attr(&l, "y2", &f(y2));
        el::child(&link, &l);
    }
    // The queue of each direction, a third of the way from its sender, beside the line.
    let (dx, dy) = (x2 - x1, y2 - y1);
    let len = (dx * dx + dy * dy).max(1.0);
    let norm = 12.0 / js_sys::Math::sqrt(len);
    for (from, to, t, side) in [(a, b, 0.3, 1.0), (b, a, 0.7, -1.0)] {
        let q = el::svg(doc, "text", "queue");
        attr(&q, "data-from", &from.to_string());
        attr(&q, "data-to", &to.to_string());
        attr(&q, "x", &f(x1 + dx * t - dy * norm * side));
        attr(&q, "y", &f(y1 + dy * t + dx * norm * side));
        el::child(&link, &q);
    }
    link
}

/// What a held direction's queue label says: how many wait, and the first one's kind.
fn queue_label(model: &ClusterModel, from: NodeId, to: NodeId) -> String {
    let Some(node) = model.nodes.get(&from) else {
        return String::new();
    };
    match node.peer(to) {
        Some(p) if p.held => match node.held_head(to).first() {
            Some(m) => format!("{} · {}", p.waiting, describe::kind_name(m.kind)),
            None => format!("{} held", p.waiting),
        },
        _ => String::new(),
    }
}

fn draw_node(
    e: &web_sys::Element,
    id: NodeId,
    model: &ClusterModel,
    leader: Option<NodeId>,
    selected: Selection,
) {
    let Some(n) = model.nodes.get(&id) else {
        return;
    };
    attr(e, "data-role", role_str(n.shown_role()));
    attr(e, "data-state", n.state().as_str());
    attr(e, "data-leader", bool_str(leader == Some(id)));
    attr(
        e,
        "data-selected",
        bool_str(selected == Selection::Node(id)),
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
    attr(e, "aria-label", &label);
}

fn end_of(e: &web_sys::Element, name: &str) -> NodeId {
    e.get_attribute(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn draw_link(l: &web_sys::Element, model: &ClusterModel) {
    let (a, b) = (end_of(l, "data-a"), end_of(l, "data-b"));
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
    attr(l, "data-connected", bool_str(enabled));
    attr(l, "data-transport", transport);
    let held = |x: NodeId, y: NodeId| {
        (model.nodes.get(&x))
            .and_then(|n| n.peer(y))
            .is_some_and(|p| p.held)
    };
    attr(l, "data-held", bool_str(held(a, b) || held(b, a)));
    let queues = l.query_selector_all("text.queue");
    for k in 0..queues.as_ref().map_or(0, |q| q.length()) {
        let Some(q) = queues.as_ref().ok().and_then(|q| q.item(k)) else {
            continue;
        };
        let Some(q) = q.dyn_ref::<web_sys::Element>() else {
            continue;
        };
        let (from, to) = (end_of(q, "data-from"), end_of(q, "data-to"));
        text(q, &queue_label(model, from, to));
    }
    let label = if enabled {
        format!("Cut link {a}–{b}")
    } else {
        format!("Heal link {a}–{b}")
    };
    attr(l, "aria-label", &label);
}
