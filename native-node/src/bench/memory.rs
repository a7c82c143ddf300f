//! How much memory and disk the nodes of a cluster hold: the resident set (VmRSS) of each
//! node's process, read from `/proc/<pid>/status`, and each data directory split into
//! write-ahead log, sorted tables and the rest, after a known number of puts. A footprint that
//! keeps growing between 1M and 5M puts over the same 100k keys follows the history, not the
//! live data.

use std::path::{Path, PathBuf};

use super::backends::BackendKind;
use super::results::{this_command, DiskUse, MemoryResult};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("reading the memory of pid {pid}: {reason}")]
    Read { pid: u32, reason: String },
    #[error("reading {path}: {source}")]
    Disk {
        path: String,
        source: std::io::Error,
    },
}

/// What a data directory holds, walked recursively (symbolic links are not followed).
pub fn disk_use(dir: &Path) -> Result<DiskUse, MemoryError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| MemoryError::Disk { path, source }
    };
    let mut total = DiskUse::default();
    let mut pending: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(err(&dir))? {
            let entry = entry.map_err(err(&dir))?;
            let meta = entry.metadata().map_err(err(&entry.path()))?;
            if meta.is_dir() {
                pending.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let bytes = meta.len();
            if name.ends_with(".log") || name.ends_with(".wal") {
                total.wal_bytes += bytes;
            } else if name.ends_with(".sst") {
                total.sst_bytes += bytes;
            } else {
                total.other_bytes += bytes;
            }
        }
    }
    Ok(total)
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

/// The resident set of every process in `pids` and the use of every directory in
/// `data_dirs`, in their order, after `puts` puts.
pub fn sample(
    backend: BackendKind,
    pids: &[u32],
    data_dirs: &[PathBuf],
    puts: u64,
) -> Result<MemoryResult, MemoryError> {
    Ok(MemoryResult {
        backend,
        puts,
        rss_kib: pids.iter().map(|p| rss_of(*p)).collect::<Result<_, _>>()?,
        disk: data_dirs
            .iter()
            .map(|d| disk_use(d))
            .collect::<Result<_, _>>()?,
        restart_to_serving_ms: None,
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
        let r = sample(BackendKind::Omnikv, &[std::process::id()], &[], 7).unwrap();
        assert_eq!((r.puts, r.rss_kib.len()), (7, 1));
        assert!(r.rss_kib[0] > 0);
        assert!(sample(BackendKind::Omnikv, &[u32::MAX], &[], 0).is_err());
    }

    #[test]
    fn splits_a_data_directory_by_kind_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, len: usize| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, vec![0u8; len]).unwrap();
        };
        write("000012.log", 100);
        write("000013.sst", 30);
        write("LOG", 7);
        write("MANIFEST-000005", 3);
        write("member/wal/0000-0001.wal", 50);
        write("member/snap/db", 9);
        let used = disk_use(dir.path()).unwrap();
        assert_eq!(
            used,
            DiskUse {
                wal_bytes: 150,
                sst_bytes: 30,
                other_bytes: 19
            }
        );
        assert!(disk_use(&dir.path().join("missing")).is_err());
    }
}
