//! A short digest of a KV table, kept up to date write by write, so that replicas can be seen to
//! hold the same table without anyone reading a whole table.
//!
//! The digest is the XOR of one 64-bit hash per `(key, value)` pair: order-independent, so any
//! replica that holds the same pairs has the same digest however it got there (entries applied
//! one by one, or a snapshot installed), and a write changes it in O(1): XOR out the key's old
//! pair, XOR in the new one. A map holds each key once, so no pair can cancel itself. It is a
//! check for people watching, not a cryptographic proof.
//!
//! A node folds its whole table while it is watched (`native-node`'s `storage/table_digest`), so
//! the pair hash is XXH3: a specified algorithm, the same output on every platform and version,
//! and several bytes a cycle where a byte-at-a-time hash spends a multiply per byte.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// The digest of a table; the empty table's is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest(pub u64);

impl TableDigest {
    /// The digest of a whole table (a snapshot being installed, or a table written before
    /// digests were kept).
    /// Values are anything that reads as a string: a table's plain values, or its versioned
    /// ones (the digest covers values, not the indices they were written at).
    pub fn of<'a, V: AsRef<str> + 'a>(
        entries: impl IntoIterator<Item = (&'a String, &'a V)>,
    ) -> TableDigest {
        let mut d = TableDigest::default();
        for (k, v) in entries {
            d.toggle(k.as_bytes(), v.as_ref().as_bytes());
        }
        d
    }

    /// Key `key` changed from `old` to `new` (`None`: absent).
    pub fn write(&mut self, key: &str, old: Option<&str>, new: Option<&str>) {
        for v in [old, new].into_iter().flatten() {
            self.toggle(key.as_bytes(), v.as_bytes());
        }
    }

    /// The pair `(key, value)` enters the table, or leaves it if it was there: the one step
    /// every other method takes, here on bytes, as a table read raw from storage holds them.
    pub fn toggle(&mut self, key: &[u8], value: &[u8]) {
        self.0 ^= pair_hash(key, value);
    }

    /// Eight hex digits, what the page shows.
    pub fn short(self) -> String {
        format!("{:08x}", self.0 >> 32)
    }
}

/// The key's hash seeds the value's, so that moving bytes between key and value ("ab", "c"
/// against "a", "bc") changes the hash.
fn pair_hash(key: &[u8], value: &[u8]) -> u64 {
    xxh3_64_with_seed(value, xxh3_64(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn writes_in_any_order_reach_the_digest_of_the_table() {
        let mut table = BTreeMap::new();
        let mut d = TableDigest::default();
        let writes = [
            ("a", Some("1")),
            ("b", Some("2")),
            ("a", Some("3")),
            ("b", None),
            ("c", Some("1")),
        ];
        for (k, v) in writes {
            let old = table.get(k).cloned();
            d.write(k, old.as_deref(), v);
            match v {
                Some(v) => table.insert(k.to_string(), v.to_string()),
                None => table.remove(k),
            };
        }
        assert_eq!(d, TableDigest::of(&table));
        let mut other = TableDigest::default();
        other.write("c", None, Some("1"));
        other.write("a", None, Some("3"));
        assert_eq!(d, other, "the same pairs by another path");
        assert_ne!(
            TableDigest::of(&BTreeMap::from([("a".to_string(), "13".to_string())])),
            d
        );
        let mut swapped = TableDigest::default();
        swapped.write("a", None, Some("1"));
        swapped.write("c", None, Some("3"));
        assert_ne!(swapped, d, "keys and values are not interchangeable");
        d.write("a", Some("3"), None);
        d.write("c", Some("1"), None);
        assert_eq!(d, TableDigest::default(), "the empty table");
    }

    #[test]
    fn bytes_moved_between_key_and_value_change_the_digest() {
        let mut whole = TableDigest::default();
        whole.toggle(b"ab", b"c");
        let mut moved = TableDigest::default();
        moved.toggle(b"a", b"bc");
        assert_ne!(whole, moved);
        let mut by_str = TableDigest::default();
        by_str.write("ab", None, Some("c"));
        assert_eq!(whole, by_str, "a string's digest is its bytes'");
    }
}
