//! The README's main command, `examples/worker_pool.rs`, as a real process on a SQLite file:
//! the first run enqueues the demo jobs and works until Ctrl-C (SIGINT), then shuts down
//! cleanly; the second run resumes the same jobs instead of enqueuing new ones, and the jobs
//! the first run released are waiting again, none lost.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobs::store::Store;
use jobs::{Client, JobState};
use jobs_sqlite::SqliteStore;

/// The example's binary, built (a no-op when `cargo test` already did) next to this test's
/// own target directory.
fn example_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "worker_pool"])
        .args((!cfg!(debug_assertions)).then_some("--release"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the worker_pool example failed");
    // This test runs from <target>/<profile>/deps/; examples live in <target>/<profile>/examples/.
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    profile_dir.join("examples").join("worker_pool")
}

/// The example running, with its output collected as it comes.
struct Running {
    child: Child,
    output: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

fn spawn(exe: &Path, db: &Path) -> Running {
    let mut child = Command::new(exe)
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the example");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let output = Arc::new(Mutex::new(String::new()));
    let sink = output.clone();
    let reader = std::thread::spawn(move || {
        let mut buffer = [0_u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..n]);
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&text);
        }
    });
    Running {
        child,
        output,
        reader,
    }
}

impl Running {
    fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the latest status line shows jobs running.
    fn jobs_running(&self) -> bool {
        let output = self.output();
        let latest = output.rsplit('\r').find(|line| line.contains(" running"));
        let running = latest
            .and_then(|line| line.split(" running").next())
            .and_then(|before| before.split_whitespace().last())
            .and_then(|n| n.parse::<u64>().ok());
        running.is_some_and(|n| n > 0)
    }

    /// Waits until the pool is working: its status line shows jobs running.
    async fn wait_until_working(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.jobs_running() {
            assert!(
                Instant::now() < deadline,
                "the example did not start: {}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGINT (Ctrl-C), waits for a clean exit, and returns the whole output.
    async fn interrupt(mut self) -> String {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("polling the example") {
                break exit;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not stop on Ctrl-C"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let Running { output, reader, .. } = self;
        let _ = reader.join(); // the pipe closed with the exit: everything is read
        let output = output.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert!(exit.success(), "exit {exit:?}; output:\n{output}");
        output
    }
}

/// All jobs in the file, and those running.
async fn counts(db: &Path) -> (u64, u64) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).await.expect("opening the file"));
    let stats = Client::new(store).queue_stats().await.expect("queue stats");
    let count = |states: &[JobState]| -> u64 {
        stats
            .iter()
            .flat_map(|q| states.iter().map(|s| q.count(*s)))
            .sum()
    };
    (count(&JobState::ALL), count(&[JobState::Running]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_cleanly_and_the_next_run_resumes() {
    let exe = example_binary();
    let dir = std::env::temp_dir().join(format!("jobs-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let db = dir.join("worker_pool.db");

    let first = spawn(&exe, &db);
    first.wait_until_working().await;
    let output = first.interrupt().await;
    assert!(
        output.contains("enqueued 4,001 demo jobs"),
        "first run: {output}"
    );
    assert!(output.contains("stopped in"), "first run: {output}");
    let (all, running) = counts(&db).await;
    assert_eq!(all, 4_001, "every demo job is in the file");
    assert_eq!(running, 0, "nothing is left running after a clean stop");

    let second = spawn(&exe, &db);
    second.wait_until_working().await;
    let output = second.interrupt().await;
    assert!(
        output.contains("resuming the jobs in"),
        "second run: {output}"
    );
    let (all, running) = counts(&db).await;
    assert_eq!(
        all, 4_001,
        "the second run enqueued nothing new and lost nothing"
    );
    assert_eq!(running, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
