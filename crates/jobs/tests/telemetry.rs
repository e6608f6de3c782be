//! Telemetry as an application sees it: metrics through a test recorder and the job event
//! stream (the job span's fields: `job_span.rs`, a binary of its own).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jobs::telemetry::{
    CLAIM_SECONDS, JOBS_COMPLETED, JOBS_DEAD, JOBS_FAILED, JOBS_RESCUED, JOBS_RETRIED,
    JOBS_RUNNING, JOB_QUEUE_WAIT_SECONDS, JOB_RUN_SECONDS, QUEUE_DEPTH, STORE_CALL_SECONDS,
};
use jobs::testing::FlakyStore;
use jobs::{
    Clock, EnqueueOptions, JobArgs, JobContext, JobError, JobEvent, JobId, MemoryStore, Outcome,
    Pool, Worker,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use serde::{Deserialize, Serialize};

/// A snapshot of the recorder, as `Snapshotter::snapshot().into_vec()` gives it.
type Snapshot = [(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)];

/// Held by each test that reads the recorder: a snapshot takes the counters' values (resets
/// them to 0), so two such tests must not run at once.
static RECORDER_IN_USE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process-wide recorder of this test binary (one per process).
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this process");
        snapshotter
    })
}

#[derive(Serialize, Deserialize)]
struct Ok1;
impl JobArgs for Ok1 {
    const KIND: &'static str = "ok";
}
struct Succeeds;
impl Worker for Succeeds {
    type Args = Ok1;
    async fn perform(&self, _: JobContext, _: Ok1) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Flaky;
impl JobArgs for Flaky {
    const KIND: &'static str = "flaky";
}
struct FailsOnce(AtomicU32);
impl Worker for FailsOnce {
    type Args = Flaky;
    async fn perform(&self, _: JobContext, _: Flaky) -> Result<(), JobError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(JobError::failed("first time"));
        }
        Ok(())
    }
    fn backoff(&self, _: u32) -> Duration {
        Duration::from_secs(1)
    }
}

#[derive(Serialize, Deserialize)]
struct Doomed;
impl JobArgs for Doomed {
    const KIND: &'static str = "doomed";
}
struct AlwaysFails;
impl Worker for AlwaysFails {
    type Args = Doomed;
    async fn perform(&self, _: JobContext, _: Doomed) -> Result<(), JobError> {
        Err(JobError::failed("never works"))
    }
}

/// One value of the snapshot: the metric `name` of `kind` whose labels include `labels`.
fn find<'a>(
    snapshot: &'a Snapshot,
    kind: MetricKind,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    snapshot.iter().find_map(|(key, _, _, value)| {
        let matches = key.kind() == kind
            && key.key().name() == name
            && labels
                .iter()
                .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v));
        matches.then_some(value)
    })
}

fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    match find(snapshot, MetricKind::Counter, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("{name}: {other:?}"),
    }
}

