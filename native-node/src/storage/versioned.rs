//! How a live key's value is stored: the 8-byte big-endian `mod_index` (the log index of the
//! key's last write), then the value's bytes.
//!
//! One encoding for the KV table (column family `kv`) and the stored snapshot's live keys, so
//! installing a snapshot or reading a page never re-encodes. The index comes first, in fixed
//! width, so a reader finds the value without parsing; a data directory written before keys
//! carried an index is refused when the store opens (see `db::FORMAT`), never misread.

use omnikv_core::session::Versioned;

use super::db::StorageError;

const INDEX_BYTES: usize = 8;

/// The stored form of `value` written at `mod_index`.
pub(crate) fn encode(mod_index: u64, value: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(INDEX_BYTES + value.len());
    bytes.extend_from_slice(&mod_index.to_be_bytes());
    bytes.extend_from_slice(value.as_bytes());
    bytes
}

/// A stored key as text. Keys are written from text, so one that is not UTF-8 is corruption,
/// reported rather than guessed at.
pub(crate) fn key_text(key: &[u8]) -> Result<String, StorageError> {
    String::from_utf8(key.to_vec()).map_err(|_| {
        StorageError::Corrupt(format!(
            "a stored key is not UTF-8: {:?}",
            String::from_utf8_lossy(key)
        ))
    })
}

/// A stored pair (of the table, or of the stored snapshot's live keys) as its key's text and
/// what [`encode`] wrote.
pub(crate) fn decode_entry(key: &[u8], bytes: &[u8]) -> Result<(String, Versioned), StorageError> {
    Ok((key_text(key)?, decode(key, bytes)?))
}

/// Reads back what [`encode`] wrote; `key` names the entry in the error.
pub(crate) fn decode(key: &[u8], bytes: &[u8]) -> Result<Versioned, StorageError> {
    let (mod_index, value) = split(key, bytes)?;
    let value = String::from_utf8(value.to_vec()).map_err(|_| corrupt(key, "is not UTF-8"))?;
    Ok(Versioned { value, mod_index })
}

/// The `mod_index` and the value's bytes of what [`encode`] wrote, unchecked and uncopied: for a
/// reader that only hashes the value (the table digest's fold).
pub(crate) fn split<'a>(key: &[u8], bytes: &'a [u8]) -> Result<(u64, &'a [u8]), StorageError> {
    if bytes.len() < INDEX_BYTES {
        return Err(corrupt(key, "is shorter than its mod_index"));
    }
    let (index, value) = bytes.split_at(INDEX_BYTES);
    let mod_index = u64::from_be_bytes(index.try_into().expect("split at 8"));
    Ok((mod_index, value))
}

fn corrupt(key: &[u8], what: &str) -> StorageError {
    StorageError::Corrupt(format!(
        "stored value of {:?} {what}",
        String::from_utf8_lossy(key)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_with_their_index_and_short_ones_are_refused() {
        let bytes = encode(0x0102_0304_0506_0708, "héllo");
        assert_eq!(&bytes[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let v = decode(b"k", &bytes).unwrap();
        assert_eq!(
            (v.value.as_str(), v.mod_index),
            ("héllo", 0x0102_0304_0506_0708)
        );
        assert_eq!(decode(b"k", &encode(3, "")).unwrap().value, "");
        assert!(decode(b"k", b"short").is_err());
    }

    #[test]
    fn a_pair_reads_back_as_its_key_and_value_and_a_key_not_utf8_is_corruption() {
        let (key, v) = decode_entry("clé".as_bytes(), &encode(9, "v")).unwrap();
        assert_eq!(
            (key.as_str(), v.value.as_str(), v.mod_index),
            ("clé", "v", 9)
        );
        let err = decode_entry(b"bad\xff", &encode(9, "v")).unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt(why) if why.contains("not UTF-8")),
            "{err}"
        );
    }
}
