//! A node whose disk fills up while clients write stops with one clear line and loses nothing
//! it acknowledged; the cluster keeps serving; once there is room again the node starts on the
//! same data directory and catches up.
//!
//! The node's data directory is moved onto a small tmpfs (so the test needs to be allowed to
//! mount, as root in CI is); the rest of the disk is never filled.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use omnikv_core::client::ReadMode;
use omnikv_tests::Cluster;

/// A tmpfs mounted for the test, unmounted when it ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size_mb: u64) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(at)
            .status()
            .expect("running mount")
            .success();
        assert!(ok, "this test mounts a tmpfs (run it as root)");
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("running df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the free bytes")
}

/// Moves node `id`'s data directory onto a fresh tmpfs of `size_mb` at the same path.
fn move_onto_tmpfs(cluster: &mut Cluster, id: u64, size_mb: u64) -> Tmpfs {
    cluster.kill(id);
    let dir = cluster.nodes[&id].data_dir.clone();
    let aside = dir.with_extension("aside");
    std::fs::rename(&dir, &aside).unwrap();
    std::fs::create_dir(&dir).unwrap();
    let tmpfs = Tmpfs::mount(&dir, size_mb);
    let copied = Command::new("cp")
        .arg("-a")
        .arg(aside.join("."))
        .arg(&dir)
        .status()
        .unwrap()
        .success();
    assert!(copied);
    tmpfs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_node_and_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(3, &["--snapshot-every", "100000", "--disk-reserve-mb", "4"]);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    let full = cluster.others(leader)[0];
    let tmpfs = move_onto_tmpfs(&mut cluster, full, 32);
    cluster.restart(full);
    // Leave the node a little room above its reserve, then write 64 KiB values until it stops.
    let filler = tmpfs.0.join("filler");
    let room = 8 << 20;
    let fill = free_bytes(&tmpfs.0).saturating_sub(room);
    std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();
    let mut client = cluster.client_of(&cluster.ids());
    let value = "v".repeat(64 << 10);
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let key = format!("k{}", acked.len());
        if client.put(&key, &value).await.is_ok() {
            acked.push(key);
        }
        if let Some(status) = cluster.exit_status(full) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "node {full} never noticed its full disk"
        );
    };
    let log = std::fs::read_to_string(cluster.nodes[&full].data_dir.with_extension("log")).unwrap();
    let fatal: Vec<&str> = log.lines().filter(|l| l.contains("disk full")).collect();
    println!(
        "node {full} stopped ({status}) after {} acknowledged writes: {fatal:?}",
        acked.len()
    );
    assert!(
        !status.success(),
        "a node that cannot write must not exit as if all were well"
    );
    assert!(
        fatal.iter().any(|l| l.starts_with("omnikv node")),
        "one line says why the node stopped: {log}"
    );
    // The other two still form a majority.
    for i in 0..5 {
        let key = format!("after{i}");
        client
            .put(&key, "x")
            .await
            .expect("the majority keeps serving");
        acked.push(key);
    }
    // Room again: the node starts on the same directory and catches up.
    std::fs::remove_file(&filler).unwrap();
    cluster.restart(full);
    let leader = cluster
        .wait_leader(&cluster.ids(), Duration::from_secs(10))
        .await;
    cluster
        .wait_caught_up(leader, &cluster.ids(), Duration::from_secs(30))
        .await;
    cluster.assert_replicas_identical().await;
    let mut reader = cluster.client_of(&[full]);
    for key in &acked {
        let got = reader.get(key, ReadMode::Local).await.unwrap();
        assert!(got.is_some(), "acknowledged {key} missing on node {full}");
    }
    drop(tmpfs);
}
