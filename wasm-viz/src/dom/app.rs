//! The app: the recording, and the wiring between sockets, controls and the view.
//!
//! It owns the one [`App`] of the page; socket callbacks and listeners reach it through
//! [`with_app`]. The parts it wires know nothing of it: sockets get plain callbacks, the view
//! gets the model to draw.

use std::cell::RefCell;

use omnikv_core::{
    control::{ClusterView, NodeView, ProcessState},
    wire::decode_postcard,
    NodeId,
};
use wasm_bindgen_futures::spawn_local;
use web_sys::{Document, Element};

use super::{
    client_form::ClientForm,
    controls, el,
    net::{self, ClusterAnswer, SocketEvent},
    now_ms,
    render::{TimelineInfo, View},
    stepping,
    streams::{self, NodeReadiness, Streams},
    trace_io,
    watch_feed::WatchFeed,
};
use crate::{
    api,
    control::{self, ControlRequest},
    model::NodeState,
    record::Record,
    timeline::{self, Timeline, RECORDS_CAP},
};

thread_local! {
    static APP: RefCell<Option<App>> = const { RefCell::new(None) };
}

/// Runs `f` on the app if it is started and not already borrowed (a nested call is dropped
/// rather than panicking).
pub fn with_app<R>(f: impl FnOnce(&mut App) -> R) -> Option<R> {
    APP.with(|cell| match cell.try_borrow_mut() {
        Ok(mut guard) => guard.as_mut().map(f),
        Err(_) => None,
    })
}

/// Makes `app` the page's app.
pub fn install(app: App) {
    APP.with(|cell| *cell.borrow_mut() = Some(app));
}

pub struct App {
    pub doc: Document,
    pub timeline: Timeline,
    /// An imported trace being viewed instead of the live recording.
    pub trace: Option<Timeline>,
    streams: Streams,
    client: ClientForm,
    watch: WatchFeed,
    pub view: View,
    last_frame_ms: f64,
    /// One past the number of the newest cluster view taken (see [`net::fetch_cluster`]).
    next_cluster_ask: u64,
}

impl App {
    pub fn new(doc: Document) -> App {
        App {
            view: View::new(),
            doc,
            timeline: Timeline::new(RECORDS_CAP),
            trace: None,
            streams: Streams::new(
                |id, ev| {
                    with_app(|app| app.on_stream(id, ev));
                },
                |id, ev| {
                    with_app(|app| app.on_dump(id, ev));
                },
            ),
            client: ClientForm::new(|id, ev| {
                with_app(|app| {
                    if let Some(n) = app.client.on_socket(&app.doc, id, ev) {
                        app.notice(n);
                    }
                    app.record_operations();
                });
            }),
            watch: WatchFeed::new(|id, ev| {
                with_app(|app| app.watch.on_socket(id, ev));
            }),
            last_frame_ms: now_ms(),
            next_cluster_ask: 0,
        }
    }

    fn record(&mut self, r: Record) {
        self.timeline.push(r);
    }

    /// Records the client operations finished since the last call.
    fn record_operations(&mut self) {
        for operation in self.client.take_operations() {
            let at_ms = operation.ret_us.map_or(now_ms() as u64, |us| us / 1000);
            self.record(Record::Operation { at_ms, operation });
        }
    }

    pub fn notice(&mut self, text: String) {
        self.record(Record::Notice {
            at_ms: now_ms() as u64,
            text,
        });
    }

    /// The timeline on screen: the imported trace, else the live recording.
    pub fn active(&mut self) -> &mut Timeline {
        match self.trace.as_mut() {
            Some(t) => t,
            None => &mut self.timeline,
        }
    }

    /// A node's WebSocket base URL, as the launcher last reported it.
    fn ws_base(timeline: &Timeline, id: NodeId) -> Option<String> {
        let ws = &timeline.live_model().nodes.get(&id)?.ws;
        (!ws.is_empty()).then(|| ws.trim_end_matches('/').to_owned())
    }

