//! A bounded set of connections still in their opening handshake (WebSocket upgrade, peer
//! Hello), where admitting one more beyond the bound evicts the oldest.
//!
//! A connection that has not finished its handshake has proved nothing, yet it holds a socket
//! and a task. Waiting for a free place (a semaphore in front of `accept`) would let a thousand
//! silent sockets lock real clients out until their timeouts expire; refusing newcomers would
//! do the same. Evicting the oldest instead means a flood of idle sockets only ever delays a
//! real client by its own round trip: the flood's sockets are older than the client's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

pub struct HandshakePool {
    /// Connections in handshake, oldest first (keys grow with admission order).
    waiting: Mutex<BTreeMap<u64, CancellationToken>>,
    next_key: std::sync::atomic::AtomicU64,
    len_max: usize,
}

/// A place in the pool, given back when dropped (the handshake finished or failed).
pub struct HandshakeTicket {
    pool: Arc<HandshakePool>,
    key: u64,
    evicted: CancellationToken,
}

impl HandshakePool {
    pub fn new(len_max: usize) -> Arc<HandshakePool> {
        assert!(len_max > 0);
        Arc::new(HandshakePool {
            waiting: Mutex::new(BTreeMap::new()),
            next_key: Default::default(),
            len_max,
        })
    }

    /// Admits a new connection, evicting the oldest one if the pool is full.
    pub fn admit(self: &Arc<Self>) -> HandshakeTicket {
        let key = self
            .next_key
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let mut waiting = self.waiting.lock().expect("no panics while held");
        while waiting.len() >= self.len_max {
            if let Some((_, oldest)) = waiting.pop_first() {
                oldest.cancel();
            }
        }
        waiting.insert(key, evicted.clone());
        HandshakeTicket {
            pool: self.clone(),
            key,
            evicted,
        }
    }

    /// Connections now in handshake.
    pub fn len(&self) -> usize {
        self.waiting.lock().expect("no panics while held").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl HandshakeTicket {
    /// Completes when a newer connection has taken this one's place.
    pub fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.evicted.cancelled()
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        self.pool
            .waiting
            .lock()
            .expect("no panics while held")
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_is_evicted_and_finished_ones_leave() {
        let pool = HandshakePool::new(2);
        let a = pool.admit();
        let b = pool.admit();
        assert_eq!(pool.len(), 2);
        let c = pool.admit();
        assert!(a.evicted.is_cancelled());
        assert!(!b.evicted.is_cancelled() && !c.evicted.is_cancelled());
        assert_eq!(pool.len(), 2);
        drop(b);
        assert_eq!(pool.len(), 1);
        let _d = pool.admit();
        assert!(!c.evicted.is_cancelled(), "room was made by b finishing");
        drop(a);
        assert_eq!(
            pool.len(),
            2,
            "an evicted ticket's drop removes nothing else"
        );
    }
}
