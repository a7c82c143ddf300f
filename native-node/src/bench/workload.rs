//! What a benchmark client does next: which operation, on which key, with which value.
//!
//! Kept free of I/O so that every backend faces exactly the same sequence of operations and the
//! mix can be unit-tested.

use rand::{rngs::StdRng, Rng, SeedableRng};

/// The shape of a workload: shared by every client of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Keys are `bench-00000000` .. `bench-{key_space-1}`, drawn uniformly.
    pub key_space: u64,
    pub value_bytes: usize,
    /// Share of operations that are puts; the rest are gets.
    pub write_percent: u8,
    /// Every operation puts a key never used before and deletes it (see
    /// [`Op::PutThenDelete`]); `key_space` and `write_percent` are ignored.
    pub distinct_deletes: bool,
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
}

impl Op {
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }
}

/// One client's operation stream (deterministic for a given seed).
pub struct OpStream {
    workload: Workload,
    rng: StdRng,
    value: String,
    /// This stream's seed, to name distinct keys apart from other clients' ones.
    seed: u64,
    /// Distinct keys used so far.
    distinct: u64,
}

impl OpStream {
    pub fn new(workload: Workload, seed: u64) -> OpStream {
        let mut rng = StdRng::seed_from_u64(seed);
        let value = (0..workload.value_bytes)
            .map(|_| rng.gen_range(b'a'..=b'z') as char)
            .collect();
        OpStream {
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
        let key = key_name(self.rng.gen_range(0..self.workload.key_space.max(1)));
        if self.rng.gen_range(0..100u8) < self.workload.write_percent {
            Op::Put {
                key,
                value: self.value.clone(),
            }
        } else {
            Op::Get { key }
        }
    }
}

pub fn key_name(n: u64) -> String {
    format!("bench-{n:08}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(write_percent: u8) -> Workload {
        Workload {
            key_space: 100,
            value_bytes: 256,
            write_percent,
            distinct_deletes: false,
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
}
