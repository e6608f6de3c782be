//! Times the store's hot operations one by one (wall and process CPU time), for tuning.
//!
//! `cargo run --release -p jobs-sqlite --example profile_store [jobs]`

use std::time::{Duration, Instant};

use jobs::{
    FinishOutcome, JobClaimParams, JobFinish, JobFinishParams, JobInsertParams, NewJob, Store,
    Timestamp,
};
use jobs_sqlite::SqliteStore;

/// User + system CPU time of this process (all threads), from /proc.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn new_jobs(n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob {
            kind: "noop".into(),
            args: serde_json::json!({ "n": i }),
            queue: "default".into(),
            priority: 0,
            max_attempts: 25,
            run_at: None,
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("jobs-sqlite-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::open(dir.join("jobs.db")).await?;

    let jobs = new_jobs(n);
    let (wall, cpu0) = (Instant::now(), cpu());
    store
        .job_insert_many(JobInsertParams {
            jobs,
            now: Timestamp::now(),
        })
        .await?;
    report("insert", n, wall.elapsed(), cpu() - cpu0);
    if std::env::args().nth(2).as_deref() == Some("insert-only") {
        store.close().await;
        std::fs::remove_dir_all(&dir)?;
        return Ok(());
    }

    let (mut claim_wall, mut finish_wall) = (Duration::ZERO, Duration::ZERO);
    let (wall, cpu0) = (Instant::now(), cpu());
    let mut done = 0;
    loop {
        let now = Timestamp::now();
        let t = Instant::now();
        let claimed = store
            .job_claim(JobClaimParams {
                queue: "default".into(),
                owner: "profile".into(),
                limit: 100,
                lease_ttl: Duration::from_secs(30),
                now,
            })
            .await?;
        claim_wall += t.elapsed();
        if claimed.is_empty() {
            break;
        }
        if std::env::args().nth(2).as_deref() == Some("claim-only") {
            done += claimed.len();
            continue;
        }
        let finishes = claimed
            .iter()
            .map(|job| JobFinish {
                lease: job.lease,
                outcome: FinishOutcome::Completed,
            })
            .collect();
        let t = Instant::now();
        let applied = store
            .job_finish_many(JobFinishParams {
                owner: "profile".into(),
                finishes,
                now,
            })
            .await?;
        finish_wall += t.elapsed();
        done += applied.len();
    }
    report("claim+finish", done, wall.elapsed(), cpu() - cpu0);
    println!("  of which claim {claim_wall:?}, finish {finish_wall:?}");
    store.close().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn report(what: &str, n: usize, wall: Duration, cpu: Duration) {
    println!(
        "{what:>14}: {n} jobs, wall {wall:?} ({:.0}/s), cpu {cpu:?} ({:.0}/s)",
        n as f64 / wall.as_secs_f64(),
        n as f64 / cpu.as_secs_f64().max(1e-9)
    );
}
