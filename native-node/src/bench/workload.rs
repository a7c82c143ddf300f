//! What a benchmark client does next: which operation, on which key, with which value.
//!
//! Kept free of I/O so that every backend faces exactly the same sequence of operations and the
//! mix can be unit-tested.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Every key is this and its number in [`KEY_DIGITS`] digits, so keys sort as their numbers.
const KEY_PREFIX: &str = "bench-";
const KEY_DIGITS: usize = 8;
/// A scan's prefix leaves out a key's last two digits...
const SCAN_PREFIX_DIGITS: usize = 6;
/// ...so it names this many keys (100), and a scan asks for exactly that many.
pub const SCAN_LIMIT_KEYS: u32 = 10u32.pow((KEY_DIGITS - SCAN_PREFIX_DIGITS) as u32);
/// Seeds the value every key is preloaded with: the same for every system, run and client.
const PRELOAD_SEED: u64 = 0x9e10ad;

/// Which operations the clients of a run issue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// Puts and linearizable gets of one key each, `write_percent` of them puts.
    #[default]
    PutGet,
    /// Linearizable scans of a prefix drawn uniformly ([`Op::Scan`]).
    Scan,
    /// Compare-and-puts of keys drawn uniformly ([`Op::Cas`]).
    Cas,
}

impl WorkloadKind {
    /// Every kind, in report order.
    pub const ALL: [WorkloadKind; 3] =
        [WorkloadKind::PutGet, WorkloadKind::Scan, WorkloadKind::Cas];

    /// Whether every key of the key space must hold [`preload_value`] before the run: scans
    /// count the keys they find and CAS compares values, so their answers are checked.
    pub fn needs_preload(self) -> bool {
        self != WorkloadKind::PutGet
    }

    /// The operations, as reports name them.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::PutGet => "puts and gets",
            WorkloadKind::Scan => "scans",
            WorkloadKind::Cas => "CAS",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(
        "a scan workload needs {SCAN_LIMIT_KEYS} to 10^{KEY_DIGITS} keys, so that every prefix \
         it draws names {SCAN_LIMIT_KEYS} keys ({key_space} given)"
    )]
    ScanKeySpace { key_space: u64 },
}

/// The shape of a workload: shared by every client of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// Keys are `bench-00000000` .. `bench-{key_space-1}`, drawn uniformly.
    pub key_space: u64,
    pub value_bytes: usize,
    /// Share of operations that are puts; the rest are gets (with [`WorkloadKind::PutGet`]).
    pub write_percent: u8,
    /// Every operation puts a key never used before and deletes it (see
    /// [`Op::PutThenDelete`]); `kind`, `key_space` and `write_percent` are ignored.
    pub distinct_deletes: bool,
}

impl Workload {
    /// Refuses a workload whose operations could not be answered as it expects.
    pub fn check(&self) -> Result<(), WorkloadError> {
        let keys = u64::from(SCAN_LIMIT_KEYS)..=10u64.pow(KEY_DIGITS as u32);
        if self.kind == WorkloadKind::Scan && !keys.contains(&self.key_space) {
            return Err(WorkloadError::ScanKeySpace {
                key_space: self.key_space,
            });
        }
        Ok(())
    }

    /// Whether every key must hold [`preload_value`] before the run.
    pub fn needs_preload(&self) -> bool {
        self.kind.needs_preload() && !self.distinct_deletes
    }

    /// Prefixes a scan draws from: those of which every key is in the key space.
    fn scan_prefixes(&self) -> u64 {
        (self.key_space / u64::from(SCAN_LIMIT_KEYS)).max(1)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: String,
    },
    Get {
        key: String,
    },
    /// A put of `key` and then its delete, counted as one operation. With a fresh key each
    /// time this measures what deleted keys cost the cluster: a design that keeps tombstones
    /// in its snapshots grows by one per operation, one that forgets deleted keys does not.
    PutThenDelete {
        key: String,
        value: String,
    },
    /// A linearizable scan of the keys starting with `prefix`, at most [`SCAN_LIMIT_KEYS`]:
    /// the prefix names exactly that many keys and all were preloaded, so an answer with
    /// fewer is wrong (an error).
    Scan {
        prefix: String,
    },
    /// Compare-and-put: put `value` if the key holds `expect`. A stream expects the value
    /// every key was preloaded with ([`preload_value`]) and puts that same value back, so
    /// every CAS succeeds on every system and none pays for retries; a failed comparison is an
    /// error, so a broken CAS cannot look fast.
    Cas {
        key: String,
        expect: String,
        value: String,
    },
    /// Puts of several keys in one request, applied together (OmniKV: a transaction without
    /// guards; etcd: a txn of puts): how a preload or a fill writes a large table quickly.
    PutMany {
        puts: Vec<(String, String)>,
    },
}

