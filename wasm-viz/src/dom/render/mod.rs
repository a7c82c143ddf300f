//! Drawing the model, one module per panel: the ring (`ring`), one card per node (`cards`),
//! the space-time diagram (`diagram`), "What happened" and the scrub bar's landmarks
//! (`story`), the client log (`client_log`), the held messages (`held`), the inspector
//! (`inspector`), the History drawer (`history`), the header's health line (`health`) and the
//! timeline bar (`timeline_bar`).
//!
//! Elements are created once and then only their changed attributes and texts are written.
//! Everything carries data attributes (`data-node-id`, `data-role`, `data-state`,
//! `data-index`, `data-status`, `data-key`) so tests can check meaning rather than pixels.

mod cards;
mod client_log;
mod diagram;
mod health;
mod held;
mod history;
mod inspector;
mod ring;
mod story;
mod timeline_bar;

use omnikv_core::NodeId;
use web_sys::{Document, Element};

use super::{
    el::{self, attr, text},
    now_ms,
};
use crate::{model::ClusterModel, timeline::Mode, timeline::Timeline};

/// While live, the text panels (tables, client log, inspector, notices, story, timeline line)
/// are refreshed at most this often. Text changing sixty times a second cannot be read, and
/// re-laying it out costs the frame.
const PANELS_EVERY_MS: f64 = 100.0;
/// The same while a log strip is busy (more entries than it can show one by one): the tables
/// and strips then change wholesale at each refresh, and their layout and paint cost the page
/// more than anything else it draws (README, "Visualizer performance").
const PANELS_BUSY_EVERY_MS: f64 = 250.0;
/// While live, the picture changes at most this often: 30 times a second. Every frame that
/// changes the page pays the browser's whole style, layout, paint and commit pass, whatever
/// moved, so the moving parts (the ring's messages, the diagram's scroll) and the refreshes
/// move together on every second animation frame instead of each on its own frames
/// (README, "Visualizer performance", has the figures).
const PICTURE_EVERY_MS: f64 = 33.0;
/// Animation frames arrive about 16.7 ms apart, give or take a few: a picture due within this
/// much is drawn now, so that jitter does not turn every second frame into every third.
const FRAME_SLACK_MS: f64 = 8.0;

/// Where the timeline is, for the bar and the diagram's cursor.
pub struct TimelineInfo {
    pub mode: Mode,
    pub start: u64,
    pub end: u64,
    pub cursor: u64,
    pub dropped: u64,
    pub cursor_ms: Option<u64>,
    pub trace: bool,
}

