//! The space-time diagram: one lane per node, time flowing left to right over the last few
//! seconds, one arrow per drawn message from its send to its receive, coloured by kind, and
//! ticks on the lanes for what happened (elections, kills, pauses, link cuts, snapshots).
//!
//! Arrows and ticks are placed in absolute time (milliseconds since the diagram's origin) inside
//! one group whose transform maps the window onto the plot. So while live, scrolling rewrites one
//! attribute per frame, and an arrow's own attributes are written when it appears or is
//! received, not every frame. The scale is uniform (lanes are placed at their screen height
//! divided by it), so arrowheads keep their shape. On loopback a message takes about a
//! millisecond, so most arrows stand almost upright: the head says which way it went.
//!
//! An arrow is one path whose head is two strokes of its own, and strokes are sized in the
//! plot's units (`--px`, one screen pixel, set here for the CSS). An SVG marker, or a stroke
//! kept at its width by `vector-effect`, is laid out again for every arrow each time the window
//! scrolls: each cost the page about 4 points of a core at 40 puts a second
//! (docs/performance-notes.md, section 31).

use omnikv_core::NodeId;
use web_sys::Document;

use super::{bool_str, f, kind_class, Selection, TimelineInfo};
use crate::{
    describe,
    dom::el::{self, attr, text, KeyedSlots, Slot},
    model::{ClusterModel, MessageView},
    story::Happening,
    timeline::Mode,
};

/// The time the diagram spans.
const WINDOW_MS: f64 = 4_000.0;
/// Arrows drawn at most (the newest).
const ARROWS_MAX: usize = 150;
/// A message not (yet) seen received is drawn this long, dashed.
const UNSEEN_SPAN_MS: u64 = 300;
/// ... growing by this much at a time.
const UNSEEN_STEP_MS: u64 = 50;
/// Plot area, in the SVG's units: lanes' labels left of `PLOT_X0`.
const PLOT_X0: f64 = 34.0;
const PLOT_W: f64 = 560.0;
const LANE_H: f64 = 22.0;
const TOP: f64 = 8.0;
/// Screen units per millisecond inside the plot.
const SCALE: f64 = PLOT_W / WINDOW_MS;
/// Arrowheads' size on screen.
const HEAD: f64 = 6.0;

/// What an arrow was last drawn with, so an unchanged one is not touched.
#[derive(PartialEq)]
struct Drawn {
    received_ms: Option<u64>,
    end_ms: u64,
    selected: bool,
}

#[derive(Default)]
pub struct Diagram {
    /// Heartbeats drawn too (the toggle; off by default: they would hide everything else).
    pub heartbeats: bool,
    ids: Vec<NodeId>,
    /// Absolute times are drawn relative to this (the first frame's window start).
    origin_ms: Option<f64>,
    /// The arrows on screen, by `(from, msg_id)`: a short vector (a map type would cost the
    /// wasm kilobytes of tree code).
    arrows: KeyedSlots<(NodeId, u64), Drawn>,
    ticks: Vec<Slot>,
}

fn lane_y(i: usize) -> f64 {
    TOP + LANE_H * i as f64 + LANE_H / 2.0
}

