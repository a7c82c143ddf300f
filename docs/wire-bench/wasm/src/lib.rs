//! Exports the page's event decoding so that `decode-bench.mjs` can time it in a loop.
use omnikv_core::event::{frame_events, EventEnvelope};
use wasm_bindgen::prelude::*;

const LIMIT: usize = 1 << 20;

/// Decodes every event (line) of a frame; returns how many decoded.
#[wasm_bindgen(js_name = decodeEvents)]
pub fn decode_events(frame: &str) -> u32 {
    frame_events(frame).filter(|line| decode(line)).count() as u32
}

#[cfg(not(feature = "before"))]
fn decode(line: &str) -> bool {
    omnikv_core::decode_json::<EventEnvelope>(line.as_bytes(), LIMIT).is_ok()
}

#[cfg(feature = "before")]
fn decode(line: &str) -> bool {
    omnikv_core::json::decode::<EventEnvelope>(line, LIMIT).is_ok()
}

/// Decodes a buffer of events, each a varint length and postcard bytes; returns how many
/// decoded.
#[cfg(feature = "postcard")]
#[wasm_bindgen(js_name = decodePostcard)]
pub fn decode_postcard(mut buf: &[u8]) -> u32 {
    let mut decoded = 0;
    while let Some((len, at)) = varint(buf) {
        let Some(event) = buf.get(at..at + len) else {
            break;
        };
        decoded += postcard::from_bytes::<EventEnvelope>(event).is_ok() as u32;
        buf = &buf[at + len..];
    }
    decoded
}

#[cfg(feature = "postcard")]
fn varint(buf: &[u8]) -> Option<(usize, usize)> {
    let mut n = 0usize;
    for (i, b) in buf.iter().enumerate().take(4) {
        n |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}
