//! The node's event bus: what the node does, published to any number of `/events` subscribers.
//!
//! Publishing never blocks the event loop: events go into a bounded broadcast ring, and a
//! subscriber that falls behind loses the oldest events and is told how many (`lagged`).
//! Nothing is serialised when nobody listens.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use omnikv_core::event::{EventEnvelope, NodeEvent, NodeStatus};
use omnikv_core::NodeId;
use tokio::sync::broadcast;

/// Events buffered per subscriber before the oldest are dropped.
pub const EVENT_BUFFER_LEN: usize = 8192;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct EventBus {
    node: NodeId,
    tx: broadcast::Sender<Arc<str>>,
    /// The latest status frame, sent first to every new subscriber.
    latest_status: Arc<Mutex<Option<Arc<str>>>>,
}

pub struct EventPublisher {
    bus: EventBus,
    seq: u64,
}

impl EventBus {
    pub fn new(node: NodeId) -> (EventBus, EventPublisher) {
        let (tx, _) = broadcast::channel(EVENT_BUFFER_LEN);
        let bus = EventBus {
            node,
            tx,
            latest_status: Arc::new(Mutex::new(None)),
        };
        (bus.clone(), EventPublisher { bus, seq: 0 })
    }

    pub fn subscribe(&self) -> (Option<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let rx = self.tx.subscribe();
        let status = self.latest_status.lock().expect("not poisoned").clone();
        (status, rx)
    }

    /// A notice for a subscriber that lost `dropped` events (sequence 0: not from the node).
    pub fn lag_notice(&self, dropped: u64) -> String {
        let env = EventEnvelope {
            node: self.node,
            seq: 0,
            time_ms: now_ms(),
            event: NodeEvent::Lagged { dropped },
        };
        serde_json::to_string(&env).expect("events serialise")
    }
}

impl EventPublisher {
    /// Whether anyone listens; callers skip building expensive events otherwise.
    pub fn active(&self) -> bool {
        self.bus.tx.receiver_count() > 0
    }

    pub fn emit(&mut self, event: NodeEvent) {
        let is_status = matches!(event, NodeEvent::Status(_));
        if !self.active() && !is_status {
            return;
        }
        self.seq += 1;
        let env = EventEnvelope {
            node: self.bus.node,
            seq: self.seq,
            time_ms: now_ms(),
            event,
        };
        let frame: Arc<str> = serde_json::to_string(&env)
            .expect("events serialise")
            .into();
        if is_status {
            *self.bus.latest_status.lock().expect("not poisoned") = Some(frame.clone());
        }
        // An error only means there is no subscriber right now.
        let _ = self.bus.tx.send(frame);
    }

    pub fn status(&mut self, status: NodeStatus) {
        self.emit(NodeEvent::Status(status));
    }
}
