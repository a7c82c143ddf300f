//! Stops the node before its filesystem fills up.
//!
//! RocksDB out of space mid-write leaves a WAL it cannot sync (and the system's build aborts on
//! it), so the node checks the free space before each fsync and stops with one line while the
//! reserve (`--disk-reserve-mb`) still holds. The check is a `statvfs`, 24-27 µs on the
//! benchmark machine, and a lone client's put waits for one on each node it passes: so it is
//! asked again only after [`RECHECK_BYTES`] written or [`RECHECK_INTERVAL`] passed, which
//! bounds what the node writes unseen to a small part of the smallest reserve (performance
//! notes, section 48).

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bytes the node's own writes may add before the free space is read again.
pub const RECHECK_BYTES: u64 = 1 << 20;
/// Time after which the free space is read again, whatever was written: RocksDB's flushes and
/// compactions and other processes use the same filesystem.
pub const RECHECK_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("reading the free space: {0}")]
    Stat(#[from] std::io::Error),
    #[error(
        "disk full: {free_bytes} bytes free on {}, below the reserve of {reserve_bytes} \
         (--disk-reserve-mb)",
        dir.display()
    )]
    BelowReserve {
        dir: PathBuf,
        free_bytes: u64,
        reserve_bytes: u64,
    },
}

/// When the free space was last read, and what the node had written then.
#[derive(Debug)]
pub struct DiskGuard {
    /// The data directory, named in the error.
    dir: PathBuf,
    reserve_bytes: u64,
    last: Option<(Instant, u64)>,
}

impl DiskGuard {
    pub fn new(dir: PathBuf, reserve_bytes: u64) -> DiskGuard {
        DiskGuard {
            dir,
            reserve_bytes,
            last: None,
        }
    }

    /// Whether the free space must be read again, given the bytes the node has written so far.
    pub fn due(&self, now: Instant, written_bytes: u64) -> bool {
        match self.last {
            None => true,
            Some((at, written_then)) => {
                now.saturating_duration_since(at) >= RECHECK_INTERVAL
                    || written_bytes.saturating_sub(written_then) >= RECHECK_BYTES
            }
        }
    }

    /// Reads the free space with `free_bytes` when due, and fails below the reserve. A failed
    /// check is asked again next time.
    pub fn check(
        &mut self,
        now: Instant,
        written_bytes: u64,
        free_bytes: impl FnOnce() -> std::io::Result<u64>,
    ) -> Result<(), DiskError> {
        if !self.due(now, written_bytes) {
            return Ok(());
        }
        let free_bytes = free_bytes()?;
        if free_bytes < self.reserve_bytes {
            return Err(DiskError::BelowReserve {
                dir: self.dir.clone(),
                free_bytes,
                reserve_bytes: self.reserve_bytes,
            });
        }
        self.last = Some((now, written_bytes));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESERVE: u64 = 64 << 20;

    fn checked_at(now: Instant, written_bytes: u64) -> DiskGuard {
        let mut guard = DiskGuard::new(PathBuf::from("/data"), RESERVE);
        guard
            .check(now, written_bytes, || Ok(RESERVE * 2))
            .expect("room above the reserve");
        guard
    }

    #[test]
    fn the_first_check_reads_the_free_space() {
        let guard = DiskGuard::new(PathBuf::from("/data"), RESERVE);
        assert!(guard.due(Instant::now(), 0));
    }

    #[test]
    fn a_check_soon_after_with_little_written_reads_nothing() {
        let now = Instant::now();
        let mut guard = checked_at(now, 10);
        let soon = now + RECHECK_INTERVAL / 2;
        assert!(!guard.due(soon, 10 + RECHECK_BYTES - 1));
        guard
            .check(soon, 10 + RECHECK_BYTES - 1, || {
                panic!("the free space was read again")
            })
            .unwrap();
    }

    #[test]
    fn enough_bytes_written_or_enough_time_passed_reads_it_again() {
        let now = Instant::now();
        let guard = checked_at(now, 10);
        assert!(guard.due(now, 10 + RECHECK_BYTES));
        assert!(guard.due(now + RECHECK_INTERVAL, 10));
    }

    #[test]
    fn free_space_below_the_reserve_stops_the_node_and_is_read_again() {
        let now = Instant::now();
        let mut guard = DiskGuard::new(PathBuf::from("/data"), RESERVE);
        let err = guard.check(now, 0, || Ok(RESERVE - 1)).unwrap_err();
        assert!(matches!(
            err,
            DiskError::BelowReserve { free_bytes, reserve_bytes: RESERVE, .. } if free_bytes == RESERVE - 1
        ));
        assert!(err.to_string().starts_with("disk full"));
        assert!(err.to_string().contains("/data"), "{err}");
        assert!(
            guard.due(now, 0),
            "a failed check is not remembered as done"
        );
    }

    #[test]
    fn a_failed_read_of_the_free_space_is_an_error() {
        let mut guard = DiskGuard::new(PathBuf::from("/data"), RESERVE);
        let err = guard
            .check(Instant::now(), 0, || {
                Err(std::io::Error::other("no statvfs"))
            })
            .unwrap_err();
        assert!(matches!(err, DiskError::Stat(_)));
    }
}
