//! The History panel: a drawer over the page with each key's operations as bars on one time
//! axis (Porcupine's picture), the faults in force as bands behind them, and the verdict of the
//! linearizability check, with the smallest illegal fragment highlighted.
//!
//! It reads the whole recording (or the imported trace), not the picture at the cursor: a
//! verdict is about a whole history. The check runs again only when the recording grew, and
//! only while the drawer is open.
//!
//! Like Porcupine's, the time axis is ordinal: every invocation, response and fault boundary is
//! one step, evenly spaced. Only their order matters to linearizability, and on loopback an
//! operation takes a millisecond between seconds of idling: to scale, it would be a hairline.

use web_sys::{Document, Element};

use super::{f, set_flag};
use crate::dom::now_ms;
use crate::{
    dom::el::{self, attr, text},
    history::{self, FaultBand, History, KeyHistory},
    timeline::Timeline,
};

/// Keys drawn at most: a failing one first, then the most recently used.
const KEYS_SHOWN: usize = 8;
/// Operations drawn at most when the history is linearizable (the latest).
const OPS_SHOWN: usize = 60;
/// Plot area in the SVG's units; key names left of `PLOT_X0`.
const WIDTH: f64 = 1200.0;
const PLOT_X0: f64 = 90.0;
const PLOT_W: f64 = 1100.0;
const BAR_H: f64 = 18.0;
const LANE_GAP: f64 = 6.0;
const TOP: f64 = 4.0;

/// While live, the history is derived again at most this often: the recording grows with
/// every event, its history rarely.
const LIVE_EVERY_MS: f64 = 250.0;

#[derive(Default)]
pub struct HistoryPanel {
    pub open: bool,
    /// The recording read: its first and last positions, and whether it was a trace.
    read: Option<(u64, u64, bool)>,
    read_ms: f64,
    /// What is drawn, so an unchanged history is not drawn again.
    drawn: Option<History>,
}

impl HistoryPanel {
    pub fn draw(&mut self, doc: &Document, timeline: &Timeline, trace: bool) {
        if let Some(drawer) = el::by_id(doc, "history") {
            set_flag(&drawer, "hidden", !self.open);
        }
        if let Some(button) = el::by_id(doc, "history-toggle") {
            attr(&button, "aria-pressed", super::bool_str(self.open));
        }
        let read = Some((timeline.start(), timeline.end(), trace));
        let now = now_ms();
        let due = self.read.is_none() || now - self.read_ms >= LIVE_EVERY_MS;
        if !self.open || self.read == read || !due {
            return;
        }
        (self.read, self.read_ms) = (read, now);
        let history = History::of(timeline.records());
        if self.drawn.as_ref() == Some(&history) {
            return;
        }
        draw_verdict(doc, &history);
        let focus = history.focus(OPS_SHOWN).unwrap_or((0, u64::MAX));
        let shown = match el::by_id(doc, "history-plot") {
            Some(svg) => draw_plot(doc, &svg, &history, focus),
            None => 0,
        };
        if let Some(p) = el::by_id(doc, "history-faults") {
            text(&p, &legend(&history, focus, shown));
        }
        self.drawn = Some(history);
    }

    /// Reads and draws again at the next frame (the drawer opened, or a trace was swapped).
    pub fn invalidate(&mut self) {
        self.read = None;
        self.drawn = None;
    }
}

/// What the plot leaves out, and the faults it shades.
fn legend(history: &History, focus: (u64, u64), shown: usize) -> String {
    let mut line = String::new();
    let all = history.operations();
    if shown < all {
        let around = match history.violation() {
            Some(_) => "the illegal fragment's span",
            None => "the latest",
        };
        line = format!("Shown: {shown} of {all} operations, {around}. ");
    }
    let names: Vec<&str> = (history.faults.iter())
        .filter(|b| band_overlaps(b, focus))
        .map(|b| b.what.as_str())
        .collect();
    if !names.is_empty() {
        line += &format!("Faults (shaded): {}", names.join(", "));
    }
    line
}