    /// A poll of the launcher's cluster view. An answer to an earlier ask than one already
    /// taken is dropped: it would show a killed node up again, and the page would dial it.
    pub fn on_cluster(&mut self, answer: ClusterAnswer) {
        if answer.asked < self.next_cluster_ask {
            return;
        }
        self.next_cluster_ask = answer.asked + 1;
        let result = answer.result;
        self.view.set_connection(match &result {
            Ok((200, _)) => None,
            Ok((s, _)) => Some(format!("launcher answered {s}")),
            Err(e) => Some(format!("launcher unreachable: {e}")),
        });
        let Ok((200, body)) = result else { return };
        let view = match decode_postcard::<ClusterView>(&body, api::CLUSTER_BYTES_MAX) {
            Ok(v) => v,
            Err(e) => return self.notice(format!("bad cluster view: {e}")),
        };
        let targets: Vec<NodeId> = (view.client_targets().into_iter())
            .filter(|n| ready(n))
            .map(|n| n.id)
            .collect();
        let timeline = &self.timeline;
        self.watch
            .refresh(&targets, &|id| App::ws_base(timeline, id));
        self.client.set_targets(targets);
        let nodes: Vec<NodeReadiness> = view
            .nodes
            .iter()
            .map(|n| NodeReadiness {
                id: n.id,
                state: n.state,
                ready: ready(n),
                ws: n.ws.trim_end_matches('/').to_owned(),
            })
            .collect();
        if cluster_changed(&self.timeline, &view) {
            self.record(Record::Cluster {
                at_ms: now_ms() as u64,
                view,
            });
        }
        for failed in self.streams.refresh(&nodes) {
            self.notice(failed);
        }
    }

    fn on_stream(&mut self, node: NodeId, ev: SocketEvent) {
        let at_ms = now_ms() as u64;
        match ev {
            SocketEvent::Open | SocketEvent::Closed(_) => self.record(Record::Stream {
                at_ms,
                node,
                connected: matches!(ev, SocketEvent::Open),
            }),
            SocketEvent::Frame(frame) => {
                let records = match frame {
                    Ok(bytes) => crate::api::postcard_frame_records(node, &bytes, at_ms),
                    Err(e) => vec![Record::Notice {
                        at_ms,
                        text: format!("node {node}: bad event frame ignored: {e}"),
                    }],
                };
                for r in records {
                    self.record(r);
                }
                let partial = self.timeline.live_model().nodes.get(&node);
                if partial.is_some_and(|n| n.kv_partial) {
                    let ws = App::ws_base(&self.timeline, node).unwrap_or_default();
                    self.streams.request_dump(node, &ws, now_ms());
                }
            }
        }
    }

    fn on_dump(&mut self, node: NodeId, ev: SocketEvent) {
        match ev {
            SocketEvent::Open => self.streams.send_dump_request(node),
            SocketEvent::Frame(frame) => {
                if let Some(r) = streams::dump_record(node, frame, now_ms() as u64) {
                    self.record(r);
                }
                self.streams.dump_done(node);
            }
            SocketEvent::Closed(_) => {}
        }
    }

    /// One animation frame: deferred client steps, replay clock, drawing.
    pub fn frame(&mut self) {
        let now = now_ms();
        let dt = now - self.last_frame_ms;
        self.last_frame_ms = now;
        let timeline = &self.timeline;
        self.client
            .frame(&self.doc, &|id| App::ws_base(timeline, id));
        self.record_operations();
        self.watch.draw(&self.doc);
        let trace = self.trace.is_some();
        let tl = match self.trace.as_mut() {
            Some(t) => t,
            None => &mut self.timeline,
        };
        tl.tick(dt);
        let clock = tl.view_time_ms().unwrap_or(now);
        let info = TimelineInfo::of(tl, trace);
        // The picture at the cursor, and the whole recording (its story: markers, the list).
        let (model, live) = tl.view_and_live();
        self.view.draw(&self.doc, model, live, clock, &info);
        self.view.draw_history(&self.doc, tl, trace);
    }

