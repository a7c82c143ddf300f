//! The node's event bus: what the node does, published to any number of `/events` subscribers.
//!
//! Publishing never blocks the event loop: events go into a bounded broadcast ring, and a
//! subscriber that falls behind loses the oldest events and is told how many (`lagged`).
//! Nothing is serialised when nobody listens, and an encoding only while a subscriber asked for
//! it.
//!
//! Events are gathered for [`EVENT_FLUSH_INTERVAL`] and published as one frame ([`EventFrame`],
//! in each of the wire's encodings a subscriber asked for): a watcher gets one message per frame rather than one per event, and a page, which
//! draws 60 times a second, loses nothing by it.
//! Within a frame, consecutive appended, decided and applied runs are merged into one event of
//! each kind, and messages and client events are under a budget (see [`DETAIL_EVENTS_PER_S`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use omnikv_core::event::{event_takes_another, EventEnvelope, NodeEvent, NodeStatus};
use omnikv_core::wire::{encode_postcard_into, Encoding};
use omnikv_core::{KVCommand, NodeId};
use tokio::sync::broadcast;

use crate::event_rate::TokenBucket;

/// Frames buffered per subscriber before the oldest are dropped (a few seconds of a busy node).
pub const EVENT_BUFFER_LEN: usize = 256;
/// Longest time an event waits to be published (about one animation frame).
pub const EVENT_FLUSH_INTERVAL: Duration = Duration::from_millis(16);
/// A frame is published early once it holds this much, which bounds frames and the ring.
pub const EVENT_FRAME_BYTES_MAX: usize = 64 * 1024;
/// Message and client events (and appended entries' commands) published per second at most, on
/// average; the rest are counted and reported in `details_sampled`. A page draws about this many per node smoothly, while a
/// loaded node handles tens of thousands of messages a second: building an event for each
/// cost it a sixth of its throughput, for pictures nobody could follow.
pub const DETAIL_EVENTS_PER_S: f64 = 400.0;
/// Detail events allowed in a burst, so a quiet cluster's activity is shown in full.
pub const DETAIL_EVENTS_BURST: f64 = 200.0;
/// Bytes of keys and values that applied events carry per second at most, on average; past it
/// an applied event gives its count without its commands, and a page reads the table from a
/// dump instead. A loaded node applies megabytes a second, which every subscriber was sent,
/// for a table no page keeps whole (it keeps 2,000 keys).
pub const APPLIED_COMMAND_BYTES_PER_S: f64 = 64.0 * 1024.0;
/// Applied commands' bytes allowed in a burst: a quiet cluster's writes are all sent.
pub const APPLIED_COMMAND_BYTES_BURST: f64 = 256.0 * 1024.0;

/// The kinds of detail under the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    Message,
    Client,
    /// The commands of newly appended entries (watchers get them again when applied).
    Commands,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A burst of events in each encoding a subscriber asked for while it was gathered: JSON, one
/// envelope per line, and postcard, envelopes one after another. A frame kept for later
/// subscribers (the status, a lag notice) is written in both.
#[derive(Debug, Default)]
pub struct EventFrame {
    /// Empty when no JSON subscriber listened while the frame was gathered.
    pub json: String,
    /// Empty when no postcard subscriber listened while the frame was gathered.
    pub postcard: Vec<u8>,
}

/// Which encodings a frame is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wanted {
    json: bool,
    postcard: bool,
}

impl Wanted {
    const BOTH: Wanted = Wanted {
        json: true,
        postcard: true,
    };
}

impl EventFrame {
    fn of(env: &EventEnvelope) -> EventFrame {
        let mut frame = EventFrame::default();
        frame.push(env, Wanted::BOTH);
        frame
    }

    fn push(&mut self, env: &EventEnvelope, wanted: Wanted) {
        if wanted.json {
            if !self.json.is_empty() {
                self.json.push('\n');
            }
            let line = serde_json::to_string(env).expect("events serialise");
            self.json.push_str(&line);
        }
        if wanted.postcard {
            encode_postcard_into(env, &mut self.postcard);
        }
    }

