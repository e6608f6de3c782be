//! The testing kit used as an application's tests would use it: outcomes of direct runs,
//! contexts for direct `perform` calls, inline and manual modes, assertions on enqueued
//! jobs, waiting for a pool's run, and the fault-injecting store.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jobs::testing::{
    assert_enqueued, enqueued, refute_enqueued, run_job, FlakyStore, Harness, Outcome, TestContext,
};
use jobs::{
    Client, Clock, EnqueueOptions, JobArgs, JobContext, JobError, JobState, MemoryStore, Pool,
    WaitError, Worker,
};
use serde::{Deserialize, Serialize};

/// What the worker should do with the job.
#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
enum Act {
    Succeed,
    Fail,
    Discard,
    Snooze,
    Panic,
    Hang,
}

#[derive(Serialize, Deserialize)]
struct Task {
    act: Act,
}
impl JobArgs for Task {
    const KIND: &'static str = "task";
}

struct Tasks;
impl Worker for Tasks {
    type Args = Task;
    async fn perform(&self, _ctx: JobContext, args: Task) -> Result<(), JobError> {
        match args.act {
            Act::Succeed => Ok(()),
            Act::Fail => Err(JobError::failed("boom")),
            Act::Discard => Err(JobError::discard("bad address")),
            Act::Snooze => Err(JobError::snooze(Duration::from_secs(30))),
            Act::Panic => panic!("kaput"),
            Act::Hang => std::future::pending().await,
        }
    }
    fn timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(10))
    }
    fn backoff(&self, attempt: u32) -> Duration {
        Duration::from_secs(60 * u64::from(attempt))
    }
}

fn task(act: Act) -> Task {
    Task { act }
}

#[tokio::test(start_paused = true)]
async fn run_job_reports_what_the_engine_would_record() {
    let clock = Clock::tokio();
    let now = clock.now();
    assert_eq!(
        run_job(&Tasks, task(Act::Succeed)).await,
        Outcome::Completed
    );
    assert_eq!(
        TestContext::new()
            .clock(clock)
            .attempt(2)
            .run(&Tasks, task(Act::Fail))
            .await,
        Outcome::Retry {
            at: now + Duration::from_secs(120),
            error: "boom".into()
        },
        "retried after the worker's backoff for attempt 2"
    );
    let last = TestContext::new().attempt(3).max_attempts(3);
    assert_eq!(
        last.run(&Tasks, task(Act::Fail)).await,
        Outcome::Dead {
            reason: "boom".into()
        }
    );
    assert_eq!(
        run_job(&Tasks, task(Act::Discard)).await,
        Outcome::Dead {
            reason: "discarded: bad address".into()
        }
    );
    assert_eq!(
        TestContext::new()
            .clock(clock)
            .run(&Tasks, task(Act::Snooze))
            .await,
        Outcome::Snoozed {
            until: now + Duration::from_secs(30)
        }
    );
    match run_job(&Tasks, task(Act::Panic)).await {
        Outcome::Retry { error, .. } => assert_eq!(error, "panicked: kaput"),
        other => panic!("a panic is a failed attempt, got {other:?}"),
    }
    match run_job(&Tasks, task(Act::Hang)).await {
        Outcome::Retry { error, .. } => assert!(error.contains("timed out after 10s"), "{error}"),
        other => panic!("a timeout is a failed attempt, got {other:?}"),
    }
}

/// The kit's outcome is the one a real pool records: same mapping, same messages.
#[tokio::test(start_paused = true)]
async fn run_job_agrees_with_a_real_pool() {
    let store = Arc::new(MemoryStore::new());
    let pool = Pool::builder(store)
        .clock(Clock::tokio())
        .register(Tasks)
        .start()
        .await
        .unwrap();
    let once = EnqueueOptions::new().max_attempts(1);
    for act in [Act::Fail, Act::Discard, Act::Panic, Act::Hang] {
        let id = pool
            .client()
            .enqueue_with(&task(act), once.clone())
            .await
            .unwrap();
        let job = pool
            .client()
            .wait_for(id, Duration::from_secs(60))
            .await
            .unwrap();
        let kit = TestContext::new()
            .max_attempts(1)
            .run(&Tasks, task(act))
            .await;
        let recorded = job.errors.last().map(|e| e.message.clone()).unwrap();
        assert_eq!(
            kit,
            Outcome::Dead { reason: recorded },
            "{act:?}: the kit says what the pool recorded"
        );
    }
    assert!(pool.shutdown().await.clean);
}