/// A positive number with six decimals, from integers (no float formatting in the wasm).
fn fixed6(v: f64) -> String {
    let micro = (v * 1e6).round() as u64;
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

impl Diagram {
    /// Lays out one lane per node.
    pub fn build(&mut self, doc: &Document, ids: &[NodeId]) {
        self.ids = ids.to_vec();
        let height = TOP * 2.0 + LANE_H * ids.len() as f64;
        if let Some(svg) = el::by_id(doc, "diagram") {
            attr(&svg, "viewBox", &format!("0 0 600 {}", f(height)));
        }
        if let Some(plot) = el::by_id(doc, "diagram-plot") {
            attr(&plot, "style", &format!("--px: {}", fixed6(1.0 / SCALE)));
        }
        if let Some(clip) = el::by_id(doc, "diagram-clip-rect") {
            attr(&clip, "x", &f(PLOT_X0));
            attr(&clip, "width", &f(PLOT_W));
            attr(&clip, "height", &f(height));
        }
        let Some(g) = el::by_id(doc, "diagram-lanes") else {
            return;
        };
        el::ensure_children(&g, 0, || el::svg(doc, "g", ""));
        for (i, id) in ids.iter().enumerate() {
            let lane = el::svg(doc, "g", "lane");
            attr(&lane, "data-node-id", &id.to_string());
            let line = el::svg(doc, "line", "");
            let y = f(lane_y(i));
            for (k, v) in [
                ("x1", f(PLOT_X0)),
                ("x2", f(PLOT_X0 + PLOT_W)),
                ("y1", y.clone()),
                ("y2", y.clone()),
            ] {
                attr(&line, k, &v);
            }
            let label = el::svg(doc, "text", "");
            attr(&label, "x", "4");
            attr(&label, "y", &f(lane_y(i) + 4.0));
            text(&label, &format!("N{id}"));
            el::child(&lane, &line);
            el::child(&lane, &label);
            el::child(&g, &lane);
        }
    }

    /// Draws the window ending at the view's clock (live), or around the cursor.
    pub fn draw(
        &mut self,
        doc: &Document,
        model: &ClusterModel,
        live: &ClusterModel,
        clock_ms: f64,
        info: &TimelineInfo,
        selected: Selection,
    ) {
        // Looking back, the cursor sits at three quarters, and what followed it (still in the
        // live model) is drawn after it.
        let end_ms = match info.mode {
            Mode::Live => clock_ms,
            _ => clock_ms + WINDOW_MS / 4.0,
        };
        let start_ms = end_ms - WINDOW_MS;
        let covers = |m: &ClusterModel| {
            m.messages
                .front()
                .is_some_and(|x| (x.sent_ms as f64) <= start_ms)
        };
        let source = if info.mode == Mode::Live || covers(live) || !covers(model) {
            live
        } else {
            model
        };
        let origin = *self.origin_ms.get_or_insert(start_ms);
        if let Some(g) = el::by_id(doc, "diagram-plot") {
            let transform = format!(
                "translate({}) scale({}) translate({})",
                f(PLOT_X0),
                fixed6(SCALE),
                f(origin - start_ms)
            );
            attr(&g, "transform", &transform);
        }
        if let Some(c) = el::by_id(doc, "diagram-cursor") {
            let x = f(PLOT_X0 + (clock_ms - start_ms) / WINDOW_MS * PLOT_W);
            attr(&c, "x1", &x);
            attr(&c, "x2", &x);
            attr(&c, "data-time-ms", &f(clock_ms));
        }
        self.draw_lanes(doc, model);
        let steady = info.mode == Mode::Live;
        self.draw_arrows(doc, source, (start_ms, clock_ms), origin, selected, steady);
        self.draw_ticks(doc, source, start_ms, end_ms, origin);
    }

    fn draw_lanes(&self, doc: &Document, model: &ClusterModel) {
        let Some(g) = el::by_id(doc, "diagram-lanes") else {
            return;
        };
        for (i, id) in self.ids.iter().enumerate() {
            if let (Some(lane), Some(n)) = (el::nth(&g, i), model.nodes.get(id)) {
                attr(&lane, "data-state", n.state().as_str());
            }
        }
    }

    /// The messages whose arrows reach into the window, at most [`ARROWS_MAX`]: the newest; or,
    /// while live (`steady`), a sample: a few dozen writes a second already put more than
    /// [`ARROWS_MAX`] messages in the window. Under load the newest 150 change with every message,
    /// so each arrow would be handed to another message hundreds of times a second; a message
    /// sampled by its id stays in the sample for its whole way across the window, as the ring
    /// keeps its dots.
    fn wanted<'m>(
        &self,
        source: &'m ClusterModel,
        start_ms: f64,
        steady: bool,
    ) -> Vec<&'m MessageView> {
        let in_window = source
            .messages
            .iter()
            .rev()
            .filter(|m| self.heartbeats || !m.info.kind.is_heartbeat())
            .filter(|m| {
                let end = m.received_ms.unwrap_or(m.sent_ms + UNSEEN_SPAN_MS);
                end as f64 >= start_ms
            });
        if !steady {
            return in_window.take(ARROWS_MAX).collect();
        }
        let candidates: Vec<&MessageView> = in_window.collect();
        // A power of two, so that the sample changes rarely as the load varies; the ids are
        // mixed first, because a leader's consecutive messages go to its followers in turn.
        let every = candidates.len().div_ceil(ARROWS_MAX).next_power_of_two() as u64;
        let sampled = |m: &&MessageView| {
            (m.info.msg_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32).is_multiple_of(every)
        };
        candidates
            .into_iter()
            .filter(sampled)
            .take(ARROWS_MAX)
            .collect()
    }

    /// `(start_ms, clock_ms)`: the window's start and the view's clock.
    fn draw_arrows(
        &mut self,
        doc: &Document,
        source: &ClusterModel,
        (start_ms, clock_ms): (f64, f64),
        origin: f64,
        selected: Selection,
        steady: bool,
    ) {
        let Some(g) = el::by_id(doc, "diagram-arrows") else {
            return;
        };
        let wanted = self.wanted(source, start_ms, steady);
        let keep: Vec<(NodeId, u64)> = wanted
            .iter()
            .map(|m| (m.info.from, m.info.msg_id))
            .collect();
        self.arrows.retain(|k| keep.contains(k));
        let lane = |id: NodeId| self.ids.iter().position(|x| *x == id);
        for m in wanted {
            let (Some(a), Some(b)) = (lane(m.info.from), lane(m.info.to)) else {
                continue;
            };
            // Grows in steps, not every frame: under load most arrows are of messages whose
            // receipt the node did not send.
            let flown_ms = (clock_ms.max(0.0) as u64).saturating_sub(m.sent_ms);
            let unseen_end = m.sent_ms
                + flown_ms
                    .next_multiple_of(UNSEEN_STEP_MS)
                    .min(UNSEEN_SPAN_MS);
            let drawn = Drawn {
                received_ms: m.received_ms,
                end_ms: m.received_ms.unwrap_or(unseen_end.max(m.sent_ms)),
                selected: selected == Selection::Message(m.info.from, m.info.msg_id),
            };
            let key = (m.info.from, m.info.msg_id);
            let never = Drawn {
                received_ms: None,
                end_ms: u64::MAX,
                selected: false,
            };
            let k = self.arrows.show(&g, key, never, || new_arrow(doc));
            let (_, last, slot) = &mut self.arrows.shown[k];
            if *last == drawn {
                continue;
            }
            if last.end_ms == u64::MAX {
                show_message(slot, m);
            }
            let from = (m.sent_ms as f64 - origin, lane_y(a) / SCALE);
            let to = (drawn.end_ms as f64 - origin, lane_y(b) / SCALE);
            slot.attr("d", &arrow_path(from, to));
            slot.attr("data-received", bool_str(drawn.received_ms.is_some()));
            slot.attr("data-selected", bool_str(drawn.selected));
            *last = drawn;
        }
    }

    /// A tick on each concerned lane for every happening in the window; a scenario (no node)
    /// crosses every lane.
    fn draw_ticks(
        &mut self,
        doc: &Document,
        source: &ClusterModel,
        start_ms: f64,
        end_ms: f64,
        origin: f64,
    ) {
        let Some(g) = el::by_id(doc, "diagram-marks") else {
            return;
        };
        let inside = |h: &&Happening| (start_ms..=end_ms).contains(&(h.at_ms as f64));
        let lanes = self.ids.len();
        let mut ticks: Vec<(&Happening, f64, f64)> = Vec::new();
        for h in source.story.happenings.iter().filter(inside) {
            if h.nodes.is_empty() {
                ticks.push((h, TOP, TOP + LANE_H * lanes as f64));
            }
            for n in &h.nodes {
                if let Some(i) = self.ids.iter().position(|x| x == n) {
                    ticks.push((h, lane_y(i) - 8.0, lane_y(i) + 8.0));
                }
            }
        }
        el::ensure_slots(
            &g,
            &mut self.ticks,
            ticks.len(),
            |s| &s.el,
            || Slot::new(el::svg(doc, "line", "tick")),
        );
        for (slot, (h, y1, y2)) in self.ticks.iter_mut().zip(&ticks) {
            let x = f(h.at_ms as f64 - origin);
            slot.attr("x1", &x);
            slot.attr("x2", &x);
            slot.attr("y1", &f(*y1 / SCALE));
            slot.attr("y2", &f(*y2 / SCALE));
            slot.attr("data-kind", h.kind.as_str());
            slot.attr(
                "aria-label",
                &format!("{}: {}", describe::clock(h.at_ms), h.text),
            );
        }
    }
}