fn samples(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> usize {
    match find(snapshot, MetricKind::Histogram, name, labels) {
        Some(DebugValue::Histogram(values)) => values.len(),
        None => 0,
        other => panic!("{name}: {other:?}"),
    }
}

fn gauge(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    match find(snapshot, MetricKind::Gauge, name, labels) {
        Some(DebugValue::Gauge(value)) => Some(value.into_inner()),
        None => None,
        other => panic!("{name}: {other:?}"),
    }
}

async fn finished(pool: &Pool, id: JobId) {
    pool.client()
        .wait_for(id, Duration::from_secs(120))
        .await
        .expect("the job finishes");
}

/// A completed, a failed-and-retried and a dead job: the counters by queue and kind, the
/// histograms, the gauges, and the supervisor's restarts.
#[tokio::test(start_paused = true)]
async fn a_pool_records_its_metrics() {
    let _alone = RECORDER_IN_USE.lock().await;
    let snapshotter = snapshotter();
    let flaky = Arc::new(FlakyStore::new(Arc::new(MemoryStore::new())));
    let pool = Pool::builder(flaky.clone())
        .clock(Clock::tokio())
        .register(Succeeds)
        .register(FailsOnce(AtomicU32::new(0)))
        .register(AlwaysFails)
        .queue("metered", 4)
        .start()
        .await
        .unwrap();
    let client = pool.client();
    let metered = EnqueueOptions::new().queue("metered");
    let ok = client.enqueue_with(&Ok1, metered.clone()).await.unwrap();
    let retried = client.enqueue_with(&Flaky, metered.clone()).await.unwrap();
    let dead = client
        .enqueue_with(&Doomed, metered.clone().max_attempts(1))
        .await
        .unwrap();
    for id in [ok, retried, dead] {
        finished(&pool, id).await;
    }
    tokio::time::sleep(Duration::from_secs(11)).await; // the next queue-depth sample
    flaky.fail(true); // a lost database: children end and are restarted
    tokio::time::sleep(Duration::from_secs(3)).await;
    flaky.fail(false);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let snapshot = snapshotter.snapshot().into_vec();
    let of = |kind| [("queue", "metered"), ("kind", kind)];
    assert_eq!(counter(&snapshot, JOBS_COMPLETED, &of("ok")), 1);
    assert_eq!(counter(&snapshot, JOBS_FAILED, &of("ok")), 0);
    assert_eq!(counter(&snapshot, JOBS_COMPLETED, &of("flaky")), 1);
    assert_eq!(counter(&snapshot, JOBS_FAILED, &of("flaky")), 1);
    assert_eq!(counter(&snapshot, JOBS_RETRIED, &of("flaky")), 1);
    assert_eq!(counter(&snapshot, JOBS_DEAD, &of("flaky")), 0);
    assert_eq!(counter(&snapshot, JOBS_DEAD, &of("doomed")), 1);
    assert_eq!(counter(&snapshot, JOBS_FAILED, &of("doomed")), 1);
    assert_eq!(counter(&snapshot, JOBS_RETRIED, &of("doomed")), 0);
    assert_eq!(counter(&snapshot, JOBS_COMPLETED, &of("doomed")), 0);

    assert_eq!(samples(&snapshot, JOB_RUN_SECONDS, &of("ok")), 1);
    assert_eq!(samples(&snapshot, JOB_RUN_SECONDS, &of("flaky")), 2);
    assert_eq!(samples(&snapshot, JOB_QUEUE_WAIT_SECONDS, &of("flaky")), 2);
    assert!(samples(&snapshot, CLAIM_SECONDS, &[("queue", "metered")]) >= 3);
    let claims = [("op", "job_claim"), ("store", "flaky")];
    assert!(samples(&snapshot, STORE_CALL_SECONDS, &claims) >= 3);

    assert_eq!(
        gauge(&snapshot, JOBS_RUNNING, &[("queue", "metered")]),
        Some(0.0),
        "nothing runs now"
    );
    let depth = |state| {
        gauge(
            &snapshot,
            QUEUE_DEPTH,
            &[("queue", "metered"), ("state", state)],
        )
    };
    assert_eq!(depth("completed"), Some(2.0));
    assert_eq!(depth("dead"), Some(1.0));
    assert_eq!(depth("available"), Some(0.0));

    let restarts = [("supervisor", "jobs-pool"), ("child", "fetcher:metered")];
    assert!(
        counter(&snapshot, supervisor::RESTARTS_METRIC, &restarts) >= 1,
        "the fetcher was restarted after the outage"
    );
    assert!(pool.shutdown().await.clean);
}

/// A job whose worker died holding it (its lease expired) is counted as rescued under its
/// queue and kind, then runs (in quarantine) and completes.
#[tokio::test(start_paused = true)]
async fn a_rescue_is_counted_by_queue_and_kind() {
    let _alone = RECORDER_IN_USE.lock().await;
    let snapshotter = snapshotter();
    let store = Arc::new(MemoryStore::new());
    let clock = Clock::tokio();
    let client = jobs::Client::new(store.clone()).with_clock(clock);
    let id = client
        .enqueue_with(&Ok1, EnqueueOptions::new().queue("orphans"))
        .await
        .unwrap();
    // A worker of another process claims the job and dies: its lease runs out.
    let claim = jobs::store::JobClaimParams {
        queue: "orphans".into(),
        owner: "dead-worker".into(),
        limit: 1,
        lease_ttl: Duration::from_secs(1),
        now: clock.now(),
        kinds: None,
        suspects: false,
    };
    let store: Arc<dyn jobs::store::Store> = store;
    assert_eq!(store.job_claim(claim).await.unwrap().len(), 1);
    let pool = Pool::builder(store)
        .clock(clock)
        .register(Succeeds)
        .queue("orphans", 1)
        .start()
        .await
        .unwrap();
    finished(&pool, id).await;

    let snapshot = snapshotter.snapshot().into_vec();
    let orphans = [("queue", "orphans"), ("kind", "ok")];
    assert_eq!(counter(&snapshot, JOBS_RESCUED, &orphans), 1);
    assert_eq!(counter(&snapshot, JOBS_COMPLETED, &orphans), 1);
    assert!(pool.shutdown().await.clean);
}

#[tokio::test(start_paused = true)]
async fn subscribers_see_each_job_start_and_finish() {
    let pool = Pool::builder(Arc::new(MemoryStore::new()))
        .clock(Clock::tokio())
        .register(FailsOnce(AtomicU32::new(0)))
        .start()
        .await
        .unwrap();
    let mut events = pool.subscribe();
    let id = pool.client().enqueue(&Flaky).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match events.recv().await.unwrap() {
            JobEvent::Started {
                id: job,
                attempt,
                kind,
                ..
            } => {
                assert_eq!((job, kind.as_str()), (id, "flaky"));
                seen.push(format!("started {attempt}"));
            }
            JobEvent::Finished {
                id: job,
                attempt,
                outcome,
                ..
            } => {
                assert_eq!(job, id);
                seen.push(format!("{} {attempt}", outcome.name()));
                if attempt == 2 {
                    assert_eq!(outcome, Outcome::Completed);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["started 1", "retry 1", "started 2", "completed 2"]);
    assert!(pool.shutdown().await.clean);
}
