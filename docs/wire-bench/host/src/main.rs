//! Encodes the first 10,000 captured events with serde_json (what a node does for `/events`) and
//! with postcard, prints bytes per event and the min and median of 41 rounds of encoding and of
//! native decoding (on a shared machine the minimum is the least disturbed figure), and writes the same events as `OUT.jsonl` (one per line) and `OUT.postcard`
//! (varint length + postcard bytes each) for `decode-bench.mjs`.
use std::time::Instant;

use omnikv_core::event::EventEnvelope;

const EVENTS: usize = 10_000;

struct Timing {
    min_ms: f64,
    median_ms: f64,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "min {:.2} median {:.2}", self.min_ms, self.median_ms)
    }
}

fn time(mut round: impl FnMut()) -> Timing {
    let mut ms: Vec<f64> = (0..41)
        .map(|_| {
            let t = Instant::now();
            round();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    Timing {
        min_ms: ms[0],
        median_ms: ms[ms.len() / 2],
    }
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (input, prefix) = (&args[1], &args[2]);
    let text = std::fs::read_to_string(input).unwrap();
    let events: Vec<EventEnvelope> = text
        .lines()
        .take(EVENTS)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), EVENTS, "capture at least {EVENTS} events");
    let json: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let binary: Vec<Vec<u8>> = events
        .iter()
        .map(|e| postcard::to_allocvec(e).unwrap())
        .collect();
    for (e, b) in events.iter().zip(&binary) {
        assert_eq!(&postcard::from_bytes::<EventEnvelope>(b).unwrap(), e);
    }
    let mut framed = Vec::new();
    for b in &binary {
        varint(b.len(), &mut framed);
        framed.extend_from_slice(b);
    }
    // A JSON event costs its text and the newline that separates it from the next.
    let json_bytes: usize = json.iter().map(|s| s.len() + 1).sum();
    println!(
        "bytes/event: json {:.0}, postcard {:.0} (with its length prefix)",
        json_bytes as f64 / EVENTS as f64,
        framed.len() as f64 / EVENTS as f64
    );
    let mut sink = 0usize;
    let json_encode = time(|| {
        for e in &events {
            sink += serde_json::to_string(e).unwrap().len();
        }
    });
    let binary_encode = time(|| {
        for e in &events {
            sink += postcard::to_allocvec(e).unwrap().len();
        }
    });
    let json_decode = time(|| {
        for s in &json {
            sink += serde_json::from_str::<EventEnvelope>(s).unwrap().seq as usize;
        }
    });
    let binary_decode = time(|| {
        for b in &binary {
            sink += postcard::from_bytes::<EventEnvelope>(b).unwrap().seq as usize;
        }
    });
    println!("encode, ms per {EVENTS} events: json {json_encode}; postcard {binary_encode}");
    println!("native decode, ms per {EVENTS} events: json {json_decode}; postcard {binary_decode}");
    std::fs::write(format!("{prefix}.jsonl"), json.join("\n")).unwrap();
    std::fs::write(format!("{prefix}.postcard"), framed).unwrap();
    std::hint::black_box(sink);
}
