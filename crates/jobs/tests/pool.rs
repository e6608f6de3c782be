//! Engine tests on paused tokio time and the in-memory store: outcomes, backoff, timeouts,
//! bad input, grace period, abort-and-release, drain, rescue and store failures.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::store::JobClaimParams;
use jobs::{
    Client, Clock, EnqueueOptions, JobArgs, JobContext, JobError, JobId, JobState, Pool,
    PoolConfig, Worker,
};
use serde::{Deserialize, Serialize};

mod support;
use support::*;

#[derive(Serialize, Deserialize)]
struct Noop(u32);
impl JobArgs for Noop {
    const KIND: &'static str = "noop";
}

struct NoopWorker(Arc<AtomicUsize>);
impl Worker for NoopWorker {
    type Args = Noop;
    async fn perform(&self, _ctx: JobContext, _args: Noop) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn runs_every_job_once_and_completes_it_in_the_store() {
    let store = memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let pool = pool_on(&store)
        .register(NoopWorker(runs.clone()))
        .start()
        .await
        .unwrap();
    let ids = pool
        .client()
        .enqueue_many((0..500).map(Noop), EnqueueOptions::new())
        .await
        .unwrap();
    wait_for(|| count(&store, JobState::Completed), 500).await;
    assert_eq!(runs.load(Ordering::SeqCst), 500);
    for id in [ids[0], ids[499]] {
        let job = job(&store, id).await;
        assert_eq!((job.state, job.attempts), (JobState::Completed, 0));
    }
    assert!(pool.shutdown().await.clean);
}

/// Fails `failures` times, then succeeds; records when each attempt ran.
struct Flaky {
    failures: u32,
    attempts_seen: Arc<Mutex<Vec<(u32, tokio::time::Instant)>>>,
}
#[derive(Serialize, Deserialize)]
struct FlakyArgs;
impl JobArgs for FlakyArgs {
    const KIND: &'static str = "flaky";
}
impl Worker for Flaky {
    type Args = FlakyArgs;
    async fn perform(&self, ctx: JobContext, _args: FlakyArgs) -> Result<(), JobError> {
        self.attempts_seen
            .lock()
            .unwrap()
            .push((ctx.attempt(), tokio::time::Instant::now()));
        if ctx.attempt() <= self.failures {
            return Err(JobError::failed(format!("failure {}", ctx.attempt())));
        }
        Ok(())
    }
    fn backoff(&self, attempt: u32) -> Duration {
        Duration::from_secs(10 * u64::from(attempt))
    }
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_are_retried_after_the_workers_backoff() {
    let store = memory();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pool = pool_on(&store)
        .register(Flaky {
            failures: 2,
            attempts_seen: seen.clone(),
        })
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&FlakyArgs).await.unwrap();
    wait_for(|| count(&store, JobState::Completed), 1).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let gap1 = seen[1].1 - seen[0].1;
    let gap2 = seen[2].1 - seen[1].1;
    // backoff 10 s then 20 s, plus at most one promote interval (1 s) of pickup delay
    assert!(
        gap1 >= Duration::from_secs(10) && gap1 <= Duration::from_secs(12),
        "{gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_secs(20) && gap2 <= Duration::from_secs(22),
        "{gap2:?}"
    );
    let job = job(&store, id).await;
    assert_eq!(job.attempts, 2);
    let messages: Vec<_> = job
        .errors
        .iter()
        .map(|e| (e.attempt, e.message.as_str()))
        .collect();
    assert_eq!(messages, vec![(1, "failure 1"), (2, "failure 2")]);
    let _ = pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn exhausted_jobs_go_to_the_dead_set_and_the_hook_gets_the_whole_job() {
    let store = memory();
    let (hook, dead) = dead_hook();
    let pool = pool_on(&store)
        .register(Flaky {
            failures: 99,
            attempts_seen: Default::default(),
        })
        .on_exhausted(hook)
        .start()
        .await
        .unwrap();
    let id = pool
        .client()
        .enqueue_with(&FlakyArgs, EnqueueOptions::new().max_attempts(3))
        .await
        .unwrap();
    wait_for(|| async { dead.lock().unwrap().len() }, 1).await;
    let hooked = dead.lock().unwrap()[0].clone();
    assert_eq!(
        (hooked.id, hooked.kind.as_str(), hooked.attempts),
        (id, "flaky", 3)
    );
    assert_eq!(hooked.errors.len(), 3);
    let stored = job(&store, id).await;
    assert_eq!(
        (stored.state, stored.attempts, stored.errors.len()),
        (JobState::Dead, 3, 3)
    );
    let _ = pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_dead_finish_whose_reply_was_lost_still_reaches_the_hook_once() {
    // The write moving the job to the dead set commits, but its reply is lost; the completer
    // writes the batch again, which the store now rejects (the job is no longer running).
    let flaky = Arc::new(FlakyStore::new(memory()));
    let store: Arc<dyn jobs::store::Store> = flaky.clone();
    let (hook, dead) = dead_hook();
    flaky.lose_next_finish_reply();
    let pool = pool_on(&store)
        .register(Scripted)
        .on_exhausted(hook)
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&Script::Discard).await.unwrap();
    wait_for(|| async { dead.lock().unwrap().len() }, 1).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let hooked = dead.lock().unwrap().clone();
    assert_eq!(hooked.len(), 1, "the hook ran once: {hooked:?}");
    assert_eq!(hooked[0].id, id);
    assert_eq!(job(&store, id).await.state, JobState::Dead);
    assert!(pool.shutdown().await.clean);
}

/// Sleeps 10 s, then discards itself (its outcome: the dead set).
struct DiscardLater;
#[derive(Serialize, Deserialize)]
struct DiscardLaterArgs;
impl JobArgs for DiscardLaterArgs {
    const KIND: &'static str = "discard_later";
}
impl Worker for DiscardLater {
    type Args = DiscardLaterArgs;
    async fn perform(&self, _ctx: JobContext, _args: DiscardLaterArgs) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Err(JobError::Discard("no longer wanted".into()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_dead_finish_rejected_because_the_lease_was_lost_does_not_reach_the_hook() {
    // The write moving the job to the dead set fails (the database is away), and meanwhile
    // another process rescues and claims the job: the retried write is rejected, and this
    // time the job really is someone else's, so no hook runs here.
    let inner = memory();
    let flaky = Arc::new(FlakyStore::new(inner.clone()));
    let store: Arc<dyn jobs::store::Store> = flaky.clone();
    let clock = Clock::tokio();
    let (hook, dead) = dead_hook();
    let pool = pool_on(&store)
        .clock(clock)
        .register(DiscardLater)
        .on_exhausted(hook)
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&DiscardLaterArgs).await.unwrap();
    wait_for(|| count(&store, JobState::Running), 1).await;
    flaky.fail(true);
    tokio::time::sleep(Duration::from_secs(15)).await; // the run ended; its write failed
    assert_eq!(rescue_an_hour_later(&inner, clock).await, 1);
    let other = inner
        .job_claim(claim_suspect("other", Duration::from_secs(7200), clock))
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    flaky.fail(false);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        dead.lock().unwrap().is_empty(),
        "no hook for a job another owner holds"
    );
    let job = job(&store, id).await;
    assert_eq!(
        (job.state, job.lease_owner.as_deref()),
        (JobState::Running, Some("other"))
    );
    let _ = pool.shutdown().await;
}

/// Does what its args say.
struct Scripted;
#[derive(Serialize, Deserialize)]
enum Script {
    Discard,
    SnoozeOnce,
    Panic,
    Sleep(u64),
}
impl JobArgs for Script {
    const KIND: &'static str = "scripted";
}
impl Worker for Scripted {
    type Args = Script;
    async fn perform(&self, ctx: JobContext, script: Script) -> Result<(), JobError> {
        match script {
            Script::Discard => Err(JobError::discard("not worth it")),
            Script::SnoozeOnce if ctx.record().errors.is_empty() && ctx.record().claims == 1 => {
                Err(JobError::snooze(Duration::from_secs(60)))
            }
            Script::SnoozeOnce => Ok(()),
            Script::Panic => panic!("boom"),
            Script::Sleep(secs) => {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                Ok(())
            }
        }
    }
    fn timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(5))
    }
    fn backoff(&self, _attempt: u32) -> Duration {
        Duration::from_secs(1)
    }
}

#[tokio::test(start_paused = true)]
async fn discard_panic_timeout_and_snooze_map_to_their_states() {
    let store = memory();
    let (hook, dead) = dead_hook();
    let pool = pool_on(&store)
        .register(Scripted)
        .on_exhausted(hook)
        .start()
        .await
        .unwrap();
    let client = pool.client();
    let one = EnqueueOptions::new().max_attempts(1);
    let discard = client
        .enqueue_with(&Script::Discard, EnqueueOptions::new())
        .await
        .unwrap();
    let panic = client
        .enqueue_with(&Script::Panic, one.clone())
        .await
        .unwrap();
    let slow = client.enqueue_with(&Script::Sleep(60), one).await.unwrap();
    let snooze = client.enqueue(&Script::SnoozeOnce).await.unwrap();
    wait_for(|| async { dead.lock().unwrap().len() }, 3).await;
    let message = |id: JobId| {
        let dead = dead.lock().unwrap();
        dead.iter()
            .find(|j| j.id == id)
            .unwrap()
            .errors
            .last()
            .unwrap()
            .message
            .clone()
    };
    assert_eq!(message(discard), "discarded: not worth it");
    assert_eq!(message(panic), "panicked: boom");
    assert_eq!(message(slow), "timed out after 5s (the worker's timeout)");
    let snoozed = job(&store, snooze).await;
    assert_eq!((snoozed.state, snoozed.attempts), (JobState::Scheduled, 0));
    wait_for(|| count(&store, JobState::Completed), 1).await;
    let done = job(&store, snooze).await;
    assert_eq!(
        (done.attempts, done.claims),
        (0, 2),
        "a snooze charges no attempt"
    );
    let _ = pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn bad_input_goes_to_the_dead_set_and_the_pool_keeps_running() {
    let store = memory();
    let (hook, dead) = dead_hook();
    let runs = Arc::new(AtomicUsize::new(0));
    let pool = pool_on(&store)
        .register(NoopWorker(runs.clone()))
        .on_exhausted(hook)
        .start()
        .await
        .unwrap();
    let unknown = insert_raw(&store, "no_such_kind", serde_json::json!({})).await;
    let undecodable = insert_raw(&store, "noop", serde_json::json!("not a number")).await;
    pool.client().enqueue(&Noop(1)).await.unwrap();
    wait_for(|| count(&store, JobState::Dead), 1).await;
    wait_for(|| count(&store, JobState::Completed), 1).await;
    let undecodable = job(&store, undecodable).await;
    assert!(undecodable.errors[0]
        .message
        .starts_with("args of job kind \"noop\" do not deserialize"));
    assert_eq!(dead.lock().unwrap().len(), 1, "the hook sees bad input too");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // A kind this pool has no worker for is never claimed: it waits, uncharged, for a
    // process that knows it (a rolling deploy adding a kind).
    let unknown = job(&store, unknown).await;
    assert_eq!(
        (unknown.state, unknown.claims, unknown.attempts),
        (JobState::Available, 0, 0)
    );
    assert!(unknown.errors.is_empty());
    let _ = pool.shutdown().await;
}

/// A long import that checkpoints every row (one second each).
struct Importer {
    rows_done: Arc<Mutex<Vec<u64>>>,
}
#[derive(Serialize, Deserialize)]
struct Import {
    rows: u64,
}
impl JobArgs for Import {
    const KIND: &'static str = "import";
}
impl Worker for Importer {
    type Args = Import;
    async fn perform(&self, ctx: JobContext, args: Import) -> Result<(), JobError> {
        let mut row: u64 = ctx.checkpoint_state()?.unwrap_or(0);
        while row < args.rows {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.rows_done.lock().unwrap().push(row);
            row += 1;
            ctx.checkpoint(&row).await?;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_a_checkpointing_job_at_once_and_the_next_run_resumes() {
    let store = memory();
    let rows = Arc::new(Mutex::new(Vec::new()));
    let pool = pool_on(&store)
        .register(Importer {
            rows_done: rows.clone(),
        })
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&Import { rows: 100 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30_500)).await;
    let started = tokio::time::Instant::now();
    let report = pool.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "released at the next safe point, not after the grace"
    );
    assert_eq!(report.released, vec![id]);
    assert!(report.clean);
    let released = job(&store, id).await;
    assert_eq!(
        (released.state, released.attempts),
        (JobState::Available, 0)
    );
    let saved: u64 = serde_json::from_value(released.checkpoint.clone().unwrap()).unwrap();
    assert_eq!(saved, rows.lock().unwrap().len() as u64);

    let pool = pool_on(&store)
        .register(Importer {
            rows_done: rows.clone(),
        })
        .start()
        .await
        .unwrap();
    wait_for(|| count(&store, JobState::Completed), 1).await;
    let rows = rows.lock().unwrap().clone();
    assert_eq!(
        rows,
        (0..100).collect::<Vec<_>>(),
        "every row exactly once across the two runs"
    );
    let _ = pool.shutdown().await;
}

#[derive(Serialize, Deserialize)]
struct SaveOnce;
impl JobArgs for SaveOnce {
    const KIND: &'static str = "save_once";
}
/// Saves its progress once (when a write is due), then works on without a safe point.
struct Saver;
impl Worker for Saver {
    type Args = SaveOnce;
    async fn perform(&self, ctx: JobContext, _: SaveOnce) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_secs(2)).await;
        ctx.checkpoint(&7_u64).await?;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    }
}

/// A run dropped (grace over) while its checkpoint write is in flight has that checkpoint
/// written by its release: a write counts as saved only once it held. (Before the fix the
/// checkpoint was marked saved when its write was sent, and was lost.)
#[tokio::test(start_paused = true)]
async fn a_checkpoint_whose_write_is_cut_short_is_saved_by_the_release() {
    let inner = memory();
    let store = Arc::new(jobs::testing::FlakyStore::new(inner.clone()));
    store.hang_checkpoints(true);
    let pool = pool_on(&(store.clone() as Arc<dyn jobs::store::Store>))
        .register(Saver)
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&SaveOnce).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await; // its write hangs
    assert_eq!(
        job(&inner, id).await.checkpoint,
        None,
        "the write did not land"
    );
    store.hang_checkpoints(false);
    let report = pool.shutdown().await; // the grace runs out; the run is dropped
    assert_eq!(report.released, vec![id]);
    let released = job(&inner, id).await;
    assert_eq!(released.state, JobState::Available);
    assert_eq!(
        released.checkpoint,
        Some(serde_json::json!(7)),
        "{released:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn jobs_that_ignore_shutdown_are_aborted_after_one_shared_grace_and_released() {
    let store = memory();
    let pool = pool_on(&store).register(Stubborn).start().await.unwrap();
    let ids = pool
        .client()
        .enqueue_many((0..10).map(|_| StubbornArgs), EnqueueOptions::new())
        .await
        .unwrap();
    wait_for(|| count(&store, JobState::Running), 10).await;
    let started = tokio::time::Instant::now();
    let report = pool.shutdown().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(20) && took < Duration::from_secs(22),
        "one shared grace: {took:?}"
    );
    let mut released = report.released.clone();
    released.sort();
    assert_eq!(released, ids);
    for id in ids {
        let job = job(&store, id).await;
        assert_eq!(
            (job.state, job.attempts, job.lease_owner),
            (JobState::Available, 0, None)
        );
    }
}