    fn is_empty(&self) -> bool {
        self.json.is_empty() && self.postcard.is_empty()
    }

    /// The larger of the frame's encodings, in bytes.
    fn len(&self) -> usize {
        self.json.len().max(self.postcard.len())
    }

    /// The frame as `encoding` writes it; `None` for a frame gathered before a subscriber in
    /// that encoding came (the sequence numbers it then skips tell it so).
    pub fn message(&self, encoding: Encoding) -> Option<tokio_tungstenite::tungstenite::Message> {
        use tokio_tungstenite::tungstenite::Message;
        match encoding {
            Encoding::Json if self.json.is_empty() => None,
            Encoding::Json => Some(Message::text(self.json.as_str())),
            Encoding::Postcard if self.postcard.is_empty() => None,
            Encoding::Postcard => Some(Message::binary(self.postcard.clone())),
        }
    }
}

/// A subscription to the bus; while it lives, events are encoded in its encoding.
/// Its parts are reached through it, so that the count of its encoding's listeners lives
/// exactly as long as its receiver.
pub struct Subscription {
    status: Option<Arc<EventFrame>>,
    frames: broadcast::Receiver<Arc<EventFrame>>,
    /// Counts the subscriber in its encoding until it is dropped.
    _listener: Listener,
}

impl Subscription {
    /// The latest status when it subscribed, for the subscriber to start from.
    pub fn status(&self) -> Option<&Arc<EventFrame>> {
        self.status.as_ref()
    }

    pub fn frames(&mut self) -> &mut broadcast::Receiver<Arc<EventFrame>> {
        &mut self.frames
    }
}

