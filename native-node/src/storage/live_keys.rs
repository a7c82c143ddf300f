//! Whether a key is live in the committed table, remembered for the keys written last.
//!
//! The table keeps its number of live keys (`kv_table`), so each batch must learn, for every
//! key it writes, whether that key was live before. Asking RocksDB is a lookup that mostly walks
//! the memtable's skip list (the key was written a little earlier): 9.7% of the nodes' samples
//! at 64 clients (docs/performance-notes.md, section 36). The answer for a key the table wrote
//! recently is already known here, so only the others are looked up.
//!
//! Two generations bound it: keys go into the young one, and when that holds half the bound of
//! keys or key bytes, it becomes the old one and the old one is dropped. So at most
//! [`LIVE_KEYS_MAX`] keys and [`LIVE_KEY_BYTES_MAX`] bytes of keys are held, and a key written
//! again is kept while keys come and go around it. Every entry is what the committed table
//! says: the table updates it only after a batch is written (`remember`), and forgets all of it
//! when a snapshot replaces the table.

use std::collections::HashMap;

/// Keys remembered at most.
pub(crate) const LIVE_KEYS_MAX: usize = 1 << 17;
/// Bytes of keys remembered at most.
pub(crate) const LIVE_KEY_BYTES_MAX: usize = 8 << 20;

#[derive(Debug, Default)]
pub(crate) struct LiveKeys {
    young: HashMap<Box<str>, bool>,
    young_bytes: usize,
    /// The generation before: a key also in `young` has its newer state there.
    old: HashMap<Box<str>, bool>,
}

impl LiveKeys {
    /// Whether `key` is live in the committed table, if it is remembered.
    pub(crate) fn get(&self, key: &str) -> Option<bool> {
        self.young.get(key).or_else(|| self.old.get(key)).copied()
    }

    /// Remembers that `key` is live (or not) in the committed table.
    pub(crate) fn remember(&mut self, key: &str, live: bool) {
        if let Some(known) = self.young.get_mut(key) {
            *known = live;
            return;
        }
        if self.young.len() >= LIVE_KEYS_MAX / 2
            || self.young_bytes + key.len() > LIVE_KEY_BYTES_MAX / 2
        {
            // Sized once for the generation, so that it never grows by rehashing.
            let young = HashMap::with_capacity(LIVE_KEYS_MAX / 2);
            self.old = std::mem::replace(&mut self.young, young);
            self.young_bytes = 0;
        }
        self.young_bytes += key.len();
        self.young.insert(key.into(), live);
    }

    /// Forgets every key (the table was replaced).
    pub(crate) fn forget_all(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_bytes = 0;
    }

    /// Keys held, in both generations.
    #[cfg(test)]
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
    fn it_holds_at_most_its_bounds_of_keys_and_bytes() {
        let mut live = LiveKeys::default();
        for i in 0..3 * LIVE_KEYS_MAX {
            live.remember(&format!("k{i}"), i % 2 == 0);
            assert!(live.len() <= LIVE_KEYS_MAX);
        }
        // The last keys written are all remembered.
        for i in 3 * LIVE_KEYS_MAX - LIVE_KEYS_MAX / 2..3 * LIVE_KEYS_MAX {
            assert_eq!(live.get(&format!("k{i}")), Some(i % 2 == 0));
        }
        let mut live = LiveKeys::default();
        let long = "x".repeat(64 << 10);
        for i in 0..1000 {
            live.remember(&format!("{i}{long}"), true);
            let bytes: usize = live
                .young
                .keys()
                .chain(live.old.keys())
                .map(|k| k.len())
                .sum();
            assert!(bytes <= LIVE_KEY_BYTES_MAX);
        }
    }
}
