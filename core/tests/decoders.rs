//! Every decoder of wire input, in both encodings, fed hostile bytes: it returns an error or a
//! value, never panics, and refuses oversized frames before parsing.

use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    client::{ClientOp, ClientRequest, ClientResponse, ReadMode},
    control::{ClusterView, LinkRequest},
    decode_json,
    event::EventEnvelope,
    limits::CLIENT_FRAME_BYTES_MAX,
    peer::PeerFrame,
    watch::{WatchFrame, WatchRequest},
    wire::{decode_postcard, encode_postcard, Encoding},
    DecodeError, RequestId,
};
use proptest::prelude::*;

fn decode_all(bytes: &[u8]) {
    let _ = decoders_accepting(bytes);
    let _ = accepting(bytes, Encoding::Postcard);
}

/// Runs every JSON decoder on `bytes` and names those that accepted them.
fn decoders_accepting(bytes: &[u8]) -> Vec<&'static str> {
    accepting(bytes, Encoding::Json)
}

/// Runs every decoder of `encoding` on `bytes` and names those that accepted them.
fn accepting(bytes: &[u8], encoding: Encoding) -> Vec<&'static str> {
    let verdicts = [
        (
            "ClientRequest",
            decode(bytes, encoding).is_ok_and(|r: ClientRequest| r.validate().is_ok()),
        ),
        ("ClientResponse", decodes::<ClientResponse>(bytes, encoding)),
        ("EventEnvelope", decodes::<EventEnvelope>(bytes, encoding)),
        ("PeerFrame", decodes::<PeerFrame>(bytes, encoding)),
        ("AdminRequest", decodes::<AdminRequest>(bytes, encoding)),
        ("AdminResponse", decodes::<AdminResponse>(bytes, encoding)),
        ("LinkRequest", decodes::<LinkRequest>(bytes, encoding)),
        ("ClusterView", decodes::<ClusterView>(bytes, encoding)),
        ("WatchRequest", decodes::<WatchRequest>(bytes, encoding)),
        ("WatchFrame", decodes::<WatchFrame>(bytes, encoding)),
    ];
    verdicts
        .into_iter()
        .filter_map(|(name, ok)| ok.then_some(name))
        .collect()
}

fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    encoding: Encoding,
) -> Result<T, DecodeError> {
    match encoding {
        Encoding::Json => decode_json(bytes, 1 << 20),
        Encoding::Postcard => decode_postcard(bytes, 1 << 20),
    }
}

fn decodes<T: serde::de::DeserializeOwned>(bytes: &[u8], encoding: Encoding) -> bool {
    decode::<T>(bytes, encoding).is_ok()
}

const VALID: &[&str] = &[
    r#"{"id":{"client":7,"seq":1},"op":{"put":{"key":"a","value":"b"}}}"#,
    r#"{"id":{"client":7,"seq":2},"op":{"get":{"key":"a","read":"local"}}}"#,
    r#"{"id":{"client":7,"seq":3},"op":{"txn":{"guards":[{"value":{"key":"a","value":"b"}},{"absent":{"key":"c"}},{"mod_index":{"key":"d","mod_index":4}}],"ops":[{"put":{"key":"a","value":"c"}},{"delete":{"key":"d"}}]}},"forget_below":3}"#,
    r#"{"id":{"client":7,"seq":4},"op":{"scan":{"range":{"prefix":"a","after":"ab","limit":10},"read":"local"}}}"#,
    r#"{"range":{"prefix":"a/"},"from_index":12}"#,
    r#"{"changes":{"changes":[{"index":3,"key":"a/1","value":null}],"up_to":4}}"#,
    r#"{"set_link":{"peer":2,"connected":false}}"#,
    r#"{"a":1,"b":2,"connected":false}"#,
    r#"{"paxos":{"msg_id":1,"msg":{"BLE":{"from":2,"to":1,"msg":{"Request":{"round":1}}}}}}"#,
    r#"{"node":1,"seq":3,"time_ms":4,"event":{"entries_decided":{"from_idx":0,"to_idx":1}}}"#,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0..VALID.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = VALID[which].as_bytes().to_vec();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let keep = cut.index(bytes.len() + 1);
        decode_all(&bytes[..keep]);
        decode_all(&bytes);
    }

    #[test]
    fn valid_requests_round_trip(client in any::<u64>(), seq in any::<u64>(), key in ".{0,40}", value in ".{0,80}", kind in 0..4u8) {
        let op = match kind {
            0 => ClientOp::Put { key: key.clone(), value },
            1 => ClientOp::Get { key: key.clone(), read: ReadMode::Linearizable },
            2 => ClientOp::Get { key: key.clone(), read: ReadMode::Local },
            _ => ClientOp::Delete { key: key.clone() },
        };
        let req = ClientRequest { id: RequestId { client, seq }, op, forget_below: 0 };
        let json = serde_json::to_vec(&req).unwrap();
        prop_assert_eq!(decode_json::<ClientRequest>(&json, CLIENT_FRAME_BYTES_MAX).unwrap(), req.clone());
        prop_assert_eq!(req.validate().is_ok(), !key.is_empty());
    }
}

#[test]
fn oversized_frames_are_refused_before_parsing() {
    let big = vec![b' '; CLIENT_FRAME_BYTES_MAX + 1];
    assert_eq!(
        decode_json::<ClientRequest>(&big, CLIENT_FRAME_BYTES_MAX),
        Err(DecodeError::TooLarge {
            len: CLIENT_FRAME_BYTES_MAX + 1,
            limit: CLIENT_FRAME_BYTES_MAX
        })
    );
}

#[test]
fn a_postcard_length_beyond_the_frame_is_an_error_not_an_allocation() {
    // A cluster view with no leader whose node list claims 2^56 - 1 entries, in 9 bytes.
    let mut frame = vec![0u8];
    frame.extend([0xff; 7]);
    frame.push(0x7f);
    assert!(decode_postcard::<ClusterView>(&frame, 1 << 20).is_err());
    let view: ClusterView =
        decode_json(br#"{"leader":null,"nodes":[],"links":[]}"#, 1 << 20).unwrap();
    assert_eq!(
        decode_postcard::<ClusterView>(&encode_postcard(&view), 1 << 20),
        Ok(view)
    );
    assert_eq!(
        decode_postcard::<ClientRequest>(&[1; 65], 64),
        Err(DecodeError::TooLarge { len: 65, limit: 64 })
    );
}

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    // Returning at all shows there was no stack overflow; every decoder must also refuse.
    let nested = "[".repeat(100_000);
    assert_eq!(decoders_accepting(nested.as_bytes()), Vec::<&str>::new());
    let nested = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    assert_eq!(decoders_accepting(nested.as_bytes()), Vec::<&str>::new());
}
