//! A data directory knows whose it is: a node refuses another node's (or another cluster's, or
//! another member set's) directory and a folder of other files, with one line and nothing
//! changed; `omnikv demo --fresh` deletes only what looks like its own data; a demo started
//! again on its directory gets its cluster back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use omnikv_core::client::ReadMode;
use omnikv_node::client::Client;
use omnikv_tests::{free_addrs, omnikv_command, Demo};

/// Long enough for a refusal on a busy machine; a node or demo that accepted the directory
/// keeps running and is killed when this runs out.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Every file under `dir` with its contents.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.push((path.clone(), Vec::new()));
            out.extend(contents(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

/// Runs `cmd` until it exits, or kills it after [`REFUSAL_TIMEOUT`]. Returns its exit status
/// (`None`: it was still running) and its stderr.
fn run_to_exit(mut cmd: Command) -> (Option<ExitStatus>, String) {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, REFUSAL_TIMEOUT);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    (status, std::fs::read_to_string(stderr.path()).unwrap())
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Asserts a refusal: exit code 2 and exactly one line on stderr, containing `expected`.
fn assert_refused((status, stderr): (Option<ExitStatus>, String), expected: &str) {
    let status = status.unwrap_or_else(|| panic!("still running after {REFUSAL_TIMEOUT:?}"));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.contains(expected), "{stderr:?} lacks {expected:?}");
}

/// `omnikv node` as node `id` of `cluster` with `members` (id, peer address) on `data_dir`.
fn node(
    id: u64,
    cluster: &str,
    members: &[(u64, SocketAddr)],
    ws: SocketAddr,
    data_dir: &Path,
) -> Command {
    let mut cmd = omnikv_command();
    cmd.arg("node")
        .args(["--id", &id.to_string(), "--cluster-id", cluster])
        .args(["--ws", &ws.to_string()])
        .arg("--data-dir")
        .arg(data_dir);
    for (m, addr) in members {
        cmd.arg("--member").arg(format!("{m}={addr}"));
    }
    cmd
}

/// Starts the node `cmd` and waits until it has recovered its storage and serves; then
/// SIGKILLs it.
fn run_until_ready(mut cmd: Command) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(log.path())
        .unwrap()
        .contains("node ready")
    {
        assert!(child.try_wait().unwrap().is_none(), "the node exited");
        assert!(Instant::now() < deadline, "the node did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_node_refuses_another_nodes_directory_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node-1");
    let a = free_addrs(4);
    let (ws, two, three) = (
        a[0],
        [(1, a[1]), (2, a[2])],
        [(1, a[1]), (2, a[2]), (3, a[3])],
    );
    run_until_ready(node(1, "test", &two, ws, &dir));
    let before = contents(&dir);
    assert!(before.iter().any(|(p, _)| p.ends_with("CURRENT")));

    let found = r#"belongs to node 1 of cluster "test" with members {1,2}"#;
    assert_refused(run_to_exit(node(2, "test", &two, ws, &dir)), found);
    assert_refused(run_to_exit(node(1, "other", &two, ws, &dir)), found);
    assert_refused(run_to_exit(node(1, "test", &three, ws, &dir)), found);
    assert_eq!(
        contents(&dir),
        before,
        "a refused start changed the directory"
    );

    // Addresses are not part of the identity: the same node on new ports starts.
    let b = free_addrs(3);
    run_until_ready(node(1, "test", &[(1, b[1]), (2, b[2])], b[0], &dir));
}

#[test]
fn a_node_refuses_a_folder_of_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("thesis.tex"), "mine").unwrap();
    let before = contents(tmp.path());
    let a = free_addrs(3);
    let cmd = node(1, "test", &[(1, a[1]), (2, a[2])], a[0], tmp.path());
    assert_refused(run_to_exit(cmd), "is not an OmniKV data directory");
    assert_eq!(contents(tmp.path()), before);
}

fn demo_command(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = omnikv_command();
    cmd.args(["demo", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args);
    cmd
}

#[test]
fn demo_fresh_refuses_a_directory_that_is_not_omnikv_data() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    std::fs::create_dir(tmp.path().join("node-1")).unwrap();
    std::fs::write(tmp.path().join("node-1").join("draft.md"), "also mine").unwrap();
    let before = contents(tmp.path());
    assert_refused(
        run_to_exit(demo_command(tmp.path(), &["--fresh"])),
        "does not look like an OmniKV data directory",
    );
    assert_eq!(contents(tmp.path()), before);
}

async fn client(demo: &Demo) -> Client {
    demo.wait_leader(Duration::from_secs(15));
    let mut c = Client::new(demo.urls());
    c.total_timeout = Duration::from_secs(10);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_restarts_on_its_directory_and_fresh_empties_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let started = || Demo::start_on(tempfile::tempdir().unwrap(), &data, &[]);

    let mut demo = started();
    client(&demo).await.put("kept", "yes").await.unwrap();
    demo.interrupt();

    // Started again on new ports, the nodes keep their cluster id and their data.
    let mut demo = started();
    let value = client(&demo)
        .await
        .get("kept", ReadMode::Linearizable)
        .await;
    assert_eq!(value.unwrap().as_deref(), Some("yes"));
    demo.interrupt();

    // Another member set is refused before any node starts.
    let before = contents(&data);
    assert_refused(
        run_to_exit(demo_command(&data, &["--nodes", "5"])),
        "with members {1,2,3}, not node 1",
    );
    assert_eq!(contents(&data), before);

    let mut demo = Demo::start_on(tempfile::tempdir().unwrap(), &data, &["--fresh"]);
    let value = client(&demo)
        .await
        .get("kept", ReadMode::Linearizable)
        .await;
    assert_eq!(value.unwrap(), None);
    demo.interrupt();
}