struct Listener(Arc<AtomicUsize>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct EventBus {
    node: NodeId,
    tx: broadcast::Sender<Arc<EventFrame>>,
    /// The latest status frame, sent first to every new subscriber.
    latest_status: Arc<Mutex<Option<Arc<EventFrame>>>>,
    /// Subscribers that asked for JSON, and for postcard: events are encoded in each only while
    /// it has any.
    json_listeners: Arc<AtomicUsize>,
    postcard_listeners: Arc<AtomicUsize>,
}

pub struct EventPublisher {
    bus: EventBus,
    seq: u64,
    /// Encoded events not yet published.
    pending: EventFrame,
    last_flush: Instant,
    /// The budget of detail events.
    details: TokenBucket,
    /// The budget of applied events' commands, in bytes.
    applied_bytes: TokenBucket,
    /// Detail events counted instead of sent since the last report: messages, client events.
    skipped: (u64, u64),
    /// Log events waiting to be merged with the next of their kind (see [`log_slot`]).
    held: [Option<NodeEvent>; 3],
}

impl EventBus {
    pub fn new(node: NodeId) -> (EventBus, EventPublisher) {
        let (tx, _) = broadcast::channel(EVENT_BUFFER_LEN);
        let bus = EventBus {
            node,
            tx,
            latest_status: Arc::new(Mutex::new(None)),
            json_listeners: Arc::new(AtomicUsize::new(0)),
            postcard_listeners: Arc::new(AtomicUsize::new(0)),
        };
        let publisher = EventPublisher {
            bus: bus.clone(),
            seq: 0,
            pending: EventFrame::default(),
            last_flush: Instant::now(),
            details: TokenBucket::new(DETAIL_EVENTS_PER_S, DETAIL_EVENTS_BURST),
            applied_bytes: TokenBucket::new(
                APPLIED_COMMAND_BYTES_PER_S,
                APPLIED_COMMAND_BYTES_BURST,
            ),
            skipped: (0, 0),
            held: [None, None, None],
        };
        (bus, publisher)
    }

    pub fn subscribe(&self, encoding: Encoding) -> Subscription {
        let count = match encoding {
            Encoding::Json => &self.json_listeners,
            Encoding::Postcard => &self.postcard_listeners,
        };
        count.fetch_add(1, Ordering::Relaxed);
        let listener = Listener(count.clone());
        let frames = self.tx.subscribe();
        let status = self.latest_status.lock().expect("not poisoned").clone();
        Subscription {
            status,
            frames,
            _listener: listener,
        }
    }

    /// A notice for a subscriber that lost `dropped` events (sequence 0: not from the node).
    pub fn lag_notice(&self, dropped: u64) -> EventFrame {
        EventFrame::of(&EventEnvelope {
            node: self.node,
            seq: 0,
            time_ms: now_ms(),
            event: NodeEvent::Lagged { dropped },
        })
    }
}

impl EventPublisher {
    /// Whether anyone listens; callers skip building expensive events otherwise.
    pub fn active(&self) -> bool {
        self.bus.tx.receiver_count() > 0
    }

    pub fn emit(&mut self, mut event: NodeEvent) {
        let is_status = matches!(event, NodeEvent::Status(_));
        if !self.active() && !is_status {
            if log_slot(&event).is_some() {
                // The event is not built, but its number is used: a subscriber that arrives
                // later starts from the cached status, and the gap after it tells the
                // subscriber that the table moved on in ways it never saw.
                self.seq += 1;
            }
            return;
        }
        self.spend_on_applied(&mut event);
        match log_slot(&event) {
            Some(slot) => return self.hold(slot, event),
            // Messages and client traffic are drawn on their own: they may overtake held log
            // events. Everything else describes the log's state and waits for them.
            None if is_detail(&event) => {}
            None => self.release_held(),
        }
        self.write(event);
    }

    /// Holds a log event to merge it with the next one of its kind: a busy node appends,
    /// decides and applies in every turn, hundreds of times a second, and a watcher needs to
    /// know it once per frame.
    fn hold(&mut self, slot: usize, event: NodeEvent) {
        let Some(held) = self.held[slot].take() else {
            self.held[slot] = Some(event);
            return;
        };
        match merge_log_events(held, event) {
            Ok(merged) => self.held[slot] = Some(merged),
            Err(both) => {
                let (held, event) = *both;
                self.held[slot] = Some(held);
                self.release_held();
                self.held[slot] = Some(event);
            }
        }
    }

    /// Writes the held log events, in log order: appended, decided, applied.
    fn release_held(&mut self) {
        for slot in 0..self.held.len() {
            if let Some(event) = self.held[slot].take() {
                self.write(event);
            }
        }
    }

    fn write(&mut self, event: NodeEvent) {
        let is_status = matches!(event, NodeEvent::Status(_));
        self.seq += 1;
        let env = EventEnvelope {
            node: self.bus.node,
            seq: self.seq,
            time_ms: now_ms(),
            event,
        };
        if is_status {
            *self.bus.latest_status.lock().expect("not poisoned") =
                Some(Arc::new(EventFrame::of(&env)));
        }
        if !self.active() {
            return;
        }
        let wanted = Wanted {
            json: self.bus.json_listeners.load(Ordering::Relaxed) > 0,
            postcard: self.bus.postcard_listeners.load(Ordering::Relaxed) > 0,
        };
        self.pending.push(&env, wanted);
        if self.pending.len() >= EVENT_FRAME_BYTES_MAX {
            self.flush();
        }
    }

    /// Whether to build a detail event now: someone listens and the budget allows it. A refused
    /// event is counted for the next `details_sampled` report.
    pub fn wants_detail(&mut self, kind: Detail) -> bool {
        if !self.active() {
            return false;
        }
        if self.details.take(1.0) {
            true
        } else {
            self.skip_detail(kind);
            false
        }
    }

    /// Whether the next applied event may carry commands: someone listens and the byte budget
    /// is not spent. Callers gather applied commands only then.
    pub fn wants_applied_commands(&mut self) -> bool {
        self.active() && self.applied_bytes.holds(1.0)
    }

    /// Leaves out an applied event's commands unless the byte budget holds them all. An event
    /// carries at most `EVENT_COMMAND_BYTES_MAX` and one value, within a full budget unless
    /// that value alone is near the burst; such a write reaches a page through a dump.
    fn spend_on_applied(&mut self, event: &mut NodeEvent) {
        let NodeEvent::EntriesApplied { commands, .. } = event else {
            return;
        };
        let bytes = payload_bytes(commands);
        if !self.applied_bytes.take(bytes as f64) {
            commands.clear();
        }
    }

    /// Counts a detail event that is not sent (for example the reply to an unsent request).
    pub fn skip_detail(&mut self, kind: Detail) {
        if !self.active() {
            return;
        }
        match kind {
            Detail::Message => self.skipped.0 += 1,
            Detail::Client => self.skipped.1 += 1,
            Detail::Commands => {}
        }
    }

    /// Publishes the gathered events if the oldest has waited long enough. Called at the end of
    /// every turn of the event loop, which a tick starts at least every `tick_ms`.
    pub fn flush_due(&mut self) {
        if self.last_flush.elapsed() < EVENT_FLUSH_INTERVAL {
            return;
        }
        self.release_held();
        if self.skipped != (0, 0) {
            let (messages, client_events) = std::mem::take(&mut self.skipped);
            self.emit(NodeEvent::DetailsSampled {
                messages,
                client_events,
            });
        }
        if !self.pending.is_empty() {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let frame = Arc::new(std::mem::take(&mut self.pending));
        self.last_flush = Instant::now();
        // An error only means there is no subscriber right now.
        let _ = self.bus.tx.send(frame);
    }

    pub fn status(&mut self, status: NodeStatus) {
        self.emit(NodeEvent::Status(status));
    }
}

/// Where a log event is held: appended, decided, applied (their order when released).
fn log_slot(event: &NodeEvent) -> Option<usize> {
    match event {
        NodeEvent::EntriesAppended { .. } => Some(0),
        NodeEvent::EntriesDecided { .. } => Some(1),
        NodeEvent::EntriesApplied { .. } => Some(2),
        _ => None,
    }
}

fn is_detail(event: &NodeEvent) -> bool {
    matches!(
        event,
        NodeEvent::MessageSent(_)
            | NodeEvent::MessageReceived(_)
            | NodeEvent::ClientRequest { .. }
            | NodeEvent::ClientReply { .. }
            | NodeEvent::DetailsSampled { .. }
    )
}

/// Bytes of keys and values of `commands`.
fn payload_bytes(commands: &[KVCommand]) -> usize {
    commands.iter().map(KVCommand::payload_bytes).sum()
}

/// Whether an applied event carrying `held` would have taken every one of `next` too.
fn takes_all(held: &[KVCommand], next: &[KVCommand]) -> bool {
    let mut bytes = payload_bytes(held);
    next.iter().enumerate().all(|(i, c)| {
        let takes = event_takes_another(held.len() + i, bytes);
        bytes += c.payload_bytes();
        takes
    })
}

/// Adds to `commands`, the commands of the first `count` entries of a run, those of the
/// entries after them (`next`) that one event takes, keeping them a prefix of the run: none if
/// `commands` already misses some of its entries.
fn extend_prefix(commands: &mut Vec<KVCommand>, count: u64, next: Vec<KVCommand>) {
    if commands.len() as u64 != count {
        return;
    }
    let mut bytes = payload_bytes(commands);
    for c in next {
        if !event_takes_another(commands.len(), bytes) {
            break;
        }
        bytes += c.payload_bytes();
        commands.push(c);
    }
}

/// One event for two consecutive runs of the same kind, or both back (boxed: two events are
/// large, and merging is the common case) if they do not continue each other. Commands stay a
/// prefix of the run (`commands[i]` is entry `from_idx + i`). Two applied events that carry all
/// their commands are merged only if the merged event carries them all, since a watcher missing
/// some must refetch a table.
fn merge_log_events(
    held: NodeEvent,
    next: NodeEvent,
) -> Result<NodeEvent, Box<(NodeEvent, NodeEvent)>> {
    match (held, next) {
        (
            NodeEvent::EntriesAppended {
                from_idx,
                count,
                mut commands,
            },
            NodeEvent::EntriesAppended {
                from_idx: next_from,
                count: next_count,
                commands: next_commands,
            },
        ) if next_from == from_idx + count => {
            extend_prefix(&mut commands, count, next_commands);
            Ok(NodeEvent::EntriesAppended {
                from_idx,
                count: count + next_count,
                commands,
            })
        }
        (
            NodeEvent::EntriesDecided { from_idx, to_idx },
            NodeEvent::EntriesDecided {
                from_idx: next_from,
                to_idx: next_to,
            },
        ) if next_from == to_idx => Ok(NodeEvent::EntriesDecided {
            from_idx,
            to_idx: next_to,
        }),
        (
            NodeEvent::EntriesApplied {
                from_idx,
                count,
                mut commands,
                skipped_duplicates,
            },
            NodeEvent::EntriesApplied {
                from_idx: next_from,
                count: next_count,
                commands: next_commands,
                skipped_duplicates: next_skipped,
            },
        ) if next_from == from_idx + count
            && (!(commands.len() as u64 == count && next_commands.len() as u64 == next_count)
                || takes_all(&commands, &next_commands)) =>
        {
            // Either every command fits, or the watcher misses some of the two events' commands
            // whether they are merged or not (and reads a dump); the merged event keeps the
            // prefix it can.
            extend_prefix(&mut commands, count, next_commands);
            Ok(NodeEvent::EntriesApplied {
                from_idx,
                count: count + next_count,
                commands,
                skipped_duplicates: skipped_duplicates + next_skipped,
            })
        }
        (held, next) => Err(Box::new((held, next))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnikv_core::event::{frame_events, postcard_frame_events};
    use omnikv_core::limits::{EVENT_COMMANDS_MAX, EVENT_COMMAND_BYTES_MAX};

    #[test]
    fn details_beyond_the_budget_are_counted_and_reported() {
        let created = Instant::now();
        let (bus, mut publisher) = EventBus::new(1);
        assert!(
            !publisher.wants_detail(Detail::Message),
            "nothing is built for nobody"
        );
        let mut rx_sub = bus.subscribe(Encoding::Json);
        let rx = rx_sub.frames();
        let granted = (0..1000)
            .filter(|_| publisher.wants_detail(Detail::Message))
            .count();
        // The burst, plus what the budget refilled since the bucket was made: measured rather
        // than assumed, because a loaded machine can stall this loop for any time.
        let refill_max = (created.elapsed().as_secs_f64() * DETAIL_EVENTS_PER_S).ceil() as usize;
        let burst = DETAIL_EVENTS_BURST as usize;
        assert!(
            burst + refill_max < 1000,
            "the loop took {:?}: too long to tell a budget from none",
            created.elapsed()
        );
        assert!(
            (burst..=burst + refill_max).contains(&granted),
            "granted {granted} of 1000 at once, expected {burst} to {}",
            burst + refill_max
        );
        publisher.skip_detail(Detail::Client);
        std::thread::sleep(EVENT_FLUSH_INTERVAL);
        publisher.flush_due();
        let frame = rx.try_recv().expect("a frame was published");
        let events: Vec<EventEnvelope> = frame_events(&frame.json)
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(
            events.last().map(|e| &e.event),
            Some(&NodeEvent::DetailsSampled {
                messages: 1000 - granted as u64,
                client_events: 1
            })
        );
    }

    #[test]
    fn a_log_event_nobody_heard_leaves_a_gap_after_the_cached_status() {
        let (bus, mut publisher) = EventBus::new(2);
        publisher.status(status());
        publisher.emit(NodeEvent::EntriesApplied {
            from_idx: 0,
            count: 1,
            commands: vec![put(1)],
            skipped_duplicates: 0,
        });
        let mut subscription = bus.subscribe(Encoding::Json);
        let cached: EventEnvelope =
            serde_json::from_str(&subscription.status().unwrap().json).unwrap();
        let rx = subscription.frames();
        publisher.status(status());
        publisher.flush();
        let frame = rx.try_recv().unwrap();
        let next: EventEnvelope =
            serde_json::from_str(frame_events(&frame.json).next().unwrap()).unwrap();
        assert_eq!(
            (cached.seq, next.seq),
            (1, 3),
            "the applied entries left a gap"
        );
    }

    #[test]
    fn events_of_a_flush_interval_share_one_frame() {
        let (bus, mut publisher) = EventBus::new(2);
        // Kept whole: its listener must live while the frame is gathered.
        let _postcard = bus.subscribe(Encoding::Postcard);
        let mut rx_sub = bus.subscribe(Encoding::Json);
        let rx = rx_sub.frames();
        for peer in 1..=3 {
            publisher.emit(NodeEvent::LinkChanged {
                peer,
                connected: true,
            });
        }
        assert!(rx.try_recv().is_err(), "held until the interval has passed");
        std::thread::sleep(EVENT_FLUSH_INTERVAL);
        publisher.flush_due();
        let frame = rx.try_recv().unwrap();
        let seqs: Vec<u64> = frame_events(&frame.json)
            .map(|e| serde_json::from_str::<EventEnvelope>(e).unwrap().seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        // The page's copy of the frame holds the same envelopes.
        let json: Vec<EventEnvelope> = frame_events(&frame.json)
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let postcard: Vec<EventEnvelope> = postcard_frame_events(&frame.postcard)
            .map(Result::unwrap)
            .collect();
        assert_eq!(postcard, json);
    }

    /// Whether `frame` carries its events in `encoding`.
    fn encoded_in(frame: &EventFrame, encoding: Encoding) -> bool {
        match encoding {
            Encoding::Json => !frame.json.is_empty(),
            Encoding::Postcard => !frame.postcard.is_empty(),
        }
    }

    #[test]
    fn events_are_encoded_in_each_encoding_only_while_a_subscriber_asks_for_it() {
        let link = NodeEvent::LinkChanged {
            peer: 1,
            connected: true,
        };
        for (asked, other) in [
            (Encoding::Postcard, Encoding::Json),
            (Encoding::Json, Encoding::Postcard),
        ] {
            let (bus, mut publisher) = EventBus::new(2);
            let mut other_sub = bus.subscribe(other);
            let frames = other_sub.frames();
            publisher.emit(link.clone());
            publisher.flush();
            let frame = frames.try_recv().unwrap();
            assert!(encoded_in(&frame, other), "{other:?}");
            assert!(
                !encoded_in(&frame, asked),
                "{asked:?} before it was asked for"
            );
            assert!(frame.message(asked).is_none());
            let asking = bus.subscribe(asked);
            publisher.emit(link.clone());
            publisher.flush();
            assert!(encoded_in(&frames.try_recv().unwrap(), asked), "{asked:?}");
            drop(asking);
            publisher.emit(link.clone());
            publisher.flush();
            let frame = frames.try_recv().unwrap();
            assert!(
                !encoded_in(&frame, asked),
                "{asked:?} after its subscriber left"
            );
        }
    }

    #[test]
    fn the_status_kept_for_the_next_subscriber_is_in_both_encodings() {
        let (bus, mut publisher) = EventBus::new(2);
        let _postcard = bus.subscribe(Encoding::Postcard);
        publisher.status(status());
        let later = bus.subscribe(Encoding::Postcard);
        let cached = later.status().unwrap();
        assert!(encoded_in(cached, Encoding::Json) && encoded_in(cached, Encoding::Postcard));
    }

    fn status() -> NodeStatus {
        NodeStatus {
            id: 2,
            role: omnikv_core::event::Role::Follower,
            leader: None,
            ballot: Default::default(),
            promise: Default::default(),
            accepted_idx: 0,
            decided_idx: 0,
            compacted_idx: 0,
            applied_idx: 0,
            kv_digest: None,
            kv_digest_idx: None,
            peers: Vec::new(),
            data_dir: String::new(),
            started_at_ms: 0,
            pid: 1,
        }
    }

    fn put(seq: u64) -> omnikv_core::KVCommand {
        omnikv_core::KVCommand::Put {
            id: omnikv_core::RequestId { client: 1, seq },
            key: format!("k{seq}"),
            value: "v".into(),
            forget_below: 0,
        }
    }

    fn published(
        publisher: &mut EventPublisher,
        rx: &mut broadcast::Receiver<Arc<EventFrame>>,
    ) -> Vec<NodeEvent> {
        std::thread::sleep(EVENT_FLUSH_INTERVAL);
        publisher.flush_due();
        let frame = rx.try_recv().unwrap();
        frame_events(&frame.json)
            .map(|e| serde_json::from_str::<EventEnvelope>(e).unwrap().event)
            .collect()
    }

    #[test]
    fn log_runs_of_a_frame_merge_and_keep_their_order() {
        let (bus, mut publisher) = EventBus::new(1);
        let mut rx_sub = bus.subscribe(Encoding::Json);
        let rx = rx_sub.frames();
        for turn in 0..3u64 {
            publisher.emit(NodeEvent::EntriesAppended {
                from_idx: 2 * turn,
                count: 2,
                commands: vec![put(2 * turn), put(2 * turn + 1)],
            });
            publisher.emit(NodeEvent::EntriesDecided {
                from_idx: 2 * turn,
                to_idx: 2 * turn + 2,
            });
            publisher.emit(NodeEvent::LinkChanged {
                peer: 2,
                connected: true,
            });
            publisher.emit(NodeEvent::EntriesApplied {
                from_idx: 2 * turn,
                count: 2,
                commands: vec![put(2 * turn), put(2 * turn + 1)],
                skipped_duplicates: 0,
            });
        }
        // A link event describes state, so every log event emitted before it goes out first;
        // an applied run held after it waits for the next state event or the frame's end, and
        // may follow the next turn's appended run (each kind keeps its own order).
        let events = published(&mut publisher, rx);
        let kinds: Vec<String> = events
            .iter()
            .map(|e| {
                let v = serde_json::to_value(e).unwrap();
                v.as_object().unwrap().keys().next().unwrap().clone()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "entries_appended",
                "entries_decided",
                "link_changed",
                "entries_appended",
                "entries_decided",
                "entries_applied",
                "link_changed",
                "entries_appended",
                "entries_decided",
                "entries_applied",
                "link_changed",
                "entries_applied",
            ]
        );
        let applied_from: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::EntriesApplied { from_idx, .. } => Some(*from_idx),
                _ => None,
            })
            .collect();
        assert_eq!(applied_from, [0, 2, 4]);

        // Without interruptions, a frame holds one event of each kind for all the turns.
        for turn in 0..3u64 {
            publisher.emit(NodeEvent::EntriesAppended {
                from_idx: 6 + turn,
                count: 1,
                commands: vec![],
            });
            publisher.emit(NodeEvent::MessageSent(omnikv_core::event::MessageInfo {
                msg_id: turn,
                from: 1,
                to: 2,
                kind: omnikv_core::event::MessageKind::Accepted,
                ballot: None,
                decided_idx: None,
                accepted_idx: None,
                sync_idx: None,
                entry_count: 0,
                snapshot: None,
            }));
            publisher.emit(NodeEvent::EntriesApplied {
                from_idx: 6 + turn,
                count: 1,
                commands: vec![put(6 + turn)],
                skipped_duplicates: 1,
            });
        }
        let events = published(&mut publisher, rx);
        assert_eq!(events.len(), 5, "{events:?}");
        assert!(events.contains(&NodeEvent::EntriesAppended {
            from_idx: 6,
            count: 3,
            commands: vec![],
        }));
        assert_eq!(
            events.last(),
            Some(&NodeEvent::EntriesApplied {
                from_idx: 6,
                count: 3,
                commands: vec![put(6), put(7), put(8)],
                skipped_duplicates: 3,
            })
        );
    }

    #[test]
    fn an_applied_run_is_never_cut_short_by_merging() {
        let full = |from: u64, n: u64| NodeEvent::EntriesApplied {
            from_idx: from,
            count: n,
            commands: (from..from + n).map(put).collect(),
            skipped_duplicates: 0,
        };
        let max = EVENT_COMMANDS_MAX as u64;
        assert!(merge_log_events(full(0, max - 1), full(max - 1, 1)).is_ok());
        assert!(merge_log_events(full(0, max), full(max, 1)).is_err());
        assert!(
            merge_log_events(full(0, 2), full(3, 1)).is_err(),
            "not contiguous"
        );
        // A run already missing commands loses nothing more a watcher could use by merging.
        let cut = |from: u64, n: u64| NodeEvent::EntriesApplied {
            from_idx: from,
            count: n,
            commands: vec![],
            skipped_duplicates: 0,
        };
        let merged = |held, next| match merge_log_events(held, next) {
            Ok(NodeEvent::EntriesApplied {
                from_idx,
                count,
                commands,
                ..
            }) => (from_idx, count, commands),
            other => panic!("contiguous runs with missing commands merge: {other:?}"),
        };
        assert_eq!(merged(cut(0, max), full(max, 2)), (0, max + 2, vec![]));
        assert_eq!(
            merged(full(0, 2), cut(2, max)),
            (0, max + 2, vec![put(0), put(1)]),
            "the held run's commands stay, a prefix of the merged run"
        );
    }

    #[test]
    fn applied_commands_past_the_byte_budget_are_left_out_and_counted() {
        let (bus, mut publisher) = EventBus::new(1);
        assert!(
            !publisher.wants_applied_commands(),
            "nothing is gathered for nobody"
        );
        let mut subscription = bus.subscribe(Encoding::Json);
        let rx = subscription.frames();
        assert!(publisher.wants_applied_commands());
        // Runs of 16 puts of 16 KiB each (256 KiB, the whole burst): the first is sent whole,
        // the next finds the budget spent well below a run's bytes.
        let run = |from: u64| NodeEvent::EntriesApplied {
            from_idx: from,
            count: 16,
            commands: (from..from + 16)
                .map(|seq| match put(seq) {
                    KVCommand::Put { id, key, .. } => KVCommand::Put {
                        id,
                        key,
                        value: "v".repeat(16 * 1024 - 3),
                        forget_below: 0,
                    },
                    _ => unreachable!(),
                })
                .collect(),
            skipped_duplicates: 0,
        };
        const {
            assert!(APPLIED_COMMAND_BYTES_BURST <= 16.0 * 16.0 * 1024.0);
            assert!(APPLIED_COMMAND_BYTES_PER_S < 16.0 * 16.0 * 1024.0);
        }
        let first = run(0);
        publisher.emit(first.clone());
        publisher.emit(run(16));
        publisher.emit(run(32));
        let events = published(&mut publisher, rx);
        let applied: Vec<&NodeEvent> = events
            .iter()
            .filter(|e| matches!(e, NodeEvent::EntriesApplied { .. }))
            .collect();
        let NodeEvent::EntriesApplied { commands: sent, .. } = first else {
            unreachable!()
        };
        assert_eq!(
            applied,
            [&NodeEvent::EntriesApplied {
                from_idx: 0,
                count: 48,
                commands: sent,
                skipped_duplicates: 0,
            }],
            "the first run's commands, the next runs counted without theirs (and merged)"
        );
    }

    #[test]
    fn events_carry_a_bounded_number_of_bytes_of_commands() {
        let big = |seq: u64| match put(seq) {
            KVCommand::Put { id, key, .. } => KVCommand::Put {
                id,
                key,
                value: "v".repeat(EVENT_COMMAND_BYTES_MAX / 2),
                forget_below: 0,
            },
            _ => unreachable!(),
        };
        let appended = |from: u64, n: u64| NodeEvent::EntriesAppended {
            from_idx: from,
            count: n,
            commands: (from..from + n).map(big).collect(),
        };
        let Ok(NodeEvent::EntriesAppended {
            count, commands, ..
        }) = merge_log_events(appended(0, 2), appended(2, 2))
        else {
            panic!("contiguous appended runs merge");
        };
        assert_eq!(count, 4);
        assert_eq!(
            commands,
            vec![big(0), big(1)],
            "a prefix, cut at the byte bound"
        );
        let applied = |from: u64, n: u64| NodeEvent::EntriesApplied {
            from_idx: from,
            count: n,
            commands: (from..from + n).map(big).collect(),
            skipped_duplicates: 0,
        };
        assert!(merge_log_events(applied(0, 1), applied(1, 1)).is_ok());
        assert!(
            merge_log_events(applied(0, 2), applied(2, 1)).is_err(),
            "an applied run is not merged past the byte bound"
        );
    }
}
