//! The demo's data directory: `node-N/` (a node's RocksDB and identity) and `node-N.log` (its
//! output) for each node, the cluster secret ([`SECRET_FILE`]), and nothing else.
//!
//! Two decisions rest on that layout. `--fresh` deletes the directory's contents only when they
//! are exactly that, because the flag takes any path: `--data-dir . --fresh` must not empty the
//! current folder. And a demo started again on its directory reuses the cluster id its nodes
//! were first started with, since every node refuses a directory of another cluster (see
//! [`identity`]); a directory of another member set is refused here, before any node starts.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use omnikv_core::NodeId;

use crate::storage::identity::{self, Identity};

/// The cluster secret's file in the demo's directory (see [`crate::secret`]).
pub const SECRET_FILE: &str = "secret";

/// Node `id`'s data directory inside the demo's `data_dir`.
pub fn node_dir(data_dir: &Path, id: NodeId) -> PathBuf {
    data_dir.join(format!("node-{id}"))
}

/// Whether `entry` (a name in the demo's directory) is something the demo put there.
fn is_demo_entry(dir: &Path, name: &str) -> bool {
    let path = dir.join(name);
    // `symlink_metadata`: a link is never the demo's, and deleting it would be surprising.
    let Ok(meta) = fs::symlink_metadata(&path) else {
        return false;
    };
    let id_of = |s: &str| s.strip_prefix("node-")?.parse::<NodeId>().ok();
    if meta.is_dir() {
        id_of(name).is_some() && identity::is_node_dir(&path).unwrap_or(false)
    } else {
        meta.is_file()
            && (name == SECRET_FILE || name.strip_suffix(".log").and_then(id_of).is_some())
    }
}

/// Empties `data_dir` for `--fresh`, or refuses with one line and deletes nothing when it holds
/// anything the demo did not put there. A missing directory is fine: there is nothing to delete.
pub fn clear_for_fresh(data_dir: &Path) -> anyhow::Result<()> {
    let entries = match fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", data_dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let ours = name.to_str().is_some_and(|n| is_demo_entry(data_dir, n));
        anyhow::ensure!(
            ours,
            "refusing to delete {} for --fresh: it does not look like an OmniKV data directory \
             ({:?} is not a node's directory or log); choose another --data-dir",
            data_dir.display(),
            name
        );
        names.push(name);
    }
    for name in names {
        let path = data_dir.join(name);
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// The cluster id for a demo of nodes `1..=nodes` in `data_dir`: the one stored in its nodes'
/// directories, or a new one. Refuses, before any node starts, a directory whose nodes belong
/// to another member set (or disagree on the cluster).
pub fn cluster_id(data_dir: &Path, nodes: u64) -> anyhow::Result<String> {
    let ids = 1..=nodes;
    let mut stored = None;
    for id in ids.clone() {
        if let Some(found) = identity::read(&node_dir(data_dir, id))? {
            stored = Some(found.cluster_id);
            break;
        }
    }
    let cluster_id = stored.unwrap_or_else(|| format!("demo-{:x}", rand::random::<u32>()));
    for id in ids.clone() {
        let expected = Identity {
            cluster_id: cluster_id.clone(),
            node_id: id,
            members: ids.clone().collect(),
        };
        match identity::check(&node_dir(data_dir, id), &expected) {
            Err(e @ identity::IdentityError::Mismatch { .. }) => {
                anyhow::bail!("{e}; start the demo with its former --nodes, or with --fresh")
            }
            result => result?,
        };
    }
    Ok(cluster_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_empties_a_demo_directory_and_keeps_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        identity::claim(
            &node_dir(dir, 1),
            &Identity {
                cluster_id: "c".into(),
                node_id: 1,
                members: [1, 2].into(),
            },
        )
        .unwrap();
        fs::create_dir(node_dir(dir, 2)).unwrap();
        fs::write(node_dir(dir, 2).join("CURRENT"), "x").unwrap();
        fs::create_dir(node_dir(dir, 3)).unwrap();
        fs::write(dir.join("node-1.log"), "log").unwrap();
        fs::write(dir.join(SECRET_FILE), "secret").unwrap();
        clear_for_fresh(dir).unwrap();
        assert_eq!(fs::read_dir(dir).unwrap().count(), 0);
        clear_for_fresh(&dir.join("absent")).unwrap();
    }

    #[test]
    fn fresh_refuses_anything_else_and_deletes_nothing() {
        for stray in [
            "notes.txt",
            "node-x.log",
            "node-1.txt",
            "src/main.rs",
            "node-2/a.txt",
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            fs::write(dir.join("node-1.log"), "log").unwrap();
            let path = dir.join(stray);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "mine").unwrap();
            let err = clear_for_fresh(dir).unwrap_err();
            assert!(!format!("{err:#}").contains('\n'), "{err:#}");
            assert!(path.exists() && dir.join("node-1.log").exists(), "{stray}");
        }
    }

    #[test]
    fn a_restarted_demo_keeps_its_cluster_id_and_refuses_another_size() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let first = cluster_id(dir, 3).unwrap();
        for id in 1..=3 {
            let me = Identity {
                cluster_id: first.clone(),
                node_id: id,
                members: [1, 2, 3].into(),
            };
            identity::claim(&node_dir(dir, id), &me).unwrap();
        }
        assert_eq!(cluster_id(dir, 3).unwrap(), first);
        let err = cluster_id(dir, 5).unwrap_err();
        assert!(format!("{err:#}").contains("members {1,2,3}"), "{err:#}");
    }
}