fn band_overlaps(b: &FaultBand, (from, to): (u64, u64)) -> bool {
    b.from_ms * 1000 <= to && b.to_ms.is_none_or(|ms| ms * 1000 >= from)
}

fn draw_verdict(doc: &Document, history: &History) {
    let Some(p) = el::by_id(doc, "history-verdict") else {
        return;
    };
    let (verdict, line) = match history.violation() {
        _ if history.keys.is_empty() => ("empty", "No client operations recorded yet.".into()),
        None => (
            "linearizable",
            format!(
                "linearizable: {} operations on {} keys",
                history.operations(),
                history.keys.len()
            ),
        ),
        Some(k) => {
            let fragment = k.fragment.as_deref().unwrap_or_default();
            let ops: Vec<String> = (fragment.iter())
                .map(|&i| history::label(&k.ops[i].op))
                .collect();
            let failing = history.keys.iter().filter(|k| k.fragment.is_some()).count();
            let more = match failing {
                1 => String::new(),
                n => format!(" (and {} more keys)", n - 1),
            };
            let line = format!(
                "not linearizable: key {}{more} — smallest illegal fragment (highlighted): {}",
                k.key,
                ops.join(", ")
            );
            ("not-linearizable", line)
        }
    };
    attr(&p, "data-verdict", verdict);
    text(&p, &line);
}

/// One key as drawn: the indices of its operations in the focus.
struct Lane<'a> {
    key: &'a KeyHistory,
    shown: Vec<usize>,
}

/// The keys drawn: those with operations in the focus, the key the verdict names first, then
/// the other failing ones, then the latest used, at most [`KEYS_SHOWN`].
fn lanes(history: &History, focus: (u64, u64)) -> Vec<Lane<'_>> {
    let named = history.violation().map(|k| k.key.as_str());
    // Placed by insertion: a sort would add its code to the wasm for a handful of keys.
    let rank = |k: &KeyHistory| {
        let latest = k.ops.last().map_or(0, |o| o.call_us);
        (
            Some(k.key.as_str()) != named,
            k.fragment.is_none(),
            u64::MAX - latest,
        )
    };
    let mut lanes: Vec<Lane> = Vec::new();
    for key in &history.keys {
        let shown: Vec<usize> = (0..key.ops.len())
            .filter(|&i| history::overlaps(&key.ops[i], focus))
            .collect();
        if shown.is_empty() {
            continue;
        }
        let at = lanes.partition_point(|l| rank(l.key) <= rank(key));
        lanes.insert(at, Lane { key, shown });
    }
    lanes.truncate(KEYS_SHOWN);
    lanes
}

/// Rows of one lane: each operation on the first row free at its invocation, so overlapping
/// operations stack instead of hiding each other.
fn rows_of(lane: &Lane, end_us: u64) -> (Vec<usize>, usize) {
    let mut row_ends: Vec<u64> = Vec::new();
    let rows = (lane.shown.iter())
        .map(|&i| {
            let o = &lane.key.ops[i];
            let end = o.ret_us.unwrap_or(end_us);
            match row_ends.iter().position(|&e| e < o.call_us) {
                Some(r) => {
                    row_ends[r] = end;
                    r
                }
                None => {
                    row_ends.push(end);
                    row_ends.len() - 1
                }
            }
        })
        .collect();
    (rows, row_ends.len().max(1))
}

/// The ordinal axis: the distinct instants of the operations and faults drawn, in order.
struct Axis {
    instants_us: Vec<u64>,
}

impl Axis {
    fn of(lanes: &[Lane], bands: &[&FaultBand]) -> Axis {
        let mut axis = Axis {
            instants_us: Vec::new(),
        };
        for lane in lanes {
            for o in lane.shown.iter().map(|&i| &lane.key.ops[i]) {
                axis.add(o.call_us);
                if let Some(us) = o.ret_us {
                    axis.add(us);
                }
            }
        }
        for b in bands {
            axis.add(b.from_ms * 1000);
            if let Some(ms) = b.to_ms {
                axis.add(ms * 1000);
            }
        }
        axis
    }

    /// Inserted in place: a sort would bring its code into the wasm.
    fn add(&mut self, us: u64) {
        let at = self.instants_us.partition_point(|&t| t < us);
        if self.instants_us.get(at) != Some(&us) {
            self.instants_us.insert(at, us);
        }
    }