/// Ignores shutdown and sleeps for an hour.
struct Stubborn;
#[derive(Serialize, Deserialize)]
struct StubbornArgs;
impl JobArgs for StubbornArgs {
    const KIND: &'static str = "stubborn";
}
impl Worker for Stubborn {
    type Args = StubbornArgs;
    async fn perform(&self, _ctx: JobContext, _args: StubbornArgs) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn skipping_the_grace_releases_at_once() {
    let store = memory();
    let pool = pool_on(&store).register(Stubborn).start().await.unwrap();
    let id = pool.client().enqueue(&StubbornArgs).await.unwrap();
    wait_for(|| count(&store, JobState::Running), 1).await;
    let started = tokio::time::Instant::now();
    let shutdown = tokio::spawn({
        let pool = pool.clone();
        async move { pool.shutdown().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    pool.skip_grace();
    let report = shutdown.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(report.released, vec![id]);
    assert_eq!(job(&store, id).await.state, JobState::Available);
}

#[tokio::test(start_paused = true)]
async fn drain_stops_fetching_and_resolves_when_idle() {
    let store = memory();
    let pool = pool_on(&store).register(Scripted).start().await.unwrap();
    pool.client().enqueue(&Script::Sleep(3)).await.unwrap();
    wait_for(|| count(&store, JobState::Running), 1).await;
    let started = tokio::time::Instant::now();
    pool.drain().await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(pool.busy(), 0);
    assert_eq!(count(&store, JobState::Completed).await, 1);
    let later = pool.client().enqueue(&Script::Sleep(0)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        job(&store, later).await.state,
        JobState::Available,
        "a drained pool fetches nothing"
    );
    assert!(pool.shutdown().await.released.is_empty());
}

/// Another worker's claim of one job from `default`.
fn claim_one(owner: &str, lease_ttl: Duration, clock: Clock) -> JobClaimParams {
    JobClaimParams {
        queue: "default".into(),
        owner: owner.into(),
        limit: 1,
        lease_ttl,
        now: clock.now(),
        kinds: None,
        suspects: false,
    }
}

/// Another worker's quarantine claim of one suspect from `default` (a rescued job).
fn claim_suspect(owner: &str, lease_ttl: Duration, clock: Clock) -> JobClaimParams {
    JobClaimParams {
        suspects: true,
        ..claim_one(owner, lease_ttl, clock)
    }
}

#[tokio::test(start_paused = true)]
async fn jobs_of_a_dead_worker_are_rescued_after_their_lease_expires() {
    let store = memory();
    let clock = Clock::tokio();
    let client = Client::new(store.clone()).with_clock(clock);
    let id = client.enqueue(&Noop(1)).await.unwrap();
    // A worker that claims the job and then dies (never heartbeats).
    let claimed = store
        .job_claim(claim_one("dead-worker", Duration::from_secs(30), clock))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let runs = Arc::new(AtomicUsize::new(0));
    let started = tokio::time::Instant::now();
    let pool = pool_on(&store)
        .clock(clock)
        .register(NoopWorker(runs.clone()))
        .start()
        .await
        .unwrap();
    wait_for(|| count(&store, JobState::Completed), 1).await;
    let took = started.elapsed();
    // lease 30 s + at most one rescue interval (10 s)
    assert!(
        took >= Duration::from_secs(30) && took <= Duration::from_secs(41),
        "{took:?}"
    );
    let job = job(&store, id).await;
    // Rescued (no strike: it ran beside others), then run alone as a suspect and cleared.
    assert_eq!((job.rescues, job.suspect, job.claims), (1, None, 2));
    let _ = pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_that_keeps_killing_its_worker_becomes_a_dead_poison_pill() {
    let store = memory();
    let clock = Clock::tokio();
    let client = Client::new(store.clone()).with_clock(clock);
    let id = client.enqueue(&Noop(1)).await.unwrap();
    let (hook, dead) = dead_hook();
    let config = PoolConfig {
        max_rescues: 2,
        ..PoolConfig::default()
    };
    // Four workers in a row claim it and die (the first claim is a normal one, which only
    // makes it a suspect; the next three are quarantine claims, whose rescues count); the
    // pool only rescues (no worker for its kind is needed since it never runs here: a
    // paused pool with no queue for it).
    for round in 0..4 {
        wait_for(|| count(&store, JobState::Available), 1).await;
        let claim = if round == 0 { claim_one } else { claim_suspect };
        store
            .job_claim(claim("doomed", Duration::from_secs(30), clock))
            .await
            .unwrap();
        let rescuer = pool_on(&store)
            .clock(clock)
            .config(config.clone())
            .queue("elsewhere", 1)
            .on_exhausted(hook.clone())
            .start()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(45)).await;
        let _ = rescuer.shutdown().await;
    }
    let job = job(&store, id).await;
    // three expired leases in quarantine: two strikes back to the queue, the third one is
    // the poison pill
    assert_eq!(
        (job.state, job.rescues, job.suspect),
        (JobState::Dead, 4, Some(3))
    );
    assert!(
        job.errors.last().unwrap().message.contains("rescued"),
        "{:?}",
        job.errors
    );
    assert_eq!(dead.lock().unwrap()[0].id, id);
}

#[tokio::test(start_paused = true)]
async fn store_errors_restart_children_after_a_delay_and_lose_nothing() {
    let inner = memory();
    let store = Arc::new(FlakyStore::new(inner.clone()));
    let runs = Arc::new(AtomicUsize::new(0));
    let pool = Pool::builder(store.clone())
        .clock(Clock::tokio())
        .register(NoopWorker(runs.clone()))
        .start()
        .await
        .unwrap();
    pool.client()
        .enqueue_many((0..200).map(Noop), EnqueueOptions::new())
        .await
        .unwrap();
    wait_for(|| count(&inner, JobState::Completed), 50).await;
    store.fail(true);
    let failing_since = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls_while_down = store.calls();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls_per_30s = store.calls() - calls_while_down;
    // A handful of children, each trying again about once a second (the restart cap).
    assert!(
        calls_per_30s < 300,
        "backing off, not a hot loop: {calls_per_30s} calls in 30 s"
    );
    store.fail(false);
    wait_for(|| count(&inner, JobState::Completed), 200).await;
    assert!(failing_since.elapsed() < Duration::from_secs(100));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        200,
        "every job ran once: nothing lost, nothing doubled"
    );
    assert!(pool.shutdown().await.clean);
}

#[tokio::test(start_paused = true)]
async fn work_resumes_within_a_second_of_the_store_coming_back_after_a_long_outage() {
    let inner = memory();
    let store = Arc::new(FlakyStore::new(inner.clone()));
    let runs = Arc::new(AtomicUsize::new(0));
    let pool = Pool::builder(store.clone())
        .clock(Clock::tokio())
        .register(NoopWorker(runs.clone()))
        .start()
        .await
        .unwrap();
    pool.client().enqueue(&Noop(0)).await.unwrap();
    wait_for(|| count(&inner, JobState::Completed), 1).await;
    store.fail(true);
    // Long enough for an uncapped exponential backoff to reach tens of seconds.
    tokio::time::sleep(Duration::from_secs(30)).await;
    Client::new(inner.clone())
        .enqueue_many((1..=100).map(Noop), EnqueueOptions::new())
        .await
        .unwrap();
    store.fail(false);
    let back = tokio::time::Instant::now();
    wait_for(|| count(&inner, JobState::Completed), 101).await;
    assert!(
        back.elapsed() <= Duration::from_millis(1_500),
        "work resumed {:?} after the store came back",
        back.elapsed()
    );
    assert_eq!(runs.load(Ordering::SeqCst), 101);
    assert!(pool.shutdown().await.clean);
}

#[tokio::test(start_paused = true)]
async fn each_queue_runs_at_most_its_concurrency() {
    let store = memory();
    let peak = Arc::new(AtomicUsize::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let pool = pool_on(&store)
        .queue("default", 3)
        .register(Gauge {
            now: now.clone(),
            peak: peak.clone(),
        })
        .start()
        .await
        .unwrap();
    pool.client()
        .enqueue_many((0..30).map(|_| GaugeArgs), EnqueueOptions::new())
        .await
        .unwrap();
    wait_for(|| count(&store, JobState::Completed), 30).await;
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    let _ = pool.shutdown().await;
}

struct Gauge {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}
#[derive(Serialize, Deserialize)]
struct GaugeArgs;
impl JobArgs for GaugeArgs {
    const KIND: &'static str = "gauge";
}
impl Worker for Gauge {
    type Args = GaugeArgs;
    async fn perform(&self, _ctx: JobContext, _args: GaugeArgs) -> Result<(), JobError> {
        let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(running, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Rescues as another process's rescuer would at `now`; returns how many jobs went back to
/// their queue.
async fn rescue_at(store: &Arc<dyn jobs::store::Store>, now: jobs::Timestamp) -> usize {
    let params = jobs::store::JobRescueParams {
        now,
        max_rescues: 10,
        limit: 10,
    };
    store
        .job_rescue_expired(params)
        .await
        .unwrap()
        .requeued
        .len()
}

/// Rescues as a rescuer an hour from now would (every lease has expired by then).
async fn rescue_an_hour_later(store: &Arc<dyn jobs::store::Store>, clock: Clock) -> usize {
    rescue_at(store, clock.now() + Duration::from_secs(3600)).await
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_lease_was_taken_over_stops_and_writes_nothing() {
    let store = memory();
    let clock = Clock::tokio();
    let finished = Arc::new(AtomicU32::new(0));
    let pool = pool_on(&store)
        .clock(clock)
        .register(Stubborn)
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&StubbornArgs).await.unwrap();
    wait_for(|| count(&store, JobState::Running), 1).await;
    // Another process rescues and re-claims the job (as if this one had been frozen).
    assert_eq!(rescue_an_hour_later(&store, clock).await, 1);
    let other = store
        .job_claim(claim_suspect("other", Duration::from_secs(7200), clock))
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    tokio::time::sleep(Duration::from_secs(15)).await; // a heartbeat notices
    assert_eq!(pool.busy(), 0, "the run was stopped");
    let report = pool.shutdown().await;
    assert!(
        report.released.is_empty(),
        "it must not release a job it no longer owns"
    );
    let job = job(&store, id).await;
    assert_eq!(
        (job.state, job.lease_owner.as_deref()),
        (JobState::Running, Some("other"))
    );
    drop(finished);
}

/// Runs 20 s under its first lease, 120 s under any later one; counts its runs.
struct Reissued(Arc<AtomicUsize>);
#[derive(Serialize, Deserialize)]
struct ReissuedArgs;
impl JobArgs for ReissuedArgs {
    const KIND: &'static str = "reissued";
}
impl Worker for Reissued {
    type Args = ReissuedArgs;
    async fn perform(&self, ctx: JobContext, _args: ReissuedArgs) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let secs = if ctx.record().claims == 1 { 20 } else { 120 };
        tokio::time::sleep(Duration::from_secs(secs)).await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_claimed_again_by_the_same_pool_stops_the_stale_run_and_keeps_the_new_one_leased() {
    // The pool's lease ran out (say its heartbeats failed through a database outage), the job
    // was rescued and this same pool claimed it again while its first run was still going.
    let store = memory();
    let clock = Clock::tokio();
    let runs = Arc::new(AtomicUsize::new(0));
    let pool = pool_on(&store)
        .clock(clock)
        .register(Reissued(runs.clone()))
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&ReissuedArgs).await.unwrap();
    wait_for(|| count(&store, JobState::Running), 1).await;
    assert_eq!(rescue_an_hour_later(&store, clock).await, 1);
    wait_for(|| async { runs.load(Ordering::SeqCst) }, 2).await;
    assert_eq!(
        job(&store, id).await.claims,
        2,
        "this pool claimed it again"
    );
    assert_eq!(pool.busy(), 1, "the stale run was stopped at once");

    // The new run outlives several leases: it must stay heartbeated, not be rescued again
    // when the stale run ends.
    tokio::time::sleep(Duration::from_secs(150)).await;
    let job = job(&store, id).await;
    assert_eq!(
        (job.state, job.rescues, job.claims),
        (JobState::Completed, 1, 2),
        "completed by the second run (in quarantine), rescued only the once: {job:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(pool.shutdown().await.clean);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_a_long_job_leased_through_its_run_and_the_grace_period() {
    let store = memory();
    let clock = Clock::tokio();
    let pool = pool_on(&store)
        .clock(clock)
        .register(Scripted2)
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&LongArgs(100)).await.unwrap();
    wait_for(|| count(&store, JobState::Running), 1).await;
    // Another process's rescuer looks every 5 s: the 30 s lease never runs out.
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(rescue_at(&store, clock.now()).await, 0);
    }
    // Shutdown during the job: it ignores the signal, runs on through the grace period.
    let shutdown = tokio::spawn({
        let pool = pool.clone();
        async move { pool.shutdown().await }
    });
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            rescue_at(&store, clock.now()).await,
            0,
            "still heartbeated during the grace"
        );
    }
    let report = shutdown.await.unwrap();
    assert_eq!(report.released, vec![id]);
    assert_eq!(job(&store, id).await.rescues, 0);
}

/// Sleeps for the given seconds, ignoring shutdown.
struct Scripted2;
#[derive(Serialize, Deserialize)]
struct LongArgs(u64);
impl JobArgs for LongArgs {
    const KIND: &'static str = "long";
}
impl Worker for Scripted2 {
    type Args = LongArgs;
    async fn perform(&self, _ctx: JobContext, LongArgs(secs): LongArgs) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn inspection_shows_latency_running_jobs_and_retries_and_cancels() {
    let store = memory();
    let clock = Clock::tokio();
    let client = Client::new(store.clone()).with_clock(clock);
    let waiting = client.enqueue(&LongArgs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let stats = client.queue_stats().await.unwrap();
    assert_eq!(stats[0].latency(clock.now()), Duration::from_secs(7));
    assert!(client.cancel_job(waiting).await.unwrap());
    assert_eq!(job(&store, waiting).await.state, JobState::Cancelled);

    let (hook, dead) = dead_hook();
    let pool = pool_on(&store)
        .clock(clock)
        .worker_id("worker-a")
        .register(Scripted2)
        .register(Scripted)
        .on_exhausted(hook)
        .start()
        .await
        .unwrap();
    let long = client.enqueue(&LongArgs(60)).await.unwrap();
    let doomed = client
        .enqueue_with(&Script::Discard, EnqueueOptions::new())
        .await
        .unwrap();
    wait_for(|| async { dead.lock().unwrap().len() }, 1).await;
    let running = client
        .jobs_in_state(JobState::Running, None, 10)
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(
        (running[0].id, running[0].lease_owner.as_deref()),
        (long, Some("worker-a"))
    );
    assert!(running[0].lease_expires_at.unwrap() > clock.now());
    let dead_jobs = client
        .jobs_in_state(JobState::Dead, None, 10)
        .await
        .unwrap();
    assert_eq!(dead_jobs[0].id, doomed);
    assert!(client.retry_job(doomed).await.unwrap());
    assert!(
        client.retry_job(waiting).await.unwrap(),
        "a cancelled job can be retried too"
    );
    wait_for(|| count(&store, JobState::Dead), 1).await; // the discard happens again
    wait_for(|| count(&store, JobState::Completed), 2).await;
    let retried = job(&store, doomed).await;
    assert_eq!(retried.errors.len(), 2, "errors are kept across a retry");
    let _ = pool.shutdown().await;
}

/// Checkpoints `depth` levels deep twice, then fails with whatever the second one answered.
struct DeepCheckpointer;
#[derive(Serialize, Deserialize)]
struct DeepCheckpoint(usize);
impl JobArgs for DeepCheckpoint {
    const KIND: &'static str = "deep_checkpoint";
}
impl Worker for DeepCheckpointer {
    type Args = DeepCheckpoint;
    async fn perform(
        &self,
        ctx: JobContext,
        DeepCheckpoint(depth): DeepCheckpoint,
    ) -> Result<(), JobError> {
        let state = (0..depth).fold(serde_json::json!(1), |v, _| serde_json::json!([v]));
        // The first is buffered (the checkpoint interval has not passed), so only the run's
        // end would write it.
        ctx.checkpoint(&state).await?;
        ctx.checkpoint(&state).await
    }
}

/// A checkpoint nested deeper than any store reads back is refused to the job at once (its
/// attempt fails with the reason) and never kept: before, it was buffered and the
/// completer's write of it was refused again and again, holding up every finish behind it.
#[tokio::test(start_paused = true)]
async fn a_checkpoint_too_deep_to_read_back_fails_the_attempt_and_nothing_else() {
    let store = memory();
    let (hook, dead) = dead_hook();
    let pool = pool_on(&store)
        .register(DeepCheckpointer)
        .on_exhausted(hook)
        .start()
        .await
        .unwrap();
    let options = EnqueueOptions::new().max_attempts(1);
    let client = pool.client();
    let deep = client
        .enqueue_with(
            &DeepCheckpoint(jobs::store::MAX_JSON_DEPTH + 1),
            options.clone(),
        )
        .await
        .unwrap();
    let fine = client
        .enqueue_with(&DeepCheckpoint(jobs::store::MAX_JSON_DEPTH), options)
        .await
        .unwrap();
    wait_for(|| async { dead.lock().unwrap().len() }, 1).await;
    wait_for(
        || async { usize::from(job(&store, fine).await.state == JobState::Completed) },
        1,
    )
    .await;
    let buried = job(&store, deep).await;
    assert_eq!(buried.state, JobState::Dead);
    assert_eq!(buried.checkpoint, None, "nothing of it was saved");
    assert!(
        buried.errors[0].message.contains("nested 101 levels deep"),
        "{:?}",
        buried.errors
    );
    assert!(pool.shutdown().await.clean);
}

/// A job that takes `secs` seconds and records how many others ran beside it when it
/// started (`alone` holds the count seen by the suspect, `id` 0).
#[derive(Serialize, Deserialize)]
struct Busy {
    id: u32,
    secs: u64,
}
impl JobArgs for Busy {
    const KIND: &'static str = "busy";
}

struct BusyWorker {
    active: Arc<AtomicUsize>,
    beside_suspect: Arc<Mutex<Vec<usize>>>,
}
impl Worker for BusyWorker {
    type Args = Busy;
    async fn perform(&self, _ctx: JobContext, args: Busy) -> Result<(), JobError> {
        let others = self.active.fetch_add(1, Ordering::SeqCst);
        if args.id == 0 {
            self.beside_suspect.lock().unwrap().push(others);
        }
        tokio::time::sleep(Duration::from_secs(args.secs)).await;
        let others = self.active.fetch_sub(1, Ordering::SeqCst) - 1;
        if args.id == 0 {
            self.beside_suspect.lock().unwrap().push(others);
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_suspect_runs_alone_in_quarantine_and_is_cleared() {
    let store = memory();
    let clock = Clock::tokio();
    let client = Client::new(store.clone()).with_clock(clock);
    let suspect = client.enqueue(&Busy { id: 0, secs: 5 }).await.unwrap();
    // A worker claims it and dies: once its lease expires, the job is a suspect.
    let claimed = store
        .job_claim(claim_one("dead-worker", Duration::from_secs(30), clock))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    for id in 1..=40 {
        client.enqueue(&Busy { id, secs: 7 }).await.unwrap();
    }
    let active = Arc::new(AtomicUsize::new(0));
    let beside_suspect = Arc::new(Mutex::new(Vec::new()));
    let pool = pool_on(&store)
        .clock(clock)
        .queue("default", 4)
        .register(BusyWorker {
            active: active.clone(),
            beside_suspect: beside_suspect.clone(),
        })
        .start()
        .await
        .unwrap();
    wait_for(|| count(&store, JobState::Completed), 41).await;
    assert_eq!(
        *beside_suspect.lock().unwrap(),
        vec![0, 0],
        "nothing ran beside the suspect, from its start to its end"
    );
    let job = job(&store, suspect).await;
    assert_eq!(
        (job.state, job.rescues, job.suspect),
        (JobState::Completed, 1, None),
        "{job:?}"
    );
    let _ = pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_kind_no_process_knows_waits_then_goes_dead_after_unknown_kind_ttl() {
    let store = memory();
    let (hook, dead) = dead_hook();
    let pool = pool_on(&store)
        .config(PoolConfig {
            unknown_kind_ttl: Duration::from_secs(3600),
            ..PoolConfig::default()
        })
        .register(NoopWorker(Arc::new(AtomicUsize::new(0))))
        .on_exhausted(hook)
        .start()
        .await
        .unwrap();
    let unknown = insert_raw(&store, "from_the_future", serde_json::json!({})).await;
    tokio::time::sleep(Duration::from_secs(1800)).await;
    let waiting = job(&store, unknown).await;
    assert_eq!((waiting.state, waiting.claims), (JobState::Available, 0));
    assert_eq!(
        pool.waiting_unknown_kinds(),
        1,
        "shown as waiting for its kind"
    );
    tokio::time::sleep(Duration::from_secs(1900)).await;
    let expired = job(&store, unknown).await;
    assert_eq!(expired.state, JobState::Dead);
    assert!(
        expired.errors[0].message.contains("from_the_future"),
        "{:?}",
        expired.errors
    );
    assert_eq!(dead.lock().unwrap().len(), 1, "the hook sees it");
    assert_eq!(pool.waiting_unknown_kinds(), 0, "no longer waiting");
    let _ = pool.shutdown().await;
}
