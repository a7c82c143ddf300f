//! The nemesis's clients: sequential ones (the product's [`Client`], one request at a time,
//! puts, deletes, compare-and-swaps and reads) and pipelined ones ([`PipelinedWriter`], many writes in flight under
//! one session). Everything they see goes into one [`Record`]: the history for the
//! linearizability checker and the ledger of acknowledged writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnikv_core::{
    client::{ClientOp, ReadMode},
    txn::{Guard, TxnOp},
};
use omnikv_node::client::{CallError, Client};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::time::Instant;

use super::{ledger::UnknownWrite, NemesisConfig};
use crate::pipeline::{AckedWrite, PipelineReport, PipelinedWriter};
use omnikv_core::linearizability::{Op, Operation};

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Record {
    pub history: Vec<Operation>,
    /// The ledger: every acknowledged write.
    pub acked: Vec<AckedWrite>,
    pub unknown: Vec<UnknownWrite>,
    pub ok_reads: u64,
    pub failed_reads: u64,
    pub cas_swapped: u64,
    pub cas_failed: u64,
}

pub type Shared = Arc<Mutex<Record>>;

/// Microseconds since `start`: the history's clock.
pub fn micros(start: Instant, t: Instant) -> u64 {
    t.duration_since(start).as_micros() as u64
}

