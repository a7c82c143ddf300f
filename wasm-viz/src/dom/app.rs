//! The app: the recording, the sockets, the page's client session, and the wiring of controls.
//!
//! All controls are handled by one delegated click listener reading `data-action` attributes,
//! so per-node buttons created later need no listeners of their own.

use std::collections::BTreeMap;

use omnikv_core::{
    admin::AdminResponse,
    client::{ClientRequest, ClientResponse},
    control::{ActionReply, ProcessState},
    decode_json,
    event::frame_events,
    limits::{CLIENT_FRAME_BYTES_MAX, CONTROL_BODY_BYTES_MAX},
    NodeId,
};
use wasm_bindgen::{prelude::*, JsCast};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Document, Element, Event, HtmlInputElement};

use super::{
    el,
    net::{self, now_ms, Socket, SocketEvent},
    render::View,
    with_app,
};
use crate::{
    api,
    client::{op_from_parts, ClientSession, Step},
    control::{self, ControlRequest},
    reducer::Record,
    timeline::{self, Timeline, RECORDS_CAP},
};

/// How long the page waits for a client reply before treating the outcome as unknown.
const CLIENT_REPLY_TIMEOUT_MS: f64 = 12_000.0;
/// Largest admin dump accepted (it carries a whole table).
const DUMP_BYTES_MAX: usize = 16 << 20;
/// Largest trace file imported.
const TRACE_BYTES_MAX: usize = 256 << 20;
/// A node's table is re-fetched at most this often while it is incomplete.
const DUMP_RETRY_MS: f64 = 10_000.0;

pub struct App {
    pub doc: Document,
    pub timeline: Timeline,
    /// An imported trace being viewed instead of the live recording.
    pub trace: Option<Timeline>,
    streams: BTreeMap<NodeId, Socket>,
    dumps: BTreeMap<NodeId, Socket>,
    /// When a dump was last asked of each node (a short list: one entry per node).
    dump_tried_ms: Vec<(NodeId, f64)>,
    up_nodes: Vec<NodeId>,
    leader: Option<NodeId>,
    client: ClientSession,
    client_sock: Option<(NodeId, Socket)>,
    client_queued: Option<String>,
    client_sent_ms: f64,
    client_began_ms: f64,
    client_lost: Option<String>,
    /// A step decided inside a socket callback, taken at the next animation frame.
    client_next: Option<Step>,
    client_last_node: Option<NodeId>,
    pub view: View,
    last_frame_ms: f64,
}

impl App {
    pub fn new() -> Result<App, JsValue> {
        let doc = web_sys::window()
            .and_then(|w| w.document())
            .ok_or("no document")?;
        // A random client id: two open pages must not share request sessions.
        let client_id = (js_sys::Math::random() * 9.0e15) as u64 + 1;
        Ok(App {
            view: View::new(&doc),
            doc,
            timeline: Timeline::new(RECORDS_CAP),
            trace: None,
            streams: BTreeMap::new(),
            dumps: BTreeMap::new(),
            dump_tried_ms: Vec::new(),
            up_nodes: Vec::new(),
            leader: None,
            client: ClientSession::new(client_id),
            client_sock: None,
            client_queued: None,
            client_sent_ms: 0.0,
            client_began_ms: 0.0,
            client_lost: None,
            client_next: None,
            client_last_node: None,
            last_frame_ms: now_ms(),
        })
    }

    fn record(&mut self, r: Record) {
        self.timeline.push(r);
    }

    fn notice(&mut self, text: String) {
        self.record(Record::Notice {
            at_ms: now_ms() as u64,
            text,
        });
    }

