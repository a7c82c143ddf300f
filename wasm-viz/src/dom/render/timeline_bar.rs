//! The timeline bar (mode, scrubber, position line) and the page's source: live cluster or
//! imported trace.

use wasm_bindgen::JsCast;
use web_sys::{Document, HtmlInputElement};

use super::{bool_str, set_flag, TimelineInfo};
use crate::{
    describe,
    dom::el::{self, attr, text},
    timeline::Mode,
};

/// What acts on the live cluster, disabled while an imported trace is shown: fieldsets, which
/// disable every control inside them, and controls outside any.
const LIVE_ONLY_CONTROLS: [&str; 4] = ["client-fields", "scenario-fields", "cards", "step-mode"];

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Live => "live",
        Mode::Paused => "paused",
        Mode::Replay { .. } => "replay",
    }
}

pub fn draw(doc: &Document, info: &TimelineInfo) {
    let mode = mode_name(info.mode);
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
        attr(&p, "aria-pressed", bool_str(info.mode == Mode::Paused));
    }
    if let Some(t) = el::by_id(doc, "timeline-info") {
        text(&t, &position_line(info, mode));
    }
}

fn position_line(info: &TimelineInfo, mode: &str) -> String {
    let source = if info.trace { "trace" } else { "recording" };
    let mut line = match info.mode {
        Mode::Live => format!("live · {} events recorded", info.end - info.start),
        _ => format!(
            "{mode} · {} / {}{}",
            info.cursor - info.start,
            info.end - info.start,
            info.cursor_ms
                .map(|ms| format!(" · {} UTC", describe::clock(ms)))
                .unwrap_or_default()
        ),
    };
    line.push_str(&format!(" · {source}"));
    if info.dropped > 0 {
        line.push_str(&format!(" · {} oldest dropped", info.dropped));
    }
    line
}

/// Says whether the page shows an imported trace or the live cluster (the header's words come
/// from `body[data-source]` in CSS), and disables what would act on the live cluster.
pub fn draw_source(doc: &Document, trace: bool) {
    if let Some(b) = doc.body() {
        attr(&b, "data-source", if trace { "trace" } else { "live" });
    }
    doc.set_title(if trace {
        "OmniKV — trace"
    } else {
        "OmniKV — live cluster"
    });
    for id in LIVE_ONLY_CONTROLS {
        if let Some(e) = el::by_id(doc, id) {
            set_flag(&e, "disabled", trace);
        }
    }
    // SVG has no disabled links: mark them, and `App` ignores their clicks.
    if let Some(g) = el::by_id(doc, "ring-links") {
        attr(&g, "aria-disabled", bool_str(trace));
    }
}