impl Op {
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. } | Op::Scan { .. })
    }
}

/// One client's operation stream (deterministic for a given seed).
pub struct OpStream {
    workload: Workload,
    rng: StdRng,
    /// What this stream's puts write.
    value: String,
    /// What every key holds before a run that needs it ([`preload_value`]).
    preloaded: String,
    /// This stream's seed, to name distinct keys apart from other clients' ones.
    seed: u64,
    /// Distinct keys used so far.
    distinct: u64,
}

impl OpStream {
    pub fn new(workload: Workload, seed: u64) -> OpStream {
        let mut rng = StdRng::seed_from_u64(seed);
        let value = letters(&mut rng, workload.value_bytes);
        OpStream {
            preloaded: preload_value(workload.value_bytes),
            workload,
            rng,
            value,
            seed,
            distinct: 0,
        }
    }

    pub fn next_op(&mut self) -> Op {
        if self.workload.distinct_deletes {
            // Distinct within a run: clients have distinct seeds. A second run with the same
            // seeds reuses the names, which are deleted by then.
            self.distinct += 1;
            return Op::PutThenDelete {
                key: format!("gone-{:x}-{}", self.seed, self.distinct),
                value: self.value.clone(),
            };
        }
        match self.workload.kind {
            WorkloadKind::PutGet => {
                let key = self.any_key();
                if self.rng.gen_range(0..100u8) < self.workload.write_percent {
                    Op::Put {
                        key,
                        value: self.value.clone(),
                    }
                } else {
                    Op::Get { key }
                }
            }
            WorkloadKind::Scan => Op::Scan {
                prefix: scan_prefix(self.rng.gen_range(0..self.workload.scan_prefixes())),
            },
            WorkloadKind::Cas => Op::Cas {
                key: self.any_key(),
                expect: self.preloaded.clone(),
                value: self.preloaded.clone(),
            },
        }
    }

    fn any_key(&mut self) -> String {
        key_name(self.rng.gen_range(0..self.workload.key_space.max(1)))
    }
}

pub fn key_name(n: u64) -> String {
    format!("{KEY_PREFIX}{n:0KEY_DIGITS$}")
}

/// The prefix of keys `group * 100` to `group * 100 + 99`.
pub fn scan_prefix(group: u64) -> String {
    format!("{KEY_PREFIX}{group:0SCAN_PREFIX_DIGITS$}")
}

/// The value every key of the key space holds before a scan or CAS run.
pub fn preload_value(value_bytes: usize) -> String {
    letters(&mut StdRng::seed_from_u64(PRELOAD_SEED), value_bytes)
}

/// A value of its own for key `n`: random letters, so that a table of them compresses as
/// little as a table of real values would, not to one value's worth.
pub fn distinct_value(n: u64, value_bytes: usize) -> String {
    letters(&mut StdRng::seed_from_u64(PRELOAD_SEED ^ n), value_bytes)
}