    /// A click on an element with a `data-action`; `shift` held changes what a link does (hold
    /// or release it instead of cutting or healing it).
    pub fn on_click(&mut self, target: Element, shift: bool) {
        let get = |name: &str| target.get_attribute(name).unwrap_or_default();
        let node = get("data-node").parse::<NodeId>().ok();
        let action = get("data-action");
        // A trace is a record of another time: nothing on the page may act on the live cluster
        // while one is shown (the buttons are disabled too; the ring's links cannot be).
        let live_only = matches!(
            action.as_str(),
            "put"
                | "get"
                | "delete"
                | "scan"
                | "cas"
                | "watch"
                | "node"
                | "link"
                | "scenario"
                | "step-mode"
                | "step-walk"
                | "deliver"
                | "deliver-five"
                | "deliver-all"
                | "drop-held"
                | "release-held"
        );
        if live_only && self.trace.is_some() {
            return;
        }
        match action.as_str() {
            op @ ("put" | "get" | "delete" | "scan" | "cas") => self.submit(op),
            "watch" => {
                let prefix = el::checked(&target).then(|| el::input_value(&self.doc, "key"));
                self.watch.set(prefix);
            }
            "node" => {
                if let Some(n) = node {
                    self.control(control::node_action(n, &get("data-op")));
                }
            }
            "link" => {
                let a = get("data-a").parse().unwrap_or(0);
                let b = get("data-b").parse().unwrap_or(0);
                if shift {
                    let held = get("data-held") == "true";
                    self.explain(match held {
                        true => {
                            format!("released link {a}-{b}: what waited is delivered, in order")
                        }
                        false => format!("link {a}-{b} holds its replication messages both ways"),
                    });
                    self.control(Ok(control::hold_link(a, b, !held)));
                } else {
                    let connected = get("data-connected") != "true";
                    self.control(Ok(control::set_link(a, b, connected)));
                }
            }
            "scenario" => self.control(control::scenario(&get("data-scenario"))),
            "step-mode" => self.step_mode(el::checked(&target), false),
            "step-walk" => self.step_mode(true, true),
            "deliver" | "deliver-five" | "deliver-all" | "drop-held" | "release-held" => {
                let end = |name: &str| get(name).parse::<NodeId>().unwrap_or(0);
                self.held_action(&action, end("data-a"), end("data-b"));
            }
            "select-held" => {
                let end = |name: &str| get(name).parse::<NodeId>().ok();
                self.view.held_selected = end("data-from").zip(end("data-to"));
            }
            "select-node" => self.view.select_node(node),
            "select-msg" => {
                let from = get("data-from").parse().unwrap_or(0);
                let id = get("data-msg-id").parse().unwrap_or(0);
                self.view.select_message(from, id);
            }
            "seek" => {
                let pos = get("data-pos").parse().unwrap_or(0);
                self.active().seek(pos);
            }
            "heartbeats" => self.view.show_heartbeats(el::checked(&target)),
            "history" => self.view.toggle_history(),
            _ => self.on_timeline_click(&action),
        }
        self.view.invalidate();
    }

    fn on_timeline_click(&mut self, action: &str) {
        match action {
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
            "export" => {
                let doc = self.doc.clone();
                if let Err(e) = trace_io::export(&doc, self.active()) {
                    self.notice(format!("export failed: {e}"));
                }
            }
            _ => {}
        }
    }

    pub fn submit(&mut self, op: &str) {
        let timeline = &self.timeline;
        self.client
            .submit(&self.doc, op, &|id| App::ws_base(timeline, id));
    }

    fn control(&mut self, req: Result<ControlRequest, String>) {
        match req {
            Ok(r) => self.controls(vec![r], None),
            Err(e) => self.notice(e),
        }
    }

    /// Posts `reqs` in order, then runs `then` if every one was carried out.
    fn controls(&mut self, reqs: Vec<ControlRequest>, then: Option<fn(&mut App)>) {
        if let Some(first) = reqs.first() {
            controls::show_status(&self.doc, &format!("{} …", first.path));
        }
        spawn_local(async move {
            let mut all_ok = true;
            for req in reqs {
                let (line, ok) = controls::post(&req).await;
                all_ok &= ok;
                with_app(|app| {
                    controls::show_status(&app.doc, &line);
                    if ok {
                        app.record(Record::Control {
                            at_ms: now_ms() as u64,
                            path: req.path.clone(),
                        });
                    }
                });
            }
            let view = net::fetch_cluster().await;
            with_app(|app| {
                app.on_cluster(view);
                if let (true, Some(then)) = (all_ok, then) {
                    then(app);
                }
            });
        });
    }

