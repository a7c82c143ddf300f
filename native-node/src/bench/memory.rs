//! How much memory the nodes of a cluster hold: the resident set (VmRSS) of each node's
//! process, read from `/proc/<pid>/status` after a known number of puts. Memory that keeps
//! growing between 1M and 5M puts over the same 100k keys is a leak, not a working set.

use super::backends::BackendKind;
use super::results::{this_command, MemoryResult};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("reading the memory of pid {pid}: {reason}")]
    Read { pid: u32, reason: String },
}

/// The resident set in KiB from the text of a `/proc/<pid>/status` file.
pub fn rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn rss_of(pid: u32) -> Result<u64, MemoryError> {
    let err = |reason: String| MemoryError::Read { pid, reason };
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| err(e.to_string()))?;
    rss_kib(&status).ok_or_else(|| err("no VmRSS line".into()))
}

/// The resident set of every process in `pids`, in their order, after `puts` puts.
pub fn sample(backend: BackendKind, pids: &[u32], puts: u64) -> Result<MemoryResult, MemoryError> {
    Ok(MemoryResult {
        backend,
        puts,
        rss_kib: pids.iter().map(|p| rss_of(*p)).collect::<Result<_, _>>()?,
        command: this_command(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_resident_set_line() {
        let status = "Name:\tomnikv\nVmPeak:\t  900 kB\nVmRSS:\t   123456 kB\nThreads:\t4\n";
        assert_eq!(rss_kib(status), Some(123_456));
        assert_eq!(rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn samples_this_process() {
        let r = sample(BackendKind::Omnikv, &[std::process::id()], 7).unwrap();
        assert_eq!((r.puts, r.rss_kib.len()), (7, 1));
        assert!(r.rss_kib[0] > 0);
        assert!(sample(BackendKind::Omnikv, &[u32::MAX], 0).is_err());
    }
}