fn seed_of(config: &NemesisConfig, salt: u64) -> StdRng {
    StdRng::seed_from_u64(config.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

impl Record {
    /// Records a write's outcome: acknowledged at `index`, or unknown (`None`).
    fn write(&mut self, op: Operation, acked: Option<AckedWrite>) {
        match acked {
            Some(w) => self.acked.push(w),
            None => {
                let value = match &op.op {
                    Op::Put(v) => Some(v.clone()),
                    Op::Cas { new, .. } => new.clone(),
                    _ => None,
                };
                self.unknown.push((op.key.clone(), value));
            }
        }
        self.history.push(op);
    }
}

/// One sequential client: random puts (35%), deletes (10%), compare-and-swaps (15%) and reads
/// until `stop`.
pub struct Sequential {
    c: u64,
    rng: StdRng,
    client: Client,
    /// The value this client last saw for each key (`None`: absent): what its next
    /// compare-and-swap on the key expects, so that many of them succeed and many race.
    seen: std::collections::HashMap<String, Option<String>>,
    /// One client per node, for local reads (served by the node asked).
    locals: Vec<Client>,
    keys: u64,
    local_read_ratio: f64,
    start: Instant,
    record: Shared,
}

impl Sequential {
    pub fn new(
        c: u64,
        urls: &[String],
        config: &NemesisConfig,
        start: Instant,
        record: Shared,
    ) -> Sequential {
        let mut client = Client::new(urls.to_vec());
        client.attempt_timeout = Duration::from_millis(1500);
        // Long enough to outlast a whole-cluster restart, so few writes end unknown.
        client.total_timeout = Duration::from_secs(6);
        let locals = urls
            .iter()
            .map(|u| {
                let mut one = Client::new(vec![u.clone()]);
                one.total_timeout = Duration::from_millis(500);
                one
            })
            .collect();
        Sequential {
            c,
            rng: seed_of(config, c + 1),
            client,
            seen: std::collections::HashMap::new(),
            locals,
            keys: config.keys,
            local_read_ratio: config.local_read_ratio,
            start,
            record,
        }
    }

    pub async fn run(mut self, stop: Arc<AtomicBool>) {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let key = format!("k{}", self.rng.gen_range(0..self.keys));
            let roll: f64 = self.rng.gen();
            if roll < 0.35 {
                self.write(key, Some(format!("c{}-{n}", self.c))).await;
            } else if roll < 0.45 {
                self.write(key, None).await;
            } else if roll < 0.60 {
                self.cas(key, format!("x{}-{n}", self.c)).await;
            } else {
                self.read(key).await;
            }
        }
    }

    /// A put (`Some`) or delete, into the history and, if acknowledged, the ledger.
    async fn write(&mut self, key: String, value: Option<String>) {
        let (op, history_op) = match &value {
            Some(v) => (
                ClientOp::Put {
                    key: key.clone(),
                    value: v.clone(),
                },
                Op::Put(v.clone()),
            ),
            None => (ClientOp::Delete { key: key.clone() }, Op::Delete),
        };
        let call = Instant::now();
        let result = self.client.execute_indexed(op).await;
        let answered = Instant::now();
        if result.is_ok() {
            self.seen.insert(key.clone(), value.clone());
        }
        let acked = match result {
            Ok((_, _, index)) => Some(AckedWrite {
                id: self
                    .client
                    .last_write_id()
                    .expect("an acknowledged write was sent"),
                key: key.clone(),
                value,
                index: index.expect("a write names its index"),
                sent: call,
                answered,
            }),
            Err(CallError::Unavailable { .. }) => None,
            Err(e @ CallError::Rejected(_)) => panic!("request rejected: {e}"),
        };
        let op = Operation {
            client: self.c,
            key,
            op: history_op,
            call_us: micros(self.start, call),
            ret_us: acked.as_ref().map(|_| micros(self.start, answered)),
        };
        self.record.lock().unwrap().write(op, acked);
    }

    /// A compare-and-swap from the value this client last saw to `new`. Into the history
    /// whatever it answered; into the ledger only if it wrote.
    async fn cas(&mut self, key: String, new: String) {
        let expect = self.seen.get(&key).cloned().flatten();
        let guard = match &expect {
            Some(value) => Guard::Value {
                key: key.clone(),
                value: value.clone(),
            },
            None => Guard::Absent { key: key.clone() },
        };
        let op = TxnOp::Put {
            key: key.clone(),
            value: new.clone(),
        };
        let call = Instant::now();
        let result = self.client.txn(vec![guard], vec![op]).await;
        let answered = Instant::now();
        let (succeeded, acked) = match result {
            Ok((outcome, index)) => {
                let acked = outcome.succeeded.then(|| AckedWrite {
                    id: self.client.last_write_id().expect("a transaction was sent"),
                    key: key.clone(),
                    value: Some(new.clone()),
                    index: index.expect("a write names its index"),
                    sent: call,
                    answered,
                });
                // What it found is what the key holds now, as far as this client knows.
                let now = match outcome.found.first() {
                    Some(f) => f.value.clone(),
                    None => Some(new.clone()),
                };
                self.seen.insert(key.clone(), now);
                (Some(outcome.succeeded), acked)
            }
            Err(CallError::Unavailable { .. }) => (None, None),
            Err(e @ CallError::Rejected(_)) => panic!("request rejected: {e}"),
        };
        let op = Operation {
            client: self.c,
            key,
            op: Op::Cas {
                expect,
                new: Some(new),
                succeeded,
            },
            call_us: micros(self.start, call),
            ret_us: succeeded.map(|_| micros(self.start, answered)),
        };
        let mut record = self.record.lock().unwrap();
        record.cas_swapped += u64::from(succeeded == Some(true));
        record.cas_failed += u64::from(succeeded == Some(false));
        match (succeeded, acked) {
            // A comparison that failed wrote nothing: in the history, not in the ledger.
            (Some(false), _) => record.history.push(op),
            (_, acked) => record.write(op, acked),
        }
    }

    /// A read: linearizable, or (at `local_read_ratio`) local from a random node. Reads that
    /// fail constrain nothing and stay out of the history.
    async fn read(&mut self, key: String) {
        let local = self.rng.gen::<f64>() < self.local_read_ratio;
        let call = Instant::now();
        let result = if local {
            let one = self.rng.gen_range(0..self.locals.len());
            self.locals[one].get(&key, ReadMode::Local).await
        } else {
            self.client.get(&key, ReadMode::Linearizable).await
        };
        let ret = micros(self.start, Instant::now());
        let mut record = self.record.lock().unwrap();
        match result {
            Ok(v) => {
                self.seen.insert(key.clone(), v.clone());
                record.ok_reads += 1;
                record.history.push(Operation {
                    client: self.c,
                    key,
                    op: Op::Get(v),
                    call_us: micros(self.start, call),
                    ret_us: Some(ret),
                });
            }
            Err(_) => record.failed_reads += 1,
        }
    }
}

/// One pipelined writer: puts (80%) and deletes with `window` in flight through a random first
/// node, moving on (and resending newest first, with the same ids) when one stops answering.
/// Writes until `stop`, then waits for what is in flight until `deadline`.
pub async fn pipelined(
    w: u64,
    urls: &[String],
    config: &NemesisConfig,
    window: usize,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) -> PipelineReport {
    let mut rng = seed_of(config, 1000 + w);
    let mut urls = urls.to_vec();
    let first = rng.gen_range(0..urls.len());
    urls.rotate_left(first);
    let mut writer = PipelinedWriter::new(urls, window);
    writer.reply_timeout = Duration::from_millis(1500);
    let keys = config.keys;
    let mut n = 0u64;
    let ops = std::iter::from_fn(move || {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        n += 1;
        let key = format!("k{}", rng.gen_range(0..keys));
        Some(if rng.gen_bool(0.8) {
            ClientOp::Put {
                key,
                value: format!("p{w}-{n}"),
            }
        } else {
            ClientOp::Delete { key }
        })
    });
    writer.run_stream(ops, deadline).await
}

/// Adds a pipelined writer's outcome to the record: acknowledged writes with their
/// invocation and completion, unanswered ones as unknown.
pub fn add_pipelined(record: &mut Record, w: u64, report: PipelineReport, start: Instant) {
    let client = 100 + w;
    let op_of = |value: &Option<String>| match value {
        Some(v) => Op::Put(v.clone()),
        None => Op::Delete,
    };
    for a in report.acked {
        let op = Operation {
            client,
            key: a.key.clone(),
            op: op_of(&a.value),
            call_us: micros(start, a.sent),
            ret_us: Some(micros(start, a.answered)),
        };
        record.write(op, Some(a));
    }
    for u in report.indeterminate {
        let (key, value) = match u.req.op {
            ClientOp::Put { key, value } => (key, Some(value)),
            ClientOp::Delete { key } => (key, None),
            other => unreachable!("the writer sends writes only, not {other:?}"),
        };
        let op = Operation {
            client,
            key,
            op: op_of(&value),
            call_us: micros(start, u.sent),
            ret_us: None,
        };
        record.write(op, None);
    }
}
