//! One card per node: role and state, its actions (kill, pause, resume, restart), its health
//! (lag behind the leader, table digest), its log strip with the snapshot block, and its table.

use omnikv_core::NodeId;
use web_sys::{Document, Element};

use super::{bool_str, set_flag};
use crate::{
    describe,
    dom::el::{self, attr, text, Slot},
    health,
    model::{role_str, ClusterModel, NodeModel, NodeState, LOG_WINDOW_ENTRIES},
};

/// KV rows shown per node.
const KV_ROWS_SHOWN: usize = 30;
/// New entries a strip takes in one animation frame. A strip that grew by more since it was
/// last drawn is a busy log nobody can follow entry by entry; it is redrawn with the text
/// panels instead (10 times a second), which saves the page most of its layout under load.
const STRIP_STEP_ENTRIES_MAX: u64 = 4;

pub struct Card {
    pub id: NodeId,
    root: Element,
    role: Element,
    state: Element,
    meta: Element,
    health: Element,
    kill: Element,
    pause: Element,
    resume: Element,
    snap: Element,
    strip: Element,
    /// The entries drawn in the strip, by log index, ascending and contiguous. At most half a
    /// log window, so a vector's shift costs nothing and saves the wasm a deque type.
    entries: Vec<(u64, Slot)>,
    kv_body: Element,
    /// Per row: the row, the key cell, the value cell.
    kv_rows: Vec<[Slot; 3]>,
    kv_note: Element,
}

/// Empties `#cards` and makes one card per node.
pub fn build(doc: &Document, ids: &[NodeId]) -> Vec<Card> {
    let Some(container) = el::by_id(doc, "cards") else {
        return Vec::new();
    };
    el::ensure_children(&container, 0, || el::html(doc, "div", ""));
    ids.iter().map(|id| make(doc, &container, *id)).collect()
}

fn make(doc: &Document, container: &Element, id: NodeId) -> Card {
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
    for e in [&title, &role, &state] {
        el::child(&head, e);
    }
    el::child(&root, &head);
    let meta = el::html(doc, "div", "meta");
    el::child(&root, &meta);
    let health = el::html(doc, "div", "health");
    el::child(&root, &health);
    let [kill, pause, resume] = make_actions(doc, &root, id);
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
    Card {
        id,
        root,
        role,
        state,
        meta,
        health,
        kill,
        pause,
        resume,
        snap,
        strip,
        entries: Vec::new(),
        kv_body,
        kv_rows: Vec::new(),
        kv_note,
    }
}

/// The card's buttons; returns kill, pause and resume (restart is always enabled).
fn make_actions(doc: &Document, root: &Element, id: NodeId) -> [Element; 3] {
    let actions = el::html(doc, "div", "actions");
    let mut made = Vec::new();
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
        made.push(b);
    }
    el::child(root, &actions);
    let mut it = made.into_iter();
    let mut next = || it.next().unwrap_or_else(|| el::html(doc, "button", ""));
    [next(), next(), next()]
}

impl Card {
    /// Draws node `n`; the text panels (table, health) only when `panels`. Returns whether its
    /// log strip is busy (grew by more than it shows one by one).
    pub fn draw(
        &mut self,
        doc: &Document,
        n: &NodeModel,
        model: &ClusterModel,
        is_leader: bool,
        panels: bool,
    ) -> bool {
        self.draw_head(n, is_leader);
        // The snapshot block heads the strip, and under load its text changes with every
        // compaction: it moves with the strip.
        let busy = self.strip_is_busy(n);
        if panels || !busy {
            self.draw_snapshot(n);
            self.draw_strip(doc, n);
        }
        if panels {
            self.draw_meta(n);
            self.draw_health(n, model);
            self.draw_table(doc, n);
        }
        busy
    }

    fn draw_head(&self, n: &NodeModel, is_leader: bool) {
        let state = n.state();
        let role = role_str(n.shown_role());
        attr(&self.root, "data-role", role);
        attr(&self.root, "data-state", state.as_str());
        attr(&self.root, "data-leader", bool_str(is_leader));
        text(&self.role, role);
        attr(&self.role, "data-role", role);
        text(&self.state, state.as_str());
        attr(&self.state, "data-state", state.as_str());
        set_flag(&self.kill, "disabled", state == NodeState::Down);
        let runs = matches!(state, NodeState::Up | NodeState::Recovering);
        set_flag(&self.pause, "disabled", !runs);
        set_flag(&self.resume, "disabled", state != NodeState::Paused);
    }

    /// Ballot and log indices: text that changes with every entry, so drawn with the panels.
    fn draw_meta(&self, n: &NodeModel) {
        let ballot = n.ballot.map(|b| describe::ballot(&b)).unwrap_or("-".into());
        text(
            &self.meta,
            &format!(
                "ballot {ballot} · accepted {} · decided {} · applied {}",
                n.accepted_idx, n.decided_idx, n.applied_idx
            ),
        );
    }