    pub fn on_cluster(&mut self, result: Result<(u16, String), String>) {
        self.view.set_connection(match &result {
            Ok((200, _)) => None,
            Ok((s, _)) => Some(format!("launcher answered {s}")),
            Err(e) => Some(format!("launcher unreachable: {e}")),
        });
        let Ok((200, body)) = result else { return };
        let view = match api::decode_cluster(&body) {
            Ok(v) => v,
            Err(e) => {
                self.notice(format!("bad cluster view: {e}"));
                return;
            }
        };
        self.leader = view.leader;
        // A node is only dialled once the launcher has heard from it (it reports a role): a
        // process that is still starting refuses connections, and the browser logs each refusal.
        let ready =
            |n: &omnikv_core::control::NodeView| n.state == ProcessState::Up && n.role.is_some();
        self.up_nodes = view
            .client_targets()
            .into_iter()
            .filter(|n| ready(n))
            .map(|n| n.id)
            .collect();
        let changed = {
            let live = self.timeline.live_model();
            live.leader != view.leader
                || live.links != view.links
                || view.nodes.iter().any(|n| {
                    live.nodes
                        .get(&n.id)
                        .map(|m| m.process != Some(n.state) || m.ws != n.ws || m.pid != n.pid)
                        .unwrap_or(true)
                })
        };
        let states: Vec<(NodeId, ProcessState, bool)> = view
            .nodes
            .iter()
            .map(|n| (n.id, n.state, ready(n)))
            .collect();
        if changed {
            self.record(Record::Cluster {
                at_ms: now_ms() as u64,
                view,
            });
        }
        // Called from the poll loop, never from a socket callback: sockets may be replaced.
        for (id, state, ready) in states {
            let stale = self.streams.get(&id).is_some_and(|s| s.is_closed());
            if stale || state == ProcessState::Down {
                self.streams.remove(&id);
            }
            if ready && !self.streams.contains_key(&id) {
                self.open_stream(id);
            }
        }
        self.dumps.retain(|_, s| !s.is_closed());
        if self.client.pending().is_some()
            && now_ms() - self.client_sent_ms > CLIENT_REPLY_TIMEOUT_MS
        {
            self.client_lost = Some("no reply in time".into());
        }
    }

    /// A node's WebSocket base URL, as the launcher last reported it.
    fn ws_base(&self, id: NodeId) -> Option<String> {
        let ws = &self.timeline.live_model().nodes.get(&id)?.ws;
        (!ws.is_empty()).then(|| ws.trim_end_matches('/').to_owned())
    }

    fn open_stream(&mut self, id: NodeId) {
        let Some(base) = self.ws_base(id) else {
            return;
        };
        let url = format!("{base}/events");
        match Socket::open(&url, on_stream, id) {
            Ok(s) => {
                self.streams.insert(id, s);
            }
            Err(e) => self.notice(format!("node {id}: cannot open {url}: {e}")),
        }
    }

    fn request_dump(&mut self, id: NodeId) {
        let now = now_ms();
        let tried = self.dump_tried_ms.iter_mut().find(|(n, _)| *n == id);
        let recent = tried
            .as_ref()
            .is_some_and(|(_, t)| now - *t < DUMP_RETRY_MS);
        if recent || self.dumps.contains_key(&id) {
            return;
        }
        match tried {
            Some((_, t)) => *t = now,
            None => self.dump_tried_ms.push((id, now)),
        }
        let Some(base) = self.ws_base(id) else {
            return;
        };
        if let Ok(s) = Socket::open(&format!("{base}/admin"), on_dump, id) {
            self.dumps.insert(id, s);
        }
    }

    pub fn frame(&mut self) {
        let now = now_ms();
        let dt = now - self.last_frame_ms;
        self.last_frame_ms = now;
        if let Some(why) = self.client_lost.take() {
            let step = self.client.on_lost(&why);
            self.after_client_step(step);
        }
        if let Some(step) = self.client_next.take() {
            self.after_client_step(step);
        }
        let tl = match self.trace.as_mut() {
            Some(t) => t,
            None => &mut self.timeline,
        };
        tl.tick(dt);
        let clock = tl.view_time_ms().unwrap_or(now);
        let info = super::render::TimelineInfo {
            mode: tl.mode(),
            start: tl.start(),
            end: tl.end(),
            cursor: tl.cursor(),
            dropped: tl.dropped(),
            cursor_ms: tl.time_at(tl.cursor()),
            trace: self.trace.is_some(),
        };
        let tl = match self.trace.as_mut() {
            Some(t) => t,
            None => &mut self.timeline,
        };
        let model = tl.model();
        self.view.draw(&self.doc, model, clock, &info);
    }

    // ---- client requests from the form ----

    fn submit(&mut self, op: &str) {
        let key = el::input_value(&self.doc, "key");
        let value = el::input_value(&self.doc, "value");
        let read = el::input_value(&self.doc, "read-mode");
        let op = match op_from_parts(op, &key, &value, &read) {
            Ok(o) => o,
            Err(e) => return self.view.set_result(&self.doc, false, &e),
        };
        match self.client.begin(op) {
            Ok(req) => {
                self.client_began_ms = now_ms();
                self.client_last_node = None;
                self.view.set_result(
                    &self.doc,
                    true,
                    &format!("sending {}…", crate::describe::op(&req.op)),
                );
                self.send_client(req);
            }
            Err(e) => self.view.set_result(&self.doc, false, &e),
        }
    }

