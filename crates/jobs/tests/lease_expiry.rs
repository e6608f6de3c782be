//! A run whose lease runs out on its own clock stops at once (issue 9 item 10): paused time,
//! the in-memory store behind a store whose heartbeats never answer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::{JobArgs, JobContext, JobError, PoolConfig, Worker};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

mod support;
use support::*;

const LEASE: Duration = Duration::from_secs(30);

/// Heartbeats every 10 s; checkpoints are written only once an hour, so only a heartbeat
/// could tell the run that its lease is gone, and none answers.
fn config() -> PoolConfig {
    PoolConfig {
        lease_ttl: LEASE,
        heartbeat_interval: Duration::from_secs(10),
        checkpoint_interval: Duration::from_secs(3600),
        ..PoolConfig::default()
    }
}

/// Checkpoints, then does one step (recording its lease token and when), every 700 ms,
/// forever.
struct Stepper {
    steps: Arc<Mutex<Vec<(i64, Duration)>>>,
    start: Instant,
}
#[derive(Serialize, Deserialize)]
struct Steps;
impl JobArgs for Steps {
    const KIND: &'static str = "steps";
}
impl Worker for Stepper {
    type Args = Steps;
    async fn perform(&self, ctx: JobContext, _args: Steps) -> Result<(), JobError> {
        let mut step = 0_u64;
        loop {
            ctx.checkpoint(&step).await?;
            let token = ctx.record().claims;
            self.steps
                .lock()
                .unwrap()
                .push((token, self.start.elapsed()));
            step += 1;
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_heartbeats_never_answer_stops_at_its_lease_expiry_and_hands_the_job_back() {
    let inner = memory();
    let store = Arc::new(FlakyStore::new(inner.clone()));
    store.hang_heartbeats(true);
    let steps = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let pool = pool_on(&(store.clone() as Arc<dyn jobs::store::Store>))
        .config(config())
        .register(Stepper {
            steps: steps.clone(),
            start,
        })
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&Steps).await.unwrap();
    // Handed back at the expiry (not taken over, so the fenced release applies), and claimed
    // again by this pool: a second run.
    wait_for(
        || async { usize::try_from(job(&inner, id).await.claims).unwrap() },
        2,
    )
    .await;
    let first_run: Vec<Duration> = steps
        .lock()
        .unwrap()
        .iter()
        .filter(|(token, _)| *token == 1)
        .map(|(_, at)| *at)
        .collect();
    // The first step follows the claim at once: the lease ran out LEASE later.
    let ran = *first_run.last().unwrap() - first_run[0];
    assert!(
        ran < LEASE,
        "the first run did no step once its lease ran out (its last came {ran:?} after its first)"
    );
    assert!(first_run.len() >= 40, "it ran until then: {first_run:?}");
    let handed_back = start.elapsed() - first_run[0];
    assert!(
        handed_back < LEASE + Duration::from_secs(2),
        "handed back at the expiry, not after a rescue: {handed_back:?}"
    );
    let job = job(&inner, id).await;
    assert_eq!(
        (job.attempts, job.rescues),
        (0, 0),
        "nothing charged: {job:?}"
    );
    pool.skip_grace();
    let _ = pool.shutdown().await;
}

/// Hands its context out, then sleeps for an hour without consulting it.
struct Lender(mpsc::UnboundedSender<JobContext>);
#[derive(Serialize, Deserialize)]
struct Lend;
impl JobArgs for Lend {
    const KIND: &'static str = "lend";
}
impl Worker for Lender {
    type Args = Lend;
    async fn perform(&self, ctx: JobContext, _args: Lend) -> Result<(), JobError> {
        let _ = self.0.send(ctx);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn at_lease_expiry_stopping_fires_and_checkpoint_fails_without_waiting_for_the_store() {
    let inner = memory();
    let store = Arc::new(FlakyStore::new(inner.clone()));
    store.hang_heartbeats(true);
    let (lent, mut contexts) = mpsc::unbounded_channel();
    let pool = pool_on(&(store.clone() as Arc<dyn jobs::store::Store>))
        .config(config())
        .register(Lender(lent))
        .start()
        .await
        .unwrap();
    pool.client().enqueue(&Lend).await.unwrap();
    let ctx = contexts.recv().await.unwrap();
    let claimed = Instant::now();
    assert!(!ctx.is_shutting_down());
    ctx.checkpoint(&1).await.expect("the lease holds");
    tokio::time::timeout(Duration::from_secs(25), ctx.stopping())
        .await
        .expect_err("stopping() waits while the lease holds");
    ctx.stopping().await;
    let at = claimed.elapsed();
    assert!(at <= LEASE, "stopping() fired at {at:?}");
    assert!(at >= LEASE - Duration::from_secs(1), "not before: {at:?}");
    assert!(ctx.is_shutting_down());
    assert!(matches!(ctx.checkpoint(&2).await, Err(JobError::LeaseLost)));
    // The run itself was dropped at the expiry, so the pool holds no job now (or a new run
    // of the handed-back job).
    let job = job(&inner, ctx.id()).await;
    assert_eq!(job.attempts, 0, "{job:?}");
    pool.skip_grace();
    let _ = pool.shutdown().await;
}

/// With heartbeats answering, the lease known to the run moves forward with each one.
#[tokio::test(start_paused = true)]
async fn heartbeats_that_hold_move_the_runs_own_deadline_forward() {
    let store = memory();
    let (lent, mut contexts) = mpsc::unbounded_channel();
    let pool = pool_on(&store)
        .config(config())
        .register(Lender(lent))
        .start()
        .await
        .unwrap();
    pool.client().enqueue(&Lend).await.unwrap();
    let ctx = contexts.recv().await.unwrap();
    tokio::time::timeout(Duration::from_secs(300), ctx.stopping())
        .await
        .expect_err("renewed leases never run out");
    assert!(!ctx.is_shutting_down());
    ctx.checkpoint(&1).await.expect("still held");
    pool.skip_grace();
    let _ = pool.shutdown().await;
}
