//! Whether a key is live in the committed table, remembered for the keys written last.
//!
//! The table keeps its number of live keys (`kv_table`), so each batch must learn, for every
//! key it writes, whether that key was live before. Asking RocksDB is a lookup that walks the
//! memtable's skip list, or, for a key written before the last flush, reads a table file's
//! blocks (9.7% of the nodes' samples at 64 clients in docs/performance-notes.md, section 36;
//! a share that grows as the cluster takes writes, section 47). The answer for a key the table
//! wrote recently is already known here, so only the others are looked up.
//!
//! Two generations bound it: keys go into the young one, and when that holds
//! [`GENERATION_KEYS`], it becomes the old one and the old one is dropped. So at most
//! [`LIVE_KEYS_MAX`] keys are held, and a key written again is kept while keys come and go
//! around it. Every entry is what the committed table says: the table updates it only after a
//! batch is written (`remember`), and forgets all of it when a snapshot replaces the table.
//!
//! A key is held as a 128-bit hash, keyed at random when the node starts, not as its text: 24
//! bytes whatever the key's length, and no allocation per key. The hash is std's keyed hash
//! (SipHash-1-3 today) taken twice, over the key with two different prefixes. A key not held
//! is taken for one that is with a probability of about n/2¹²⁸ per lookup (n keys held: below
//! 2⁻¹¹⁰), under 2⁻⁷⁰ after 2⁴⁰ lookups, and no client can aim for it without the node's key. If
//! it happened, this node's key count would be wrong for that pair of keys from then on (and
//! only the count: reads and writes never consult this).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// Keys one generation holds: what a hash table of 2^17 buckets holds before it grows (7/8 of
/// them), so that a generation's table never grows past 2^17 buckets of 25 bytes (3.1 MiB).
pub(crate) const GENERATION_KEYS: usize = (1 << 17) / 8 * 7;
/// Keys remembered at most.
pub(crate) const LIVE_KEYS_MAX: usize = 2 * GENERATION_KEYS;

/// A key's 128-bit hash (see the module comment).
type KeyHash = (u64, u64);

#[derive(Debug, Default)]
pub(crate) struct LiveKeys {
    /// Keyed at random per process: the hash of a key is not predictable from outside.
    hashing: RandomState,
    young: HashMap<KeyHash, bool>,
    /// The generation before: a key also in `young` has its newer state there.
    old: HashMap<KeyHash, bool>,
}

impl LiveKeys {
    fn hash(&self, key: &str) -> KeyHash {
        // Two values of one keyed hash over distinct inputs: 128 bits.
        (
            self.hashing.hash_one((0_u8, key)),
            self.hashing.hash_one((1_u8, key)),
        )
    }

    /// Whether `key` is live in the committed table, if it is remembered.
    pub(crate) fn get(&self, key: &str) -> Option<bool> {
        let hash = self.hash(key);
        self.young
            .get(&hash)
            .or_else(|| self.old.get(&hash))
            .copied()
    }

    /// Remembers that `key` is live (or not) in the committed table.
    pub(crate) fn remember(&mut self, key: &str, live: bool) {
        let hash = self.hash(key);
        if let Some(known) = self.young.get_mut(&hash) {
            *known = live;
            return;
        }
        if self.young.len() >= GENERATION_KEYS {
            // The oldest generation's table, emptied, holds the next: from the third
            // generation on none is allocated or grown.
            self.old.clear();
            std::mem::swap(&mut self.young, &mut self.old);
        }
        self.young.insert(hash, live);
        debug_assert!(self.len() <= LIVE_KEYS_MAX);
    }

    /// Forgets every key (the table was replaced).
    pub(crate) fn forget_all(&mut self) {
        self.young.clear();
        self.old.clear();
    }

    /// Keys held, in both generations.
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_state_of_a_key_wins_across_generations() {
        let mut live = LiveKeys::default();
        live.remember("a", true);
        // Push "a" into the old generation, then change it: the young copy must win.
        for i in 0..LIVE_KEYS_MAX / 2 {
            live.remember(&format!("k{i}"), true);
        }
        assert_eq!(live.get("a"), Some(true));
        live.remember("a", false);
        assert_eq!(live.get("a"), Some(false));
        assert_eq!(live.get("never"), None);
        live.forget_all();
        assert_eq!(live.get("a"), None);
    }

    #[test]
    fn it_holds_at_most_its_bound_and_every_key_of_the_last_generation() {
        let mut live = LiveKeys::default();
        for i in 0..3 * LIVE_KEYS_MAX {
            live.remember(&format!("k{i}"), i % 2 == 0);
            assert!(live.len() <= LIVE_KEYS_MAX);
        }
        for i in 3 * LIVE_KEYS_MAX - GENERATION_KEYS..3 * LIVE_KEYS_MAX {
            assert_eq!(live.get(&format!("k{i}")), Some(i % 2 == 0));
        }
        // A generation's table is sized once and never grows.
        assert!(live.young.capacity() < 1 << 17 && live.young.capacity() >= GENERATION_KEYS);
    }

    #[test]
    fn keys_of_any_length_are_told_apart() {
        let mut live = LiveKeys::default();
        let long = "x".repeat(64 << 10);
        live.remember(&long, true);
        live.remember(&format!("{long}y"), false);
        live.remember("", true);
        assert_eq!(live.get(&long), Some(true));
        assert_eq!(live.get(&format!("{long}y")), Some(false));
        assert_eq!(live.get(""), Some(true));
        assert_eq!(live.get("x"), None);
    }
}