    fn choose_node(&self) -> Option<NodeId> {
        let chosen = el::input_value(&self.doc, "target-node")
            .parse::<NodeId>()
            .ok();
        let first_try = self.client_last_node.is_none();
        if let Some(n) = chosen.filter(|n| first_try && self.up_nodes.contains(n)) {
            return Some(n);
        }
        // `up_nodes` is in the order clients try nodes (leader first); a retry moves on.
        self.up_nodes
            .iter()
            .copied()
            .find(|n| Some(*n) != self.client_last_node)
            .or(self.up_nodes.first().copied())
    }

    fn send_client(&mut self, req: ClientRequest) {
        let Some(node) = self.choose_node() else {
            self.client_lost = Some("no node is up".into());
            return;
        };
        self.client_last_node = Some(node);
        self.client_sent_ms = now_ms();
        let frame = match serde_json::to_string(&req) {
            Ok(f) => f,
            Err(e) => return self.view.set_result(&self.doc, false, &e.to_string()),
        };
        let reuse = matches!(&self.client_sock, Some((n, s)) if *n == node && !s.is_closed());
        if !reuse {
            self.client_sock = None;
            let Some(base) = self.ws_base(node) else {
                return;
            };
            match Socket::open(&format!("{base}/client"), on_client, node) {
                Ok(s) => self.client_sock = Some((node, s)),
                Err(e) => {
                    self.client_lost = Some(e);
                    return;
                }
            }
        }
        match &self.client_sock {
            Some((_, s)) if s.is_open() => {
                if s.ws.send_with_str(&frame).is_err() {
                    self.client_lost = Some("send failed".into());
                }
            }
            _ => self.client_queued = Some(frame),
        }
    }

    fn after_client_step(&mut self, step: Step) {
        match step {
            Step::Ignore => {}
            Step::Send(req) => {
                // The next request of the same operation: no node to move away from.
                self.client_last_node = None;
                self.send_client(req);
            }
            Step::Retry(req) => {
                // Not from inside the socket's own callback: the socket may be replaced.
                self.client_sock = None;
                self.send_client(req);
            }
            Step::Done { ok, text } => {
                let ms = now_ms() - self.client_began_ms;
                self.view
                    .set_result(&self.doc, ok, &format!("{text} — {} ms", ms as u64));
            }
        }
    }

    // ---- control actions ----

    fn control(&mut self, req: Result<ControlRequest, String>) {
        let req = match req {
            Ok(r) => r,
            Err(e) => return self.notice(e),
        };
        self.view
            .set_action_status(&self.doc, &format!("{} …", req.path));
        spawn_local(async move {
            let result = net::http("POST", &req.path, req.body).await;
            let text = match result {
                Ok((_, body)) => {
                    match decode_json::<ActionReply>(body.as_bytes(), CONTROL_BODY_BYTES_MAX) {
                        Ok(r) if r.ok => format!("{}: {}", req.path, r.message),
                        Ok(r) => format!("{} failed: {}", req.path, r.message),
                        Err(_) => format!("{}: unexpected reply {body:.120}", req.path),
                    }
                }
                Err(e) => format!("{} failed: {e}", req.path),
            };
            with_app(|app| app.view.set_action_status(&app.doc, &text));
            net::poll_once().await;
        });
    }

    fn on_click(&mut self, target: Element) {
        let get = |name: &str| target.get_attribute(name).unwrap_or_default();
        let node = get("data-node").parse::<NodeId>().ok();
        let action = get("data-action");
        // A trace is a record of another time: nothing on the page may act on the live cluster
        // while one is shown (the buttons are disabled too; the ring's links cannot be).
        let live_only = matches!(
            action.as_str(),
            "put" | "get" | "delete" | "node" | "link" | "scenario"
        );
        if live_only && self.trace.is_some() {
            return;
        }
        match action.as_str() {
            op @ ("put" | "get" | "delete") => self.submit(op),
            "node" => {
                if let Some(n) = node {
                    self.control(control::node_action(n, &get("data-op")));
                }
            }
            "link" => {
                let a = get("data-a").parse().unwrap_or(0);
                let b = get("data-b").parse().unwrap_or(0);
                let connected = get("data-connected") != "true";
                self.control(Ok(control::set_link(a, b, connected)));
            }
            "scenario" => self.control(control::scenario(&get("data-scenario"))),
            "select-node" => self.view.select_node(node),
            "select-msg" => {
                let from = get("data-from").parse().unwrap_or(0);
                let id = get("data-msg-id").parse().unwrap_or(0);
                self.view.select_message(from, id);
            }
            "pause" => self.active().pause(),
            "step" => self.active().step(true),
            "step-back" => self.active().step(false),
            "replay" => {
                let speed = timeline::speed_named(&el::input_value(&self.doc, "speed"));
                self.active().replay(speed);
            }
            "live" => {
                self.trace = None;
                self.timeline.go_live();
            }
            "export" => self.export(),
            _ => {}
        }
        self.view.invalidate();
    }