    /// Where an instant is drawn; `u64::MAX` (never ended) one step past the last instant.
    fn x(&self, us: u64) -> f64 {
        let step = match us {
            u64::MAX => self.instants_us.len(),
            _ => self.instants_us.partition_point(|&t| t < us),
        };
        PLOT_X0 + step as f64 * PLOT_W / (self.instants_us.len() as f64).max(1.0)
    }
}

/// Draws the lanes and bands in `focus`; returns how many operations it drew.
fn draw_plot(doc: &Document, svg: &Element, history: &History, focus: (u64, u64)) -> usize {
    svg.set_inner_html("");
    let lanes = lanes(history, focus);
    let bands: Vec<&FaultBand> = (history.faults.iter())
        .filter(|b| band_overlaps(b, focus))
        .collect();
    let axis = Axis::of(&lanes, &bands);
    let group = el::svg(doc, "g", "faults");
    el::child(svg, &group);
    let mut y = TOP;
    for lane in &lanes {
        y += draw_lane(doc, svg, lane, &axis, y) + LANE_GAP;
    }
    let height = y.max(BAR_H + TOP);
    attr(svg, "viewBox", &format!("0 0 {} {}", f(WIDTH), f(height)));
    for band in bands {
        let x0 = axis.x(band.from_ms * 1000);
        let x1 = axis
            .x(band.to_ms.map_or(u64::MAX, |ms| ms * 1000))
            .max(x0 + 2.0);
        let rect = el::svg(doc, "rect", "fault");
        attr(&rect, "data-fault", &band.what);
        for (k, v) in [
            ("x", x0),
            ("y", 0.0),
            ("width", x1 - x0),
            ("height", height),
        ] {
            attr(&rect, k, &f(v));
        }
        let tip = el::svg(doc, "title", "");
        text(&tip, &band.what);
        el::child(&rect, &tip);
        el::child(&group, &rect);
    }
    lanes.iter().map(|l| l.shown.len()).sum()
}

/// Draws one key's lane at `y`; returns its height.
fn draw_lane(doc: &Document, svg: &Element, lane: &Lane, axis: &Axis, y: f64) -> f64 {
    let key = lane.key;
    let (rows, count) = rows_of(lane, u64::MAX);
    let name = el::svg(doc, "text", "key");
    attr(&name, "x", "2");
    attr(&name, "y", &f(y + BAR_H * 0.75));
    text(&name, &key.key);
    el::child(svg, &name);
    let illegal = key.fragment.as_deref().unwrap_or_default();
    for (&i, &row) in lane.shown.iter().zip(&rows) {
        let o = &key.ops[i];
        let x0 = axis.x(o.call_us);
        let x1 = axis.x(o.ret_us.unwrap_or(u64::MAX)).max(x0 + 3.0);
        let bar = el::svg(doc, "g", "op");
        attr(&bar, "data-key", &key.key);
        attr(&bar, "data-illegal", super::bool_str(illegal.contains(&i)));
        attr(&bar, "data-known", super::bool_str(o.ret_us.is_some()));
        let rect = el::svg(doc, "rect", "");
        let top = y + row as f64 * BAR_H;
        let (w, h) = (x1 - x0, BAR_H - 2.0);
        for (k, v) in [("x", x0), ("y", top + 1.0), ("width", w), ("height", h)] {
            attr(&rect, k, &f(v));
        }
        let label = el::svg(doc, "text", "");
        attr(&label, "x", &f(x0 + 2.0));
        attr(&label, "y", &f(top + BAR_H * 0.72));
        let what = history::label(&o.op);
        text(&label, &what);
        let tip = el::svg(doc, "title", "");
        let answered = match o.ret_us {
            Some(_) => "",
            None => ", outcome unknown",
        };
        text(&tip, &format!("client {}: {what}{answered}", o.client));
        for part in [&rect, &label, &tip] {
            el::child(&bar, part);
        }
        el::child(svg, &bar);
    }
    count as f64 * BAR_H
}
