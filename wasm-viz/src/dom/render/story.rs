//! "What happened" (the story's happenings, newest first, each a button that jumps there) and
//! the same happenings as landmarks on the scrub bar.

use web_sys::Document;

use super::TimelineInfo;
use crate::{
    describe,
    dom::el::{self, Slot},
    story::{Happening, Story},
};

/// Happenings listed; the scrub bar marks every one the recording still holds.
const LISTED_MAX: usize = 60;

/// One list entry: the item, its button, the time and the words.
struct Row {
    li: Slot,
    button: Slot,
    time: Slot,
    words: Slot,
}

#[derive(Default)]
pub struct StoryPanel {
    rows: Vec<Row>,
    marks: Vec<Slot>,
}

impl StoryPanel {
    pub fn draw(&mut self, doc: &Document, story: &Story, info: &TimelineInfo) {
        // Happenings folded into the recording's dropped part can no longer be jumped to.
        let shown: Vec<&Happening> = story
            .happenings
            .iter()
            .filter(|h| h.pos >= info.start)
            .collect();
        self.draw_list(doc, &shown, info);
        self.draw_marks(doc, &shown, info);
    }

    fn draw_list(&mut self, doc: &Document, shown: &[&Happening], info: &TimelineInfo) {
        let Some(ol) = el::by_id(doc, "story") else {
            return;
        };
        let listed: Vec<&&Happening> = shown.iter().rev().take(LISTED_MAX).collect();
        el::ensure_slots(
            &ol,
            &mut self.rows,
            listed.len(),
            |r| &r.li.el,
            || make_row(doc),
        );
        // The newest happening at or before the cursor is the one the picture shows.
        let current = shown
            .iter()
            .rev()
            .find(|h| h.pos <= info.cursor)
            .map(|h| h.pos);
        for (row, h) in self.rows.iter_mut().zip(listed) {
            let when = if Some(h.pos) == current {
                "current"
            } else if h.pos > info.cursor {
                "future"
            } else {
                "past"
            };
            row.li.attr("data-kind", h.kind.as_str());
            row.li.attr("data-when", when);
            row.button.attr("data-pos", &h.pos.to_string());
            row.time.text(&describe::clock(h.at_ms));
            row.words.text(&h.text);
        }
    }

    fn draw_marks(&mut self, doc: &Document, shown: &[&Happening], info: &TimelineInfo) {
        let Some(bar) = el::by_id(doc, "scrub-marks") else {
            return;
        };
        el::ensure_slots(
            &bar,
            &mut self.marks,
            shown.len(),
            |s| &s.el,
            || {
                let b = el::html(doc, "button", "mark");
                el::attr(&b, "type", "button");
                el::attr(&b, "data-action", "seek");
                Slot::new(b)
            },
        );
        let span = info.end.saturating_sub(info.start).max(1);
        for (mark, h) in self.marks.iter_mut().zip(shown) {
            // Tenths of a percent: finer than a pixel of the bar, and few rewrites as it grows.
            let permille = (h.pos - info.start).min(span) * 1000 / span;
            mark.attr(
                "style",
                &format!("left:{}.{}%", permille / 10, permille % 10),
            );
            mark.attr("data-pos", &h.pos.to_string());
            mark.attr("data-kind", h.kind.as_str());
            let label = format!("Jump to {}: {}", describe::clock(h.at_ms), h.text);
            mark.attr("aria-label", &label);
            mark.attr("title", &label);
        }
    }
}

fn make_row(doc: &Document) -> Row {
    let li = el::html(doc, "li", "");
    let button = el::html(doc, "button", "");
    el::attr(&button, "type", "button");
    el::attr(&button, "data-action", "seek");
    let time = el::html(doc, "time", "");
    let words = el::html(doc, "span", "");
    el::child(&button, &time);
    el::child(&button, &words);
    el::child(&li, &button);
    Row {
        li: Slot::new(li),
        button: Slot::new(button),
        time: Slot::new(time),
        words: Slot::new(words),
    }
}
