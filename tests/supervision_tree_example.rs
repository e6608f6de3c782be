//! `examples/supervision_tree.rs` as a real process: SIGUSR1 prints the whole tree.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn example_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "supervision_tree"])
        .args((!cfg!(debug_assertions)).then_some("--release"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build");
    assert!(
        status.success(),
        "building the supervision_tree example failed"
    );
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    profile_dir.join("examples").join("supervision_tree")
}

#[test]
fn sigusr1_prints_the_tree_at_a_glance() {
    let mut child = Command::new(example_binary())
        .args(["--run-for", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the example");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return seen;
            }
        }
        panic!("no line with {needle:?}; saw {seen:#?}");
    };
    wait_for("tree started");
    let expected = [
        "├─ lingerer  running",
        "├─ services [rest_for_one]  running",
        "│  ├─ db  running",
        "│  └─ api  running",
        "└─ flaky",
    ];
    // the nested supervisor's `db` warms up for 500 ms: ask until the tree shows it all
    let mut text = String::new();
    for _ in 0..20 {
        let status = Command::new("kill")
            .args(["-USR1", &child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
        let mut tree = wait_for("root (one_for_one)");
        tree.extend(wait_for("└─ flaky"));
        text = tree.join("\n");
        if expected.iter().all(|line| text.contains(line)) {
            break;
        }
    }
    for line in expected {
        assert!(text.contains(line), "{line:?} missing in\n{text}");
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let exit = child.wait().expect("waiting for the example");
    assert!(exit.success(), "{exit:?}");
}
