//! `examples/cache.rs` as a real process: a stateful cache serves every request through
//! crashes and delayed restarts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn example_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "cache"])
        .args((!cfg!(debug_assertions)).then_some("--release"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the cache example failed");
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    profile_dir.join("examples").join("cache")
}

#[test]
fn the_cache_loses_no_request_through_crashes_and_delayed_restarts() {
    let out = Command::new(example_binary())
        .args([
            "--restart-delay-ms",
            "300",
            "--crashes",
            "3",
            "--callers",
            "4",
            "--requests",
            "100",
        ])
        .output()
        .expect("running the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("requests answered: 800, lost: 0, cache crashes: 3"),
        "{stdout}"
    );
    // every incarnation served: the first and three restarts
    for n in 0..=3 {
        assert!(
            stdout.contains(&format!("cache: incarnation {n} serving")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("cache  running"), "{stdout}");
    assert!(stdout.contains("restarts 3"), "{stdout}");
}
