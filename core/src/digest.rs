//! A short digest of a KV table, kept up to date write by write, so that replicas can be seen to
//! hold the same table without anyone reading a whole table.
//!
//! The digest is the XOR of one 64-bit hash per `(key, value)` pair: order-independent, so any
//! replica that holds the same pairs has the same digest however it got there (entries applied
//! one by one, or a snapshot installed), and a write changes it in O(1): XOR out the key's old
//! pair, XOR in the new one. A map holds each key once, so no pair can cancel itself. It is a
//! check for people watching, not a cryptographic proof.

use serde::{Deserialize, Serialize};

/// FNV-1a's 64-bit parameters.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

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
            d.0 ^= pair_hash(k, v.as_ref());
        }
        d
    }

    /// Key `key` changed from `old` to `new` (`None`: absent).
    pub fn write(&mut self, key: &str, old: Option<&str>, new: Option<&str>) {
        for v in [old, new].into_iter().flatten() {
            self.0 ^= pair_hash(key, v);
        }
    }

    /// Eight hex digits, what the page shows.
    pub fn short(self) -> String {
        format!("{:08x}", self.0 >> 32)
    }
}

/// FNV-1a over the key, a separator no UTF-8 text contains, and the value; then a finalising
/// mix (splitmix64's), so that pairs differing in one byte differ in about half the bits, which
/// XOR-combining needs.
fn pair_hash(key: &str, value: &str) -> u64 {
    let mut h = FNV_OFFSET;
    let bytes = key.bytes().chain([0xFF]).chain(value.bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
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
}
