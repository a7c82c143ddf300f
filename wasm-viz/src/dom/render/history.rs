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
use crate::{
    dom::el::{self, attr, text},
    history::{self, History, KeyHistory},
    timeline::Timeline,
};

/// Keys drawn at most: a failing one first, then the most recently used.
const KEYS_SHOWN: usize = 8;
/// Plot area in the SVG's units; key names left of `PLOT_X0`.
const WIDTH: f64 = 1200.0;
const PLOT_X0: f64 = 90.0;
const PLOT_W: f64 = 1100.0;
const BAR_H: f64 = 18.0;
const LANE_GAP: f64 = 6.0;
const TOP: f64 = 4.0;

#[derive(Default)]
pub struct HistoryPanel {
    pub open: bool,
    /// The recording drawn: its first and last positions, and whether it was a trace.
    drawn: Option<(u64, u64, bool)>,
}

impl HistoryPanel {
    pub fn draw(&mut self, doc: &Document, timeline: &Timeline, trace: bool) {
        if let Some(drawer) = el::by_id(doc, "history") {
            set_flag(&drawer, "hidden", !self.open);
        }
        if let Some(button) = el::by_id(doc, "history-toggle") {
            attr(&button, "aria-pressed", super::bool_str(self.open));
        }
        let shown = Some((timeline.start(), timeline.end(), trace));
        if !self.open || self.drawn == shown {
            return;
        }
        self.drawn = shown;
        let history = History::of(timeline.records());
        draw_verdict(doc, &history);
        if let Some(p) = el::by_id(doc, "history-faults") {
            let names: Vec<&str> = history.faults.iter().map(|b| b.what.as_str()).collect();
            let line = match names.is_empty() {
                true => String::new(),
                false => format!("Faults (shaded): {}", names.join(", ")),
            };
            text(&p, &line);
        }
        if let Some(svg) = el::by_id(doc, "history-plot") {
            draw_plot(doc, &svg, &history);
        }
    }

    /// Draws again at the next frame (the drawer opened, or a trace was swapped).
    pub fn invalidate(&mut self) {
        self.drawn = None;
    }
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
            let line = format!(
                "not linearizable: key {} — smallest illegal fragment (highlighted): {}",
                k.key,
                ops.join(", ")
            );
            ("not-linearizable", line)
        }
    };
    attr(&p, "data-verdict", verdict);
    text(&p, &line);
}

/// The keys drawn: the failing ones first, then the latest used, at most [`KEYS_SHOWN`].
fn shown_keys(history: &History) -> Vec<&KeyHistory> {
    // Placed by insertion: a sort would add its code to the wasm for a handful of keys.
    let rank = |k: &KeyHistory| {
        let latest = k.ops.last().map_or(0, |o| o.call_us);
        (k.fragment.is_none(), u64::MAX - latest)
    };
    let mut keys: Vec<&KeyHistory> = Vec::new();
    for k in &history.keys {
        let at = keys.partition_point(|o| rank(o) <= rank(k));
        keys.insert(at, k);
    }
    keys.truncate(KEYS_SHOWN);
    keys
}

/// Rows of one key: each operation on the first row free at its invocation, so overlapping
/// operations stack instead of hiding each other.
fn rows_of(key: &KeyHistory, end_us: u64) -> (Vec<usize>, usize) {
    let mut row_ends: Vec<u64> = Vec::new();
    let rows = (key.ops.iter())
        .map(|o| {
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
    fn of(keys: &[&KeyHistory], history: &History) -> Axis {
        let mut axis = Axis {
            instants_us: Vec::new(),
        };
        for o in keys.iter().flat_map(|k| k.ops.iter()) {
            axis.add(o.call_us);
            if let Some(us) = o.ret_us {
                axis.add(us);
            }
        }
        for b in &history.faults {
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

    /// One step past the last instant: where what never ended ends.
    fn end(&self) -> f64 {
        self.x_of_step(self.instants_us.len() as f64)
    }

    fn x(&self, us: u64) -> f64 {
        self.x_of_step(self.instants_us.partition_point(|&t| t < us) as f64)
    }

    fn x_of_step(&self, step: f64) -> f64 {
        PLOT_X0 + step * PLOT_W / (self.instants_us.len() as f64).max(1.0)
    }
}

fn draw_plot(doc: &Document, svg: &Element, history: &History) {
    svg.set_inner_html("");
    let keys = shown_keys(history);
    let axis = Axis::of(&keys, history);
    let end_us = u64::MAX;
    let x = |us: u64| if us == end_us { axis.end() } else { axis.x(us) };
    let bands = el::svg(doc, "g", "faults");
    el::child(svg, &bands);
    let mut y = TOP;
    for key in keys {
        let (rows, count) = rows_of(key, end_us);
        let lane_h = count as f64 * BAR_H;
        let name = el::svg(doc, "text", "key");
        attr(&name, "x", "2");
        attr(&name, "y", &f(y + BAR_H * 0.75));
        text(&name, &key.key);
        el::child(svg, &name);
        let illegal = key.fragment.as_deref().unwrap_or_default();
        for (i, o) in key.ops.iter().enumerate() {
            let x0 = x(o.call_us);
            let x1 = x(o.ret_us.unwrap_or(end_us)).max(x0 + 3.0);
            let bar = el::svg(doc, "g", "op");
            attr(&bar, "data-key", &key.key);
            attr(&bar, "data-illegal", super::bool_str(illegal.contains(&i)));
            attr(&bar, "data-known", super::bool_str(o.ret_us.is_some()));
            let rect = el::svg(doc, "rect", "");
            let top = y + rows[i] as f64 * BAR_H;
            for (k, v) in [
                ("x", x0),
                ("y", top + 1.0),
                ("width", x1 - x0),
                ("height", BAR_H - 2.0),
            ] {
                attr(&rect, k, &f(v));
            }
            let label = el::svg(doc, "text", "");
            attr(&label, "x", &f(x0 + 2.0));
            attr(&label, "y", &f(top + BAR_H * 0.72));
            let what = history::label(&o.op);
            text(&label, &what);
            let tip = el::svg(doc, "title", "");
            let answered = if o.ret_us.is_some() {
                ""
            } else {
                ", outcome unknown"
            };
            text(&tip, &format!("client {}: {what}{answered}", o.client));
            for part in [&rect, &label, &tip] {
                el::child(&bar, part);
            }
            el::child(svg, &bar);
        }
        y += lane_h + LANE_GAP;
    }
    let height = y.max(BAR_H + TOP);
    attr(svg, "viewBox", &format!("0 0 {} {}", f(WIDTH), f(height)));
    for band in &history.faults {
        let x0 = x(band.from_ms * 1000);
        let x1 = x(band.to_ms.map_or(end_us, |ms| ms * 1000)).max(x0 + 2.0);
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
        el::child(&bands, &rect);
    }
}