#[derive(Serialize, Deserialize)]
struct Import {
    rows: u64,
}
impl JobArgs for Import {
    const KIND: &'static str = "import";
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Report {
    rows: u64,
}
impl JobArgs for Report {
    const KIND: &'static str = "report";
}

/// Imports rows one by one from its checkpoint, then enqueues a report.
struct Importer;
impl Worker for Importer {
    type Args = Import;
    async fn perform(&self, ctx: JobContext, args: Import) -> Result<(), JobError> {
        let mut row: u64 = ctx.checkpoint_state()?.unwrap_or(0);
        while row < args.rows {
            row += 1;
            ctx.checkpoint(&row).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let report = EnqueueOptions::new().queue("reports");
        ctx.enqueue(&Report { rows: row }, report).await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_context_for_a_direct_perform_resumes_stops_and_enqueues() {
    let (ctx, run) = TestContext::new()
        .kind(Import::KIND)
        .attempt(2)
        .checkpoint(&7u64)
        .build()
        .await;
    assert_eq!((ctx.attempt(), ctx.kind()), (2, "import"));
    Importer
        .perform(ctx, Import { rows: 10 })
        .await
        .expect("resumes at row 7 and finishes");
    assert_eq!(run.checkpoint::<u64>(), Some(10));
    assert_enqueued::<Report, _>(&run.client(), |report, job| {
        report.rows == 10 && job.queue == "reports"
    })
    .await;

    // A shutdown while it runs: the next safe point says stop, progress kept.
    let (ctx, run) = TestContext::new().build().await;
    let job = tokio::spawn(Importer.perform(ctx, Import { rows: 100 }));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    run.shutdown();
    let stopped = job.await.unwrap();
    assert!(matches!(stopped, Err(JobError::Interrupted)), "{stopped:?}");
    assert_eq!(run.checkpoint::<u64>(), Some(4));
    refute_enqueued::<Report, _>(&run.client(), |_, _| true).await;
}

#[tokio::test(start_paused = true)]
async fn released_with_its_checkpoint_on_shutdown() {
    let outcome = TestContext::new()
        .checkpoint(&5u64)
        .shutting_down()
        .run(&Importer, Import { rows: 10 })
        .await;
    assert_eq!(
        outcome,
        Outcome::Released {
            checkpoint: Some(6.into())
        }
    );
}

#[tokio::test(start_paused = true)]
async fn inline_mode_runs_jobs_and_their_follow_ups_at_enqueue() {
    let harness = Harness::inline().register(Importer).register(Reports);
    let client = harness.client();
    let id = client.enqueue(&Import { rows: 3 }).await.unwrap();
    assert_eq!(
        client.job(id).await.unwrap().unwrap().state,
        JobState::Completed,
        "ran before the enqueue returned"
    );
    let runs = harness.runs();
    let kinds: Vec<_> = runs.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["report", "import"],
        "the follow-up ran inside the import"
    );
    assert!(runs.iter().all(|r| r.outcome.is_completed()));
    assert!(enqueued::<Report>(&client).await.is_empty());
}

/// Files reports.
#[derive(Default)]
struct Reports;
impl Worker for Reports {
    type Args = Report;
    async fn perform(&self, _: JobContext, _: Report) -> Result<(), JobError> {
        Ok(())
    }
}

struct FailsOnce(Arc<AtomicU32>);
impl Worker for FailsOnce {
    type Args = Task;
    async fn perform(&self, _: JobContext, _: Task) -> Result<(), JobError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(JobError::failed("first time"));
        }
        Ok(())
    }
    fn backoff(&self, _: u32) -> Duration {
        Duration::from_secs(60)
    }
}

#[tokio::test(start_paused = true)]
async fn manual_mode_records_then_drains_what_is_due() {
    let calls = Arc::new(AtomicU32::new(0));
    let harness = Harness::manual()
        .register(Importer)
        .register(Reports)
        .register(FailsOnce(calls.clone()));
    let client = harness.client();
    let import = client.enqueue(&Import { rows: 2 }).await.unwrap();
    let later = EnqueueOptions::new().run_in(Duration::from_secs(600));
    client
        .enqueue_with(&Import { rows: 1 }, later)
        .await
        .unwrap();
    let flaky = client.enqueue(&task(Act::Fail)).await.unwrap();
    assert_enqueued::<Import, _>(&client, |args, job| {
        args.rows == 2 && job.state == JobState::Available
    })
    .await;
    assert_enqueued::<Import, _>(&client, |_, job| job.state == JobState::Scheduled).await;
    assert_eq!(enqueued::<Import>(&client).await.len(), 2);
    assert!(
        harness.runs().is_empty(),
        "manual mode runs nothing at enqueue"
    );

    let runs = harness.drain().await;
    let ran: Vec<_> = runs.iter().map(|r| (r.kind.as_str(), r.attempt)).collect();
    assert_eq!(ran, [("import", 1), ("task", 1), ("report", 1)]);
    assert!(matches!(runs[1].outcome, Outcome::Retry { .. }));
    assert_eq!(
        client.job(import).await.unwrap().unwrap().state,
        JobState::Completed
    );
    assert_eq!(
        client.job(flaky).await.unwrap().unwrap().state,
        JobState::Scheduled
    );
    assert!(harness.drain().await.is_empty(), "the retry is not due yet");

    tokio::time::advance(Duration::from_secs(601)).await;
    let runs = harness.drain().await;
    let ran: Vec<_> = runs.iter().map(|r| (r.kind.as_str(), r.attempt)).collect();
    assert_eq!(
        ran,
        [("task", 2), ("import", 1), ("report", 1)],
        "in claim order: the retry was due first"
    );
    assert!(runs.iter().all(|r| r.outcome.is_completed()));
    refute_enqueued::<Import, _>(&client, |_, _| true).await;
    assert_eq!(harness.runs().len(), 6);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "expected a waiting job of kind \"report\" that matches")]
