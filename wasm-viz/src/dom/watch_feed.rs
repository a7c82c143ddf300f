//! The "Watch" toggle: a live feed of the changes to the keys under a prefix, read from a
//! node's `/watch` stream.
//!
//! A watch resumes where it left off: when its node goes away, the feed reconnects to another
//! live node with `from_index` set to the last `up_to` it was told, and indices are the same on
//! every replica, so the feed shows no change twice and misses none (`omnikv_core::watch`). A
//! socket is replaced from the poll loop ([`WatchFeed::refresh`]), never inside its callback.

use omnikv_core::{
    scan::ScanRange,
    watch::{WatchFrame, WatchRequest, WATCH_FRAME_BYTES_MAX},
    wire::encode_postcard,
    NodeId,
};
use web_sys::Document;

use super::{
    el::{self, attr, text},
    net::{decode_frame, Socket, SocketEvent},
};

/// Changes the feed keeps on screen, newest first.
pub const FEED_LINES_MAX: usize = 50;

pub struct WatchFeed {
    /// The prefix watched; `None`: the toggle is off.
    prefix: Option<String>,
    sock: Option<(NodeId, Socket)>,
    /// The node whose stream has answered the current request (it then serves from `up_to`).
    serving: Option<NodeId>,
    /// Every change below this index has been shown: where a reconnection resumes.
    up_to: Option<u64>,
    /// Oldest first (a vector, not a deque: one collection type fewer in the wasm).
    lines: Vec<String>,
    /// Why the feed stopped or waits, shown under it.
    status: String,
    /// The watch cannot go on (compacted, refused): no reconnection.
    ended: bool,
    changed: bool,
    on_event: fn(NodeId, SocketEvent),
}

impl WatchFeed {
    pub fn new(on_event: fn(NodeId, SocketEvent)) -> WatchFeed {
        WatchFeed {
            prefix: None,
            sock: None,
            serving: None,
            up_to: None,
            lines: Vec::new(),
            status: String::new(),
            ended: false,
            changed: true,
            on_event,
        }
    }

    /// Turns the feed on for `prefix` (from now on), or off.
    pub fn set(&mut self, prefix: Option<String>) {
        self.sock = None;
        self.up_to = None;
        self.ended = false;
        self.lines.clear();
        self.status = match &prefix {
            Some(p) => format!("watching \"{p}\"…"),
            None => String::new(),
        };
        self.prefix = prefix;
        self.changed = true;
    }

    /// Opens the stream to the first of `targets` (live nodes, leader first) when the feed is
    /// on and has none; called from the poll loop.
    pub fn refresh(&mut self, targets: &[NodeId], ws: &dyn Fn(NodeId) -> Option<String>) {
        if self.prefix.is_none() || self.ended {
            return;
        }
        if matches!(&self.sock, Some((n, s)) if targets.contains(n) && !s.is_closed()) {
            return;
        }
        self.sock = None;
        let Some((node, base)) = targets.iter().find_map(|&n| Some((n, ws(n)?))) else {
            return self.set_status("no node is up to watch".into());
        };
        let deliver = self.on_event;
        match Socket::open(&format!("{base}/watch"), move |ev| deliver(node, ev)) {
            Ok(s) => self.sock = Some((node, s)),
            Err(e) => self.set_status(format!("cannot watch node {node}: {e}")),
        }
    }

    /// What the watch socket to `node` reports.
    pub fn on_socket(&mut self, node: NodeId, ev: SocketEvent) {
        let Some((current, sock)) = &self.sock else {
            return;
        };
        if *current != node {
            return;
        }
        match ev {
            SocketEvent::Open => {
                let request = WatchRequest {
                    range: ScanRange {
                        prefix: self.prefix.clone(),
                        ..ScanRange::default()
                    },
                    from_index: self.up_to,
                };
                sock.send(&encode_postcard(&request));
                self.serving = None;
            }
            SocketEvent::Frame(frame) => self.on_frame(node, frame),
            // Reopened to another node by the next refresh, from `up_to`.
            SocketEvent::Closed(why) if !self.ended => {
                self.set_status(format!("node {node} {why}; resuming elsewhere"))
            }
            SocketEvent::Closed(_) => {}
        }
    }

    fn on_frame(&mut self, node: NodeId, frame: Result<Vec<u8>, String>) {
        match decode_frame::<WatchFrame>(frame, 2 * WATCH_FRAME_BYTES_MAX) {
            Ok(WatchFrame::Changes { changes, up_to }) => {
                // A node answers at once with where it serves from: nothing is missed after.
                if self.serving != Some(node) {
                    self.serving = Some(node);
                    self.set_status(format!("watching through node {node} from index {up_to}"));
                }
                for c in changes {
                    let line = match &c.value {
                        Some(v) => format!("{} put {}={v}", c.index, c.key),
                        None => format!("{} delete {}", c.index, c.key),
                    };
                    self.lines.push(line);
                }
                let over = self.lines.len().saturating_sub(FEED_LINES_MAX);
                self.lines.drain(..over);
                self.up_to = Some(up_to);
                self.changed = true;
            }
            Ok(WatchFrame::Compacted { oldest_index }) => self.end(format!(
                "node {node} no longer keeps changes before index {oldest_index}: scan, then watch again"
            )),
            Ok(WatchFrame::Error { message }) => self.end(format!("watch refused: {message}")),
            Err(e) => self.end(format!("node {node}: bad watch frame: {e}")),
        }
    }

    fn end(&mut self, why: String) {
        self.ended = true;
        self.set_status(why);
    }

    fn set_status(&mut self, status: String) {
        self.status = status;
        self.changed = true;
    }

    /// Draws the feed if it changed.
    pub fn draw(&mut self, doc: &Document) {
        if !std::mem::take(&mut self.changed) {
            return;
        }
        if let Some(feed) = el::by_id(doc, "watch-feed") {
            attr(
                &feed,
                "data-on",
                if self.prefix.is_some() {
                    "true"
                } else {
                    "false"
                },
            );
            el::ensure_children(&feed, self.lines.len(), || el::html(doc, "li", ""));
            for (i, line) in self.lines.iter().rev().enumerate() {
                if let Some(li) = el::nth(&feed, i) {
                    text(&li, line);
                }
            }
        }
        if let Some(status) = el::by_id(doc, "watch-status") {
            text(&status, &self.status);
        }
    }
}