    /// Holds (or releases) every link; with `walk`, then puts a value to step through.
    fn step_mode(&mut self, on: bool, walk: bool) {
        el::set_input(&self.doc, "step-mode", "", Some(on));
        // A node that is down holds nothing (a restarted node sends freely again).
        let running = |n: &&crate::model::NodeModel| {
            matches!(n.state(), NodeState::Up | NodeState::Recovering)
        };
        let ids: Vec<NodeId> = (self.timeline.live_model().nodes.values())
            .filter(running)
            .map(|n| n.id)
            .collect();
        let explain = if on {
            stepping::started(walk)
        } else {
            "step mode off: every link delivers again"
        };
        self.explain(explain.to_string());
        let then: Option<fn(&mut App)> = match walk {
            true => Some(|app| {
                el::set_input(&app.doc, "key", "walk", None);
                el::set_input(
                    &app.doc,
                    "value",
                    &format!("step-{}", now_ms() as u64 % 1000),
                    None,
                );
                app.submit("put");
            }),
            false => None,
        };
        self.controls(control::hold_all(&ids, on), then);
    }

    /// Delivers the next message, all of them, or drops the next, of what `a` holds for `b`.
    fn held_action(&mut self, action: &str, a: NodeId, b: NodeId) {
        let model = self.timeline.live_model();
        let (req, line) = match action {
            "deliver" => (control::deliver(a, b, 1), stepping::delivered(model, a, b)),
            "deliver-five" => (
                control::deliver(a, b, 5),
                format!("delivered the next 5 messages {a}->{b} held (fewer if fewer waited)"),
            ),
            "drop-held" => (control::drop_held(a, b), stepping::dropped(model, a, b)),
            "release-held" => (
                control::hold_link(a, b, false),
                format!("released link {a}-{b}: what waited is delivered, in order"),
            ),
            _ => (
                control::deliver(a, b, u32::MAX),
                format!("delivered everything {a}->{b} held"),
            ),
        };
        self.view.held_selected = Some((a, b));
        self.explain(line);
        self.controls(vec![req], None);
    }

    /// The deliver key: the next message of the selected held direction.
    pub fn deliver_next(&mut self) {
        if self.trace.is_some() {
            return;
        }
        let model = self.timeline.live_model();
        if let Some((a, b)) = stepping::next_target(model, self.view.held_selected) {
            self.held_action("deliver", a, b);
        }
    }

    fn explain(&self, line: String) {
        if let Some(e) = el::by_id(&self.doc, "step-explain") {
            el::text(&e, &line);
        }
    }

    pub fn import(&mut self, bytes: &[u8]) {
        match trace_io::import(bytes) {
            Ok(t) => {
                self.trace = Some(t);
                let line = "trace imported: paused at its first picture";
                controls::show_status(&self.doc, line);
            }
            Err(e) => controls::show_status(&self.doc, &format!("import failed: {e}")),
        }
        self.view.invalidate();
    }
}

/// A node is only dialled once the launcher has heard from it (it reports a role): a process
/// that is still starting refuses connections, and the browser logs each refusal.
fn ready(n: &NodeView) -> bool {
    n.state == ProcessState::Up && n.role.is_some()
}

/// Whether `view` says anything the recording does not know yet (polls that change nothing
/// are not recorded).
fn cluster_changed(timeline: &Timeline, view: &ClusterView) -> bool {
    let live = timeline.live_model();
    live.leader != view.leader
        || live.links != view.links
        || view.nodes.iter().any(|n| {
            live.nodes
                .get(&n.id)
                .map(|m| m.process != Some(n.state) || m.ws != n.ws || m.pid != n.pid)
                .unwrap_or(true)
        })
}