    /// How far behind the leader the node is, and the digest of its table as the node reports.
    fn draw_health(&self, n: &NodeModel, model: &ClusterModel) {
        let lag = health::lag_entries(model, n.id);
        attr(
            &self.root,
            "data-lag",
            &lag.map(|l| l.to_string()).unwrap_or_default(),
        );
        let (digest, at) = match n.digest {
            Some((d, at)) => (d.short(), at.to_string()),
            None => (String::new(), String::new()),
        };
        attr(&self.root, "data-digest", &digest);
        attr(&self.root, "data-digest-idx", &at);
        let behind = match lag {
            None if model.shown_leader() == Some(n.id) => "leader".to_string(),
            None => "no leader".to_string(),
            Some(0) => "in step".to_string(),
            Some(l) => format!("{l} entries behind"),
        };
        let table = if digest.is_empty() {
            String::new()
        } else {
            format!(" · table {digest} @{at}")
        };
        text(&self.health, &format!("{behind}{table}"));
    }

    /// The block for the compacted prefix.
    fn draw_snapshot(&self, n: &NodeModel) {
        if n.compacted_idx == 0 {
            return set_flag(&self.snap, "hidden", true);
        }
        let keys = match n.snapshot.as_ref().map(|s| s.key_count) {
            Some(k) if k > 0 => format!(" · {k} keys"),
            _ => String::new(),
        };
        let installed = n.snapshot.as_ref().is_some_and(|s| s.installed);
        let how = if installed { "installed" } else { "snapshot" };
        attr(&self.snap, "data-index", &n.compacted_idx.to_string());
        attr(&self.snap, "data-installed", bool_str(installed));
        text(&self.snap, &format!("{how} ..{}{keys}", n.compacted_idx));
        let title = format!("entries 0..{} compacted into a snapshot", n.compacted_idx);
        attr(&self.snap, "title", &title);
        set_flag(&self.snap, "hidden", false);
    }

    fn strip_is_busy(&self, n: &NodeModel) -> bool {
        let drawn_end = self.entries.last().map_or(0, |(i, _)| i + 1);
        n.accepted_idx.saturating_sub(drawn_end) > STRIP_STEP_ENTRIES_MAX
    }

    /// The newest entries after the compacted prefix. The strip slides as the log grows:
    /// entries that fell out of the window are removed, new ones appended, and the ones that
    /// stay keep their elements (only their status changes).
    fn draw_strip(&mut self, doc: &Document, n: &NodeModel) {
        let first = n
            .compacted_idx
            .max(n.accepted_idx.saturating_sub(LOG_WINDOW_ENTRIES as u64 / 2));
        let end = n.accepted_idx.max(first);
        let drop_all = self.entries.first().is_some_and(|(i, _)| *i > first);
        self.entries.retain(|(i, e)| {
            let stays = !drop_all && (first..end).contains(i);
            if !stays {
                e.el.remove();
            }
            stays
        });
        let mut next = self.entries.last().map_or(first, |(i, _)| i + 1);
        while next < end {
            let e = el::html(doc, "span", "entry");
            el::child(&self.strip, &e);
            self.entries.push((next, Slot::new(e)));
            next += 1;
        }
        for (idx, e) in self.entries.iter_mut() {
            draw_entry(e, *idx, n);
        }
    }

    fn draw_table(&mut self, doc: &Document, n: &NodeModel) {
        let rows: Vec<_> = n.kv.iter().take(KV_ROWS_SHOWN).collect();
        el::ensure_slots(
            &self.kv_body,
            &mut self.kv_rows,
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
        for ([tr, kt, vt], (k, v)) in self.kv_rows.iter_mut().zip(&rows) {
            let unknown = n.value_unknown(k);
            tr.attr("data-key", k);
            tr.attr("data-value", &v.value);
            kt.text(k);
            vt.text(if unknown { "(in snapshot)" } else { &v.value });
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
        text(&self.kv_note, note.trim_start_matches(" · "));
    }
}

fn draw_entry(e: &mut Slot, idx: u64, n: &NodeModel) {
    let cmd = n.log.get(idx).and_then(|c| c.as_ref());
    let status = n.entry_status(idx).as_str();
    e.attr("data-index", &idx.to_string());
    e.attr("data-status", status);
    let title = cmd
        .map(describe::command)
        .unwrap_or_else(|| "(command not shown)".into());
    e.attr("title", &format!("#{idx} {title} — {status}"));
    let label = match cmd {
        Some(c) => {
            let short: String = c.key().chars().take(6).collect();
            format!("{idx}\n{short}")
        }
        None => format!("{idx}\n·"),
    };
    e.text(&label);
}