async fn assert_enqueued_says_what_it_found() {
    let client = Client::new(Arc::new(MemoryStore::new()));
    client.enqueue(&Report { rows: 1 }).await.unwrap();
    assert_enqueued::<Report, _>(&client, |report, _| report.rows == 2).await;
}

#[tokio::test(start_paused = true)]
async fn wait_for_returns_the_finished_job_or_says_why_not() {
    let store = Arc::new(MemoryStore::new());
    let pool = Pool::builder(store.clone())
        .clock(Clock::tokio())
        .register(Importer)
        .start()
        .await
        .unwrap();
    let client = pool.client();
    let id = client.enqueue(&Import { rows: 3 }).await.unwrap();
    let job = client.wait_for(id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(job.state, JobState::Completed);

    let elsewhere = EnqueueOptions::new().queue("elsewhere"); // a queue this pool does not run
    let stuck = client
        .enqueue_with(&Import { rows: 1 }, elsewhere)
        .await
        .unwrap();
    match client.wait_for(stuck, Duration::from_secs(5)).await {
        Err(WaitError::TimedOut { id, .. }) => assert_eq!(id, stuck),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let missing = jobs::JobId(9_999);
    assert!(matches!(
        client.wait_for(missing, Duration::from_secs(1)).await,
        Err(WaitError::NotFound(_))
    ));
    assert!(pool.shutdown().await.clean);
}

#[tokio::test(start_paused = true)]
async fn a_pool_rides_out_a_flaky_store() {
    let flaky = Arc::new(FlakyStore::new(Arc::new(MemoryStore::new())));
    let pool = Pool::builder(flaky.clone())
        .clock(Clock::tokio())
        .register(Importer)
        .start()
        .await
        .unwrap();
    let client = pool.client();
    let id = client.enqueue(&Import { rows: 2 }).await.unwrap();
    flaky.fail(true);
    tokio::time::sleep(Duration::from_secs(5)).await;
    flaky.fail(false);
    let job = client.wait_for(id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert!(pool.shutdown().await.clean);
}

#[derive(Serialize, Deserialize)]
struct Tagged;
impl JobArgs for Tagged {
    const KIND: &'static str = "tagged";
}
/// Fails unless its job carries a `tenant`.
struct NeedsTenant;
impl Worker for NeedsTenant {
    type Args = Tagged;
    async fn perform(&self, ctx: JobContext, _: Tagged) -> Result<(), JobError> {
        match ctx.metadata().get("tenant") {
            Some("acme") => Ok(()),
            other => Err(JobError::discard(format!("no tenant: {other:?}"))),
        }
    }
}

/// A worker reads its job's metadata from its context, in a direct `perform` as in a run.
#[tokio::test(start_paused = true)]
async fn a_test_context_carries_metadata() {
    let (ctx, _run) = TestContext::new().metadata("tenant", "acme").build().await;
    assert_eq!(ctx.metadata().get("tenant"), Some("acme"));
    assert!(NeedsTenant.perform(ctx, Tagged).await.is_ok());
    let outcome = TestContext::new()
        .metadata("tenant", "acme")
        .run(&NeedsTenant, Tagged)
        .await;
    assert_eq!(outcome, Outcome::Completed);
    let without = TestContext::new().run(&NeedsTenant, Tagged).await;
    assert!(matches!(without, Outcome::Dead { .. }), "{without:?}");
}