impl TimelineInfo {
    pub fn of(tl: &Timeline, trace: bool) -> TimelineInfo {
        TimelineInfo {
            mode: tl.mode(),
            start: tl.start(),
            end: tl.end(),
            cursor: tl.cursor(),
            dropped: tl.dropped(),
            cursor_ms: tl.time_at(tl.cursor()),
            trace,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Default)]
pub(super) enum Selection {
    #[default]
    None,
    Node(NodeId),
    Message(NodeId, u64),
}

pub struct View {
    drawn_version: u64,
    /// Model version and wall time of the last refresh of the text panels.
    panels_version: u64,
    panels_ms: f64,
    /// Whether a log strip was busy at the last draw (see [`PANELS_BUSY_EVERY_MS`]).
    busy: bool,
    /// Wall time the live picture last changed (see [`PICTURE_EVERY_MS`]).
    picture_ms: f64,
    dirty: bool,
    ids: Vec<NodeId>,
    cards: Vec<cards::Card>,
    selected: Selection,
    connection: Option<String>,
    ring: ring::Ring,
    client_log: client_log::ClientLog,
    story: story::StoryPanel,
    diagram: diagram::Diagram,
    history: history::HistoryPanel,
    /// Whether the page last showed a trace (`None` before the first frame).
    trace_shown: Option<bool>,
    /// The held direction the keyboard's deliver key acts on.
    pub held_selected: Option<(NodeId, NodeId)>,
}

impl View {
    pub fn new() -> View {
        View {
            drawn_version: u64::MAX,
            panels_version: u64::MAX,
            panels_ms: 0.0,
            busy: false,
            picture_ms: 0.0,
            dirty: true,
            ids: Vec::new(),
            cards: Vec::new(),
            selected: Selection::None,
            connection: Some(String::from("connecting to the launcher…")),
            ring: ring::Ring::default(),
            client_log: client_log::ClientLog::default(),
            story: story::StoryPanel::default(),
            diagram: diagram::Diagram::default(),
            history: history::HistoryPanel::default(),
            trace_shown: None,
            held_selected: None,
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

    /// Closes the inspector and the History drawer (Esc).
    pub fn close_drawers(&mut self) {
        self.select_node(None);
        self.history.open = false;
    }

    /// Opens or closes the History drawer.
    pub fn toggle_history(&mut self) {
        self.history.open = !self.history.open;
        self.history.invalidate();
    }

    /// The History drawer reads the whole recording on screen (`trace`: an imported one).
    pub fn draw_history(&mut self, doc: &Document, timeline: &Timeline, trace: bool) {
        self.history.draw(doc, timeline, trace);
    }

    pub fn show_heartbeats(&mut self, shown: bool) {
        self.diagram.heartbeats = shown;
    }

    pub fn set_connection(&mut self, c: Option<String>) {
        if self.connection != c {
            self.connection = c;
            self.dirty = true;
        }
    }

    /// Draws `model` (the picture at the cursor); `live` is the whole recording's model, whose
    /// story gives the landmarks.
    pub fn draw(
        &mut self,
        doc: &Document,
        model: &ClusterModel,
        live: &ClusterModel,
        clock_ms: f64,
        info: &TimelineInfo,
    ) {
        let is_live = info.mode == Mode::Live;
        let now = now_ms();
        if is_live && !self.dirty && now - self.picture_ms < PICTURE_EVERY_MS - FRAME_SLACK_MS {
            return;
        }
        self.picture_ms = now;
        let panels = self.panels_due(model.version, is_live);
        if panels || !is_live {
            timeline_bar::draw(doc, info);
            self.story.draw(doc, &live.story, info);
        }
        if self.trace_shown != Some(info.trace) {
            self.trace_shown = Some(info.trace);
            timeline_bar::draw_source(doc, info.trace);
        }
        if self.dirty || panels || model.version != self.drawn_version {
            self.dirty = false;
            self.drawn_version = model.version;
            self.draw_model(doc, model, live, clock_ms, panels);
        }
        self.ring
            .draw_messages(doc, &self.ids, model, clock_ms, self.selected);
        self.diagram
            .draw(doc, model, live, clock_ms, info, self.selected);
    }

    /// Whether the text panels are redrawn this frame (and if so, notes it).
    fn panels_due(&mut self, version: u64, live: bool) -> bool {
        let now = now_ms();
        let every_ms = if self.busy {
            PANELS_BUSY_EVERY_MS
        } else {
            PANELS_EVERY_MS
        };
        let due = self.dirty
            || (version != self.panels_version && (!live || now - self.panels_ms >= every_ms));
        if due {
            self.panels_version = version;
            self.panels_ms = now;
        }
        due
    }

    fn draw_model(
        &mut self,
        doc: &Document,
        model: &ClusterModel,
        live: &ClusterModel,
        clock_ms: f64,
        panels: bool,
    ) {
        let ids: Vec<NodeId> = model.nodes.keys().copied().collect();
        if ids != self.ids {
            self.ids = ids;
            self.build_structure(doc);
        }
        self.ring.draw(doc, &self.ids, model, self.selected);
        let leader = model.shown_leader();
        let mut busy = false;
        for card in &mut self.cards {
            if let Some(n) = model.nodes.get(&card.id) {
                busy |= card.draw(doc, n, model, leader == Some(n.id), panels);
            }
        }
        self.busy = busy;
        if panels {
            held::draw(doc, model, self.held_selected);
            self.client_log.draw(doc, model);
            inspector::draw(doc, [model, live], clock_ms, self.selected);
            draw_notices(doc, model);
            health::draw(doc, model);
        }
        if let Some(c) = el::by_id(doc, "connection") {
            text(&c, self.connection.as_deref().unwrap_or(""));
            let state = if self.connection.is_some() {
                "problem"
            } else {
                "ok"
            };
            attr(&c, "data-state", state);
        }
    }

    fn build_structure(&mut self, doc: &Document) {
        self.ring.build(doc, &self.ids);
        self.diagram.build(doc, &self.ids);
        if let Some(sel) = el::by_id(doc, "target-node") {
            el::ensure_children(&sel, 1 + self.ids.len(), || el::html(doc, "option", ""));
            for (i, id) in self.ids.iter().enumerate() {
                if let Some(o) = el::nth(&sel, i + 1) {
                    attr(&o, "value", &id.to_string());
                    text(&o, &format!("node {id}"));
                }
            }
        }
        self.cards = cards::build(doc, &self.ids);
    }
}

/// Notices shown.
const NOTICES_SHOWN: usize = 4;

fn draw_notices(doc: &Document, model: &ClusterModel) {
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

/// SVG coordinates in whole units: precise enough, and integer formatting keeps the float
/// printing machinery out of the wasm.
fn f(v: f64) -> String {
    (v.round() as i64).to_string()
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

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// The colour class of a message kind (`data-class`), shared by the ring and the diagram.
fn kind_class(k: omnikv_core::event::MessageKind) -> &'static str {
    use omnikv_core::event::MessageKind;
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