    fn active(&mut self) -> &mut Timeline {
        match self.trace.as_mut() {
            Some(t) => t,
            None => &mut self.timeline,
        }
    }

    fn export(&mut self) {
        let json = match serde_json::to_string(&self.active().export()) {
            Ok(j) => j,
            Err(e) => return self.notice(format!("export failed: {e}")),
        };
        let parts = js_sys::Array::of1(&JsValue::from_str(&json));
        let opts = web_sys::BlobPropertyBag::new();
        opts.set_type("application/json");
        let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts) else {
            return;
        };
        let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
            return;
        };
        if let Ok(a) = self.doc.create_element("a") {
            let _ = a.set_attribute("href", &url);
            let _ = a.set_attribute("download", "omnikv-trace.json");
            if let Some(a) = a.dyn_ref::<web_sys::HtmlElement>() {
                a.click();
            }
        }
        let _ = web_sys::Url::revoke_object_url(&url);
    }

    fn import(&mut self, text: &str) {
        match Timeline::import_text(text, TRACE_BYTES_MAX, RECORDS_CAP) {
            Ok(mut t) => {
                // Open at the first input that draws something, not on an empty ring.
                while t.cursor() < t.end() && t.model().nodes.is_empty() {
                    t.step(true);
                }
                self.trace = Some(t);
                self.view
                    .set_action_status(&self.doc, "trace imported: paused at its first picture");
            }
            Err(e) => self
                .view
                .set_action_status(&self.doc, &format!("import failed: {e}")),
        }
        self.view.invalidate();
    }
}

fn on_stream(app: &mut App, node: NodeId, ev: SocketEvent) {
    let at_ms = now_ms() as u64;
    match ev {
        SocketEvent::Open => app.record(Record::Stream {
            at_ms,
            node,
            connected: true,
        }),
        SocketEvent::Frame(text) => {
            for line in frame_events(&text) {
                match api::decode_event(line) {
                    Ok(env) => app.record(Record::Event(env)),
                    Err(e) => app.notice(format!("node {node}: bad event ignored: {e}")),
                }
            }
            let partial = app
                .timeline
                .live_model()
                .nodes
                .get(&node)
                .is_some_and(|n| n.kv_partial);
            if partial {
                app.request_dump(node);
            }
        }
        SocketEvent::Closed(_) => app.record(Record::Stream {
            at_ms,
            node,
            connected: false,
        }),
    }
}

fn on_dump(app: &mut App, node: NodeId, ev: SocketEvent) {
    match ev {
        SocketEvent::Open => {
            if let Some(s) = app.dumps.get(&node) {
                if let Ok(req) = serde_json::to_string(&omnikv_core::admin::AdminRequest::Dump) {
                    let _ = s.ws.send_with_str(&req);
                }
            }
        }
        SocketEvent::Frame(text) => {
            match decode_json::<AdminResponse>(text.as_bytes(), DUMP_BYTES_MAX) {
                Ok(AdminResponse::Dump(mut dump)) => {
                    // The recording keeps what the reducer reads: the kept keys, and one more
                    // to show that the table is larger.
                    if dump.kv.len() > crate::model::KV_KEYS_MAX + 1 {
                        dump.kv = std::mem::take(&mut dump.kv)
                            .into_iter()
                            .take(crate::model::KV_KEYS_MAX + 1)
                            .collect();
                    }
                    app.record(Record::Dump {
                        at_ms: now_ms() as u64,
                        dump: *dump,
                    })
                }
                Ok(_) => {}
                Err(e) => app.notice(format!("node {node}: bad dump: {e}")),
            }
            if let Some(s) = app.dumps.get(&node) {
                // Closing is safe here; the socket object is dropped later by the poll loop.
                let _ = s.ws.close();
            }
        }
        SocketEvent::Closed(_) => {}
    }
}