/// A path from `from` to `to` (plot units) with a head at `to`: two strokes [`HEAD`] long on
/// screen, 30 degrees either side of the shaft.
fn arrow_path(from: (f64, f64), to: (f64, f64)) -> String {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let len = js_sys::Math::sqrt(dx * dx + dy * dy).max(1e-9);
    let head = HEAD / SCALE;
    // Back along the shaft by cos 30°, out to each side by sin 30°.
    let (bx, by) = (-dx / len * head * 0.866, -dy / len * head * 0.866);
    let (px, py) = (-dy / len * head * 0.5, dx / len * head * 0.5);
    format!(
        "M{} {}L{} {}M{} {}L{} {}L{} {}",
        f(from.0),
        f(from.1),
        f(to.0),
        f(to.1),
        f(to.0 + bx + px),
        f(to.1 + by + py),
        f(to.0),
        f(to.1),
        f(to.0 + bx - px),
        f(to.1 + by - py),
    )
}

fn new_arrow(doc: &Document) -> Slot {
    let path = el::svg(doc, "path", "arrow");
    attr(&path, "data-action", "select-msg");
    Slot::new(path)
}

/// Makes an arrow (new, or taken off for an older message) name message `m`.
fn show_message(slot: &mut Slot, m: &MessageView) {
    slot.attr("data-from", &m.info.from.to_string());
    slot.attr("data-to", &m.info.to.to_string());
    slot.attr("data-msg-id", &m.info.msg_id.to_string());
    slot.attr("data-kind", describe::kind_name(m.info.kind));
    slot.attr("data-class", kind_class(m.info.kind));
}
