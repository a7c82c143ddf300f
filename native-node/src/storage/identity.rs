//! Whose data directory this is: the cluster id, node id and member ids a node was first
//! started with, kept in a small JSON file next to its RocksDB.
//!
//! A node started on another node's directory (a swapped `--id`, a copied directory, a
//! directory of another cluster) would otherwise recover that node's promises and accepted
//! entries under its own id and vote with them: two members answering for one log breaks every
//! quorum argument. So [`claim`] runs before RocksDB is opened: on first start it writes the
//! identity (temporary file, fsync, rename, fsync of the directory), and on every later start
//! it compares and, on a mismatch, refuses with a one-line error without having written or
//! opened anything.
//!
//! What counts: the cluster id, the node id and the *set of member ids*. Peer addresses do not:
//! `omnikv demo` and the test harness give nodes new ports when they start again, and a member
//! that moves keeps its log. A changed member set does count, because quorums are computed over
//! it.
//!
//! A directory without an identity file is claimed only if it is empty or holds a RocksDB
//! (`CURRENT`): a data directory written before identity files existed is adopted, and a node
//! pointed at a folder of other files (`--data-dir .`) refuses instead of writing into it.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use omnikv_core::NodeId;
use serde::{Deserialize, Serialize};

/// The identity file, in the node's data directory.
pub const IDENTITY_FILE: &str = "omnikv-identity.json";
/// Where the identity is written before it is renamed into place; a crash can leave it behind.
const IDENTITY_TMP: &str = "omnikv-identity.json.tmp";
/// The file every RocksDB directory has: marks a data directory written before identity files.
const ROCKSDB_CURRENT: &str = "CURRENT";

/// Who a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cluster_id: String,
    pub node_id: NodeId,
    /// Ids only: addresses may change between starts (see the module doc).
    pub members: BTreeSet<NodeId>,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<String> = self.members.iter().map(|m| m.to_string()).collect();
        write!(
            f,
            "node {} of cluster {:?} with members {{{}}}",
            self.node_id,
            self.cluster_id,
            members.join(",")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "{} belongs to {found}, not {expected}: refusing to start (changed nothing)",
        dir.display()
    )]
    Mismatch {
        dir: PathBuf,
        /// Boxed: a refusal is rare, and keeps every `Result` of this module small.
        found: Box<Identity>,
        expected: Box<Identity>,
    },
    #[error(
        "{} is not empty and is not an OmniKV data directory (no {} and no RocksDB): refusing to use it",
        dir.display(),
        IDENTITY_FILE
    )]
    Foreign { dir: PathBuf },
    #[error("{} is unreadable: {source}; refusing to start", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The identity stored in `dir`, if any (`None` also when `dir` does not exist).
pub fn read(dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let path = dir.join(IDENTITY_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| IdentityError::Corrupt { path, source })
}

/// Checks that `dir` is `expected`'s or may become it, without writing anything. Returns
/// whether the identity still has to be written.
pub fn check(dir: &Path, expected: &Identity) -> Result<bool, IdentityError> {
    match read(dir)? {
        Some(found) if found == *expected => Ok(false),
        Some(found) => Err(IdentityError::Mismatch {
            dir: dir.to_owned(),
            found: Box::new(found),
            expected: Box::new(expected.clone()),
        }),
        None if !dir.exists() || is_node_dir(dir).map_err(io_error(dir))? => Ok(true),
        None => Err(IdentityError::Foreign {
            dir: dir.to_owned(),
        }),
    }
}

/// Makes `dir` (created if missing) `expected`'s data directory, or refuses: see the module
/// doc. On an error nothing was written.
pub fn claim(dir: &Path, expected: &Identity) -> Result<(), IdentityError> {
    if !check(dir, expected)? {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let tmp = dir.join(IDENTITY_TMP);
    let mut json = serde_json::to_vec_pretty(expected).expect("an identity always encodes");
    json.push(b'\n');
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(&json).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    let path = dir.join(IDENTITY_FILE);
    fs::rename(&tmp, &path).map_err(io_error(&path))?;
    // The rename is durable only once the directory entry is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))?;
    debug_assert_eq!(read(dir).ok().flatten().as_ref(), Some(expected));
    Ok(())
}

/// Whether `dir` looks like a node's data directory: it has an identity, or a RocksDB from
/// before identity files, or nothing but what an interrupted [`claim`] leaves.
pub fn is_node_dir(dir: &Path) -> io::Result<bool> {
    let mut only_tmp = true;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if name == IDENTITY_FILE || name == ROCKSDB_CURRENT {
            return Ok(true);
        }
        only_tmp &= name == IDENTITY_TMP;
    }
    Ok(only_tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(cluster: &str, node_id: NodeId, members: &[NodeId]) -> Identity {
        Identity {
            cluster_id: cluster.into(),
            node_id,
            members: members.iter().copied().collect(),
        }
    }

    /// Every file under `dir` with its contents, to show that a refusal changed nothing.
    fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(contents(&path));
            } else {
                out.push((path.clone(), fs::read(&path).unwrap()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn first_start_writes_and_later_starts_accept_the_same_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node-1");
        let me = identity("c", 1, &[1, 2, 3]);
        claim(&dir, &me).unwrap();
        assert_eq!(read(&dir).unwrap(), Some(me.clone()));
        assert!(!dir.join(IDENTITY_TMP).exists());
        let before = contents(&dir);
        claim(&dir, &me).unwrap();
        assert_eq!(contents(&dir), before);
    }

    #[test]
    fn any_difference_is_refused_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        claim(dir, &identity("c", 1, &[1, 2, 3])).unwrap();
        fs::write(dir.join("CURRENT"), "MANIFEST-000001\n").unwrap();
        let before = contents(dir);
        for other in [
            identity("c", 2, &[1, 2, 3]),
            identity("d", 1, &[1, 2, 3]),
            identity("c", 1, &[1, 2]),
            identity("c", 1, &[1, 2, 3, 4]),
        ] {
            let err = claim(dir, &other).unwrap_err();
            assert!(matches!(err, IdentityError::Mismatch { .. }), "{err}");
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains(&other.to_string()), "{msg}");
            assert_eq!(contents(dir), before);
        }
    }

    #[test]
    fn a_folder_of_other_files_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("thesis.tex"), "mine").unwrap();
        let err = claim(tmp.path(), &identity("c", 1, &[1, 2])).unwrap_err();
        assert!(matches!(err, IdentityError::Foreign { .. }), "{err}");
        assert_eq!(
            contents(tmp.path()),
            vec![(tmp.path().join("thesis.tex"), b"mine".to_vec())]
        );
    }

    #[test]
    fn a_rocksdb_from_before_identity_files_and_a_leftover_temp_file_are_claimed() {
        let me = identity("c", 1, &[1, 2]);
        for leftover in [ROCKSDB_CURRENT, IDENTITY_TMP] {
            let tmp = tempfile::tempdir().unwrap();
            fs::write(tmp.path().join(leftover), "x").unwrap();
            claim(tmp.path(), &me).unwrap();
            assert_eq!(read(tmp.path()).unwrap(), Some(me.clone()));
        }
    }

    #[test]
    fn an_unreadable_identity_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(IDENTITY_FILE), "{\"cluster_id\":").unwrap();
        let err = claim(tmp.path(), &identity("c", 1, &[1, 2])).unwrap_err();
        assert!(matches!(err, IdentityError::Corrupt { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
    }
}
