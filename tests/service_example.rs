//! `examples/service.rs` as a real process on a SQLite file: a POST writes a row and enqueues
//! its job in one transaction and the job runs; one SIGTERM stops the HTTP server first, then
//! the pool, which releases the job still running (its checkpoint kept) and exits cleanly; a
//! second run resumes that job from its checkpoint. `/metrics` serves the pool's metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The example's binary, built (a no-op when `cargo test` already did) next to this test's
/// own target directory.
fn example_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "service"])
        .args((!cfg!(debug_assertions)).then_some("--release"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the service example failed");
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    profile_dir.join("examples").join("service")
}

/// The service running, its address, and its log (stderr) collected as it comes.
struct Service {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
}

impl Service {
    fn start(exe: &Path, db: &Path) -> Service {
        let mut child = Command::new(exe)
            .arg("--db")
            .arg(db)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--grace",
                "2s",
                "--step",
                "100ms",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the service");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&text);
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reading the first line");
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("expected `listening on ADDR`, got {line:?}"))
            .to_owned();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest);
        });
        Service {
            child,
            address,
            log,
        }
    }

    /// One HTTP/1.1 request; the status code and the body.
    fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).expect("connecting to the service");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        let body = body.unwrap_or("");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        )
        .expect("sending the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("reading the response");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn sign_up(&self, email: &str, steps: u32) -> serde_json::Value {
        let body = format!(r#"{{"email":"{email}","steps":{steps}}}"#);
        let (status, body) = self.request("POST", "/signups", Some(&body));
        assert_eq!(status, 201, "{body}");
        serde_json::from_str(&body).expect("a JSON reply")
    }

    fn signup(&self, id: i64) -> serde_json::Value {
        let (status, body) = self.request("GET", &format!("/signups/{id}"), None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("a JSON reply")
    }

    fn job_state(&self, id: i64) -> String {
        self.request("GET", &format!("/jobs/{id}"), None).1
    }

    /// Polls `probe` every 50 ms until it holds, for at most `within`.
    fn wait_until(&self, within: Duration, what: &str, probe: impl Fn() -> bool) {
        let deadline = Instant::now() + within;
        while !probe() {
            assert!(
                Instant::now() < deadline,
                "{what} within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends SIGTERM and waits for the process to exit.
    fn terminate(mut self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("waiting for the service") {
                break exit;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the service did not stop within 30 s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100)); // the log reader drains
        (exit, self.log())
    }
}

fn position(log: &str, needle: &str) -> usize {
    log.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is not in the log:\n{log}"))
}

#[test]
fn a_request_enqueues_in_its_transaction_sigterm_stops_server_then_pool_and_a_rerun_resumes() {
    let exe = example_binary();
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("service.db");

    let service = Service::start(&exe, &db);
    let ada = service.sign_up("ada@example.com", 1);
    let ada_id = ada["id"].as_i64().expect("an id");
    service.wait_until(Duration::from_secs(20), "ada is welcomed", || {
        service.signup(ada_id)["welcomed"] == true
    });
    assert_eq!(
        service.job_state(ada["job"].as_i64().expect("a job")),
        "completed"
    );
    let (status, metrics) = service.request("GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"jobs_completed_total{queue="default",kind="welcome"} 1"#),
        "the pool's metrics in Prometheus's format:\n{metrics}"
    );

    // 40 steps of 100 ms: still running when SIGTERM comes.
    let bob = service.sign_up("bob@example.com", 40);
    let bob_id = bob["id"].as_i64().expect("an id");
    let bob_job = bob["job"].as_i64().expect("a job");
    service.wait_until(Duration::from_secs(20), "bob's job runs", || {
        service.job_state(bob_job) == "running"
    });
    std::thread::sleep(Duration::from_millis(500));
    let (exit, log) = service.terminate();
    assert!(exit.success(), "a clean exit: {exit:?}; log:\n{log}");
    let server_stopped = position(&log, r#"child="http" reason=shutdown"#);
    let pool_stopping = position(&log, "pool stopping");
    let released = position(&log, "released job_id=");
    assert!(
        server_stopped < pool_stopping && pool_stopping < released,
        "the server stops first, then the pool, which releases the running job; log:\n{log}"
    );

    let service = Service::start(&exe, &db);
    let signup = service.signup(bob_id);
    assert_eq!(
        signup["welcomed"], false,
        "bob's job was released, not finished"
    );
    service.wait_until(
        Duration::from_secs(30),
        "bob is welcomed by the rerun",
        || service.signup(bob_id)["welcomed"] == true,
    );
    let resumed_from = service.signup(bob_id)["resumed_from"]
        .as_i64()
        .expect("the step the rerun started from");
    assert!(
        (1..40).contains(&resumed_from),
        "the rerun resumed from the checkpoint, not from the start: {resumed_from}"
    );
    assert_eq!(service.job_state(bob_job), "completed");
    let (exit, log) = service.terminate();
    assert!(exit.success(), "a clean exit: {exit:?}; log:\n{log}");
}
