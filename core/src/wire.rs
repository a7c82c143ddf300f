//! The two encodings of the one schema: JSON for people and tools, postcard for the page.
//!
//! Every wire type is described once, by its serde derives. A node writes it as JSON unless the
//! other end asked for postcard, a compact binary serde format that reads fields by position:
//! the visualizer's page asks for it on every WebSocket (subprotocol [`POSTCARD_PROTOCOL`]) and
//! every HTTP request it makes to the launcher (`Accept: `[`POSTCARD_MEDIA_TYPE`]), because
//! serde_json's derived readers are most of the page's wasm (docs/performance-notes.md, section
//! 29). A frame from a client says its own encoding: a WebSocket text frame is JSON, a binary
//! frame postcard.
//!
//! Postcard writes every field, in order, so no wire type may skip a field when it serialises
//! (`skip_serializing_if`): its reader would take the next field's bytes for it
//! (`tests/round_trip.rs` round-trips every type through both encodings).

use serde::{de::DeserializeOwned, Serialize};

use crate::DecodeError;

/// The WebSocket subprotocol by which a client asks a node for postcard frames.
pub const POSTCARD_PROTOCOL: &str = "omnikv.postcard";

/// The media type of a postcard body, in `Accept` and `Content-Type`.
pub const POSTCARD_MEDIA_TYPE: &str = "application/x-omnikv-postcard";

/// How one end writes its frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    #[default]
    Json,
    Postcard,
}

impl Encoding {
    /// The encoding a WebSocket upgrade asks for by its `Sec-WebSocket-Protocol` header (a
    /// comma-separated list).
    pub fn from_protocols(header: Option<&str>) -> Encoding {
        let offered = header.unwrap_or_default().split(',').map(str::trim);
        match offered.into_iter().any(|p| p == POSTCARD_PROTOCOL) {
            true => Encoding::Postcard,
            false => Encoding::Json,
        }
    }

    /// The encoding of an HTTP request's body, by its `Content-Type` header: postcard when it
    /// names [`POSTCARD_MEDIA_TYPE`], JSON otherwise.
    pub fn from_content_type(header: Option<&str>) -> Encoding {
        let media = header
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default();
        match media.trim() == POSTCARD_MEDIA_TYPE {
            true => Encoding::Postcard,
            false => Encoding::Json,
        }
    }

    /// Decodes one value written in this encoding, after checking its size.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8], limit: usize) -> Result<T, DecodeError> {
        match self {
            Encoding::Json => crate::decode_json(bytes, limit),
            Encoding::Postcard => decode_postcard(bytes, limit),
        }
    }

    /// The encoding an HTTP request asks for by its `Accept` header.
    pub fn from_accept(header: Option<&str>) -> Encoding {
        let accepted = header.unwrap_or_default().split(',');
        let named = |a: &str| a.split(';').next().unwrap_or_default().trim() == POSTCARD_MEDIA_TYPE;
        match accepted.into_iter().any(named) {
            true => Encoding::Postcard,
            false => Encoding::Json,
        }
    }
}

/// Decodes a postcard frame after checking its size. A frame must hold exactly one value: bytes
/// left over mean the two ends disagree on the schema, which a silent success would hide.
pub fn decode_postcard<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, DecodeError> {
    check_size(bytes, limit)?;
    let (value, rest) = take_postcard(bytes)?;
    match rest.is_empty() {
        true => Ok(value),
        false => Err(DecodeError::Postcard(format!(
            "{} bytes after the value",
            rest.len()
        ))),
    }
}

/// Decodes the first of several postcard values written one after another (an event frame
/// holds a burst of events), and returns the bytes after it.
pub fn take_postcard<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8]), DecodeError> {
    postcard::take_from_bytes(bytes).map_err(|e| DecodeError::Postcard(e.to_string()))
}

/// Appends `value`'s postcard encoding to `out`.
pub fn encode_postcard_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    *out = postcard::to_extend(value, std::mem::take(out)).expect(ENCODES);
}

/// `value`'s postcard encoding. (Not through [`encode_postcard_into`]: postcard's writer into a
/// fresh vector is the smaller code, and the page carries only this one.)
pub fn encode_postcard<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect(ENCODES)
}

/// Encoding into memory fails only for types postcard cannot write (maps of unknown length,
/// which no wire type has): a bug the round-trip tests catch.
const ENCODES: &str = "wire types encode in postcard";

pub(crate) fn check_size(bytes: &[u8], limit: usize) -> Result<(), DecodeError> {
    match bytes.len() > limit {
        true => Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        }),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_asks_for_postcard_by_name_only() {
        assert_eq!(Encoding::from_protocols(None), Encoding::Json);
        assert_eq!(
            Encoding::from_protocols(Some("chat, omnikv.postcard")),
            Encoding::Postcard
        );
        assert_eq!(
            Encoding::from_protocols(Some("omnikv.postcard2")),
            Encoding::Json
        );
        assert_eq!(
            Encoding::from_accept(Some("text/html, application/x-omnikv-postcard;q=0.9")),
            Encoding::Postcard
        );
        assert_eq!(
            Encoding::from_accept(Some("application/json")),
            Encoding::Json
        );
        assert_eq!(
            Encoding::from_content_type(Some("application/x-omnikv-postcard; charset=x")),
            Encoding::Postcard
        );
        for other in [None, Some("application/json"), Some("text/plain")] {
            assert_eq!(Encoding::from_content_type(other), Encoding::Json);
        }
    }

    #[test]
    fn a_frame_holds_one_value_exactly() {
        let mut two = encode_postcard(&7u64);
        encode_postcard_into(&9u64, &mut two);
        assert!(decode_postcard::<u64>(&two, 64).is_err());
        let (first, rest) = take_postcard::<u64>(&two).unwrap();
        assert_eq!((first, take_postcard::<u64>(rest).unwrap().0), (7, 9));
        assert_eq!(
            decode_postcard::<u64>(&[1; 65], 64),
            Err(DecodeError::TooLarge { len: 65, limit: 64 })
        );
    }
}