fn on_client(app: &mut App, node: NodeId, ev: SocketEvent) {
    let current = matches!(&app.client_sock, Some((n, _)) if *n == node);
    if !current {
        return;
    }
    match ev {
        SocketEvent::Open => {
            if let (Some(frame), Some((_, s))) = (app.client_queued.take(), &app.client_sock) {
                if s.ws.send_with_str(&frame).is_err() {
                    app.client_lost = Some("send failed".into());
                }
            }
        }
        SocketEvent::Frame(text) => {
            match decode_json::<ClientResponse>(text.as_bytes(), CLIENT_FRAME_BYTES_MAX) {
                Ok(resp) => match app.client.on_response(&resp) {
                    // Retrying replaces this socket: do it from the next frame instead.
                    Step::Retry(_) => {
                        app.client_lost = Some(crate::client::describe_response(&resp))
                    }
                    // Sending may replace this socket: do it from the next frame instead.
                    step @ Step::Send(_) => app.client_next = Some(step),
                    step => app.after_client_step(step),
                },
                Err(e) => app.notice(format!("node {node}: bad client reply: {e}")),
            }
        }
        SocketEvent::Closed(why) => {
            if app.client.pending().is_some() {
                app.client_lost = Some(format!("node {node} {why}"));
            }
        }
    }
}

pub fn install_listeners() -> Result<(), JsValue> {
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let click = Closure::<dyn FnMut(Event)>::new(|e: Event| {
        let target = e
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .and_then(|t| t.closest("[data-action]").ok().flatten());
        if let Some(t) = target {
            with_app(|app| app.on_click(t));
        }
    });
    doc.add_event_listener_with_callback("click", click.as_ref().unchecked_ref())?;
    click.forget(); // lives as long as the page

    let keys = Closure::<dyn FnMut(web_sys::KeyboardEvent)>::new(|e: web_sys::KeyboardEvent| {
        let in_form = e
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .is_some_and(|t| t.id() == "key" || t.id() == "value");
        if in_form && e.key() == "Enter" {
            e.prevent_default();
            with_app(|app| app.submit("put"));
        } else if e.key() == "Escape" {
            with_app(|app| app.view.select_node(None));
        }
    });
    doc.add_event_listener_with_callback("keydown", keys.as_ref().unchecked_ref())?;
    keys.forget();

    if let Some(scrub) = el::by_id(&doc, "scrub") {
        let on_input = Closure::<dyn FnMut(Event)>::new(|e: Event| {
            let v = e
                .target()
                .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
                .map(|i| i.value_as_number())
                .unwrap_or(0.0);
            with_app(|app| {
                app.active().seek(v.max(0.0) as u64);
                app.view.invalidate();
            });
        });
        scrub.add_event_listener_with_callback("input", on_input.as_ref().unchecked_ref())?;
        on_input.forget();
    }

    if let Some(file) = el::by_id(&doc, "import") {
        let on_change = Closure::<dyn FnMut(Event)>::new(|e: Event| {
            let file = e
                .target()
                .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
                .and_then(|i| i.files())
                .and_then(|f| f.get(0));
            if let Some(file) = file {
                spawn_local(async move {
                    match JsFuture::from(file.text()).await {
                        Ok(text) => {
                            let text = text.as_string().unwrap_or_default();
                            with_app(|app| app.import(&text));
                        }
                        Err(e) => {
                            let msg = net::js_text(e);
                            with_app(|app| app.notice(format!("import failed: {msg}")));
                        }
                    }
                });
            }
        });
        file.add_event_listener_with_callback("change", on_change.as_ref().unchecked_ref())?;
        on_change.forget();
    }
    Ok(())
}

/// Draws once per animation frame, forever.
pub fn start_frames() {
    use std::{cell::RefCell, rc::Rc};
    let slot: Rc<RefCell<Option<Closure<dyn FnMut()>>>> = Rc::new(RefCell::new(None));
    let again = slot.clone();
    *slot.borrow_mut() = Some(Closure::new(move || {
        with_app(|app| app.frame());
        if let (Some(w), Some(cb)) = (web_sys::window(), again.borrow().as_ref()) {
            let _ = w.request_animation_frame(cb.as_ref().unchecked_ref());
        }
    }));
    let first = slot.borrow();
    if let (Some(w), Some(cb)) = (web_sys::window(), first.as_ref()) {
        let _ = w.request_animation_frame(cb.as_ref().unchecked_ref());
    }
}