fn letters(rng: &mut StdRng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| rng.gen_range(b'a'..=b'z') as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(write_percent: u8) -> Workload {
        Workload {
            kind: WorkloadKind::PutGet,
            key_space: 100,
            value_bytes: 256,
            write_percent,
            distinct_deletes: false,
        }
    }

    fn of_kind(kind: WorkloadKind, key_space: u64) -> Workload {
        Workload {
            kind,
            key_space,
            ..workload(0)
        }
    }

    #[test]
    fn mix_follows_the_write_share() {
        let mut s = OpStream::new(workload(50), 1);
        let writes = (0..10_000).filter(|_| s.next_op().is_write()).count();
        assert!((4_500..5_500).contains(&writes), "{writes}");
        let mut all = OpStream::new(workload(100), 2);
        assert!((0..1000).all(|_| all.next_op().is_write()));
        let mut none = OpStream::new(workload(0), 3);
        assert!((0..1000).all(|_| !none.next_op().is_write()));
    }

    #[test]
    fn keys_stay_in_the_key_space_and_values_have_the_size() {
        let mut s = OpStream::new(workload(100), 4);
        for _ in 0..1000 {
            let Op::Put { key, value } = s.next_op() else {
                panic!("all writes")
            };
            let n: u64 = key.strip_prefix("bench-").unwrap().parse().unwrap();
            assert!(n < 100);
            assert_eq!(value.len(), 256);
        }
    }

    #[test]
    fn distinct_deletes_never_repeat_a_key() {
        let w = Workload {
            distinct_deletes: true,
            ..workload(0)
        };
        let (mut a, mut b) = (OpStream::new(w.clone(), 1), OpStream::new(w, 2));
        let mut keys = std::collections::HashSet::new();
        for _ in 0..1000 {
            for s in [&mut a, &mut b] {
                let Op::PutThenDelete { key, .. } = s.next_op() else {
                    panic!("only put-then-delete")
                };
                assert!(keys.insert(key));
            }
        }
    }

    #[test]
    fn every_scan_prefix_names_exactly_the_scan_limit_of_keys() {
        assert_eq!(SCAN_LIMIT_KEYS, 100);
        assert_eq!(scan_prefix(123), "bench-000123");
        let key_space = 100_000;
        let keys: Vec<String> = (0..key_space).map(key_name).collect();
        let mut s = OpStream::new(of_kind(WorkloadKind::Scan, key_space), 5);
        let mut drawn = std::collections::HashSet::new();
        for _ in 0..20_000 {
            let op = s.next_op();
            assert!(!op.is_write());
            let Op::Scan { prefix } = op else {
                panic!("only scans")
            };
            if drawn.insert(prefix.clone()) {
                let named = keys.iter().filter(|k| k.starts_with(&prefix)).count();
                assert_eq!(named, SCAN_LIMIT_KEYS as usize, "{prefix}");
            }
        }
        // Drawn uniformly: every one of the 1000 prefixes came up.
        assert_eq!(drawn.len(), 1000);
    }

    #[test]
    fn scans_draw_only_prefixes_the_key_space_fills() {
        let mut s = OpStream::new(of_kind(WorkloadKind::Scan, 250), 6);
        for _ in 0..1000 {
            let Op::Scan { prefix } = s.next_op() else {
                panic!("only scans")
            };
            assert!(["bench-000000", "bench-000001"].contains(&prefix.as_str()));
        }
        assert!(of_kind(WorkloadKind::Scan, 100).check().is_ok());
        assert!(of_kind(WorkloadKind::Scan, 99).check().is_err());
        assert!(of_kind(WorkloadKind::Scan, 1_000_000_000).check().is_err());
        assert!(of_kind(WorkloadKind::Cas, 1).check().is_ok());
    }

    #[test]
    fn cas_expects_the_preloaded_value_and_puts_it_back() {
        let preloaded = preload_value(256);
        assert_eq!(preloaded.len(), 256);
        // The same for every stream: whoever preloaded, every client expects it.
        let (mut a, mut b) = (
            OpStream::new(of_kind(WorkloadKind::Cas, 1000), 7),
            OpStream::new(of_kind(WorkloadKind::Cas, 1000), 8),
        );
        for s in [&mut a, &mut b] {
            for _ in 0..1000 {
                let op = s.next_op();
                assert!(op.is_write());
                let Op::Cas { key, expect, value } = op else {
                    panic!("only CAS")
                };
                let n: u64 = key.strip_prefix("bench-").unwrap().parse().unwrap();
                assert!(n < 1000);
                assert_eq!(expect, preloaded);
                assert_eq!(value, preloaded);
            }
        }
    }
}
