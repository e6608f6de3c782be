//! Metrics: the names the engine records through the [`metrics`] facade, so the application
//! picks the exporter (Prometheus, OpenTelemetry, or none: then recording costs next to
//! nothing).
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | [`JOBS_COMPLETED`] `jobs_completed_total` | counter | `queue`, `kind` | runs that completed |
//! | [`JOBS_FAILED`] `jobs_failed_total` | counter | `queue`, `kind` | runs that failed (error, panic, timeout, discard, bad input): retried or dead |
//! | [`JOBS_RETRIED`] `jobs_retried_total` | counter | `queue`, `kind` | failed runs scheduled to run again |
//! | [`JOBS_DEAD`] `jobs_dead_total` | counter | `queue`, `kind` | jobs that reached the dead set (from a run, or a rescue past `max_rescues`) |
//! | [`JOBS_SNOOZED`] `jobs_snoozed_total` | counter | `queue`, `kind` | runs that snoozed |
//! | [`JOBS_RELEASED`] `jobs_released_total` | counter | `queue`, `kind` | runs released back to their queue (shutdown) |
//! | [`JOBS_RESCUED`] `jobs_rescued_total` | counter | `queue`, `kind` | jobs whose lease expired and that a rescuer returned to their queue |
//! | [`JOB_RUN_SECONDS`] `jobs_run_seconds` | histogram | `queue`, `kind` | how long `perform` ran |
//! | [`JOB_QUEUE_WAIT_SECONDS`] `jobs_queue_wait_seconds` | histogram | `queue`, `kind` | from available (its `run_at`) to started |
//! | [`CLAIM_SECONDS`] `jobs_claim_seconds` | histogram | `queue` | one claim round trip of a fetcher |
//! | [`JOBS_RUNNING`] `jobs_running` | gauge | `queue` | jobs running in this pool now |
//! | [`JOBS_WAITING_UNKNOWN_KIND`] `jobs_waiting_unknown_kind` | gauge | - | available jobs of kinds this pool has no worker for, counted once a minute (see [`Pool::waiting_unknown_kinds`](crate::Pool::waiting_unknown_kinds)) |
//! | [`QUEUE_DEPTH`] `jobs_queue_depth` | gauge | `queue`, `state` | jobs per queue and state in the store, sampled every [`PoolConfig::queue_depth_interval`](crate::PoolConfig::queue_depth_interval) |
//! | [`STORE_CALL_SECONDS`] `jobs_store_call_seconds` | histogram | `op`, `store` | every store call, by operation |
//! | [`STORE_CALL_FAILURES`] `jobs_store_call_failures_total` | counter | `op`, `store` | failed store calls |
//! | `supervisor_restarts_total` | counter | `supervisor`, `child` | restarts of the pool's children (and of any supervisor's: crate `supervisor`'s `metrics` feature) |
//!
//! Outcome counters count what the store recorded (a write whose lease was lost counts
//! nothing). Handles are built when a pool starts, with their labels, so install the
//! recorder before starting pools; a run records into them without allocating.
//!
//! To serve them in Prometheus's text format, install `metrics-exporter-prometheus`'s
//! recorder and render it on your `/metrics` route:
//!
//! ```text
//! let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
//!     .set_buckets(jobs::telemetry::SECONDS_BUCKETS)?
//!     .install_recorder()?;
//! // before the pool starts; then, in the route:
//! async fn metrics(State(handle): State<PrometheusHandle>) -> String { handle.render() }
//! ```

use metrics::{Counter, Gauge, Histogram};

use crate::fast_map::FastMap;
use crate::store::{FinishOutcome, RescuedJob};

#[doc(no_inline)]
pub use crate::store::{STORE_CALL_FAILURES, STORE_CALL_SECONDS};

/// Bucket bounds (in seconds) suited to the engine's `_seconds` histograms, from 100 µs to
/// 10 min. With Prometheus, export the histograms as buckets (`set_buckets`) rather than the
/// exporter's default summaries: buckets aggregate across processes, and recording into them
/// costs less per job.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 600.0,
];

/// Counter of runs that completed, labelled `queue` and `kind`.
pub const JOBS_COMPLETED: &str = "jobs_completed_total";
/// Counter of runs that failed (retried or dead), labelled `queue` and `kind`.
pub const JOBS_FAILED: &str = "jobs_failed_total";
/// Counter of failed runs scheduled to run again, labelled `queue` and `kind`.
pub const JOBS_RETRIED: &str = "jobs_retried_total";
/// Counter of jobs that reached the dead set, labelled `queue` and `kind`.
pub const JOBS_DEAD: &str = "jobs_dead_total";
/// Counter of runs that snoozed, labelled `queue` and `kind`.
pub const JOBS_SNOOZED: &str = "jobs_snoozed_total";
/// Counter of runs released back to their queue, labelled `queue` and `kind`.
pub const JOBS_RELEASED: &str = "jobs_released_total";
/// Counter of jobs a rescuer returned to their queue after their lease expired, labelled
/// `queue` and `kind`.
pub const JOBS_RESCUED: &str = "jobs_rescued_total";
/// Gauge of available jobs of kinds the pool has no worker for (they wait for a process
/// that knows them), counted once a minute.
pub const JOBS_WAITING_UNKNOWN_KIND: &str = "jobs_waiting_unknown_kind";
/// Histogram of run durations in seconds, labelled `queue` and `kind`.
pub const JOB_RUN_SECONDS: &str = "jobs_run_seconds";
/// Histogram of the time from available to started in seconds, labelled `queue` and `kind`.
pub const JOB_QUEUE_WAIT_SECONDS: &str = "jobs_queue_wait_seconds";
/// Histogram of claim round trips in seconds, labelled `queue`.
pub const CLAIM_SECONDS: &str = "jobs_claim_seconds";
/// Gauge of jobs running in this pool, labelled `queue`.
pub const JOBS_RUNNING: &str = "jobs_running";
/// Gauge of jobs per queue and state in the store, labelled `queue` and `state`.
pub const QUEUE_DEPTH: &str = "jobs_queue_depth";

/// The handles of one queue and kind, built once.
#[derive(Debug)]
pub(crate) struct KindMetrics {
    completed: Counter,
    failed: Counter,
    retried: Counter,
    dead: Counter,
    snoozed: Counter,
    released: Counter,
    pub(crate) run_seconds: Histogram,
    pub(crate) queue_wait_seconds: Histogram,
}

impl KindMetrics {
    fn new(queue: &str, kind: &str) -> Self {
        let labels = [("queue", queue.to_owned()), ("kind", kind.to_owned())];
        KindMetrics {
            completed: metrics::counter!(JOBS_COMPLETED, &labels),
            failed: metrics::counter!(JOBS_FAILED, &labels),
            retried: metrics::counter!(JOBS_RETRIED, &labels),
            dead: metrics::counter!(JOBS_DEAD, &labels),
            snoozed: metrics::counter!(JOBS_SNOOZED, &labels),
            released: metrics::counter!(JOBS_RELEASED, &labels),
            run_seconds: metrics::histogram!(JOB_RUN_SECONDS, &labels),
            queue_wait_seconds: metrics::histogram!(JOB_QUEUE_WAIT_SECONDS, &labels),
        }
    }

    /// Counts an outcome the store recorded.
    pub(crate) fn finished(&self, outcome: &FinishOutcome) {
        match outcome {
            FinishOutcome::Completed => self.completed.increment(1),
            FinishOutcome::Retry { .. } => {
                self.failed.increment(1);
                self.retried.increment(1);
            }
            FinishOutcome::Dead { .. } => {
                self.failed.increment(1);
                self.dead.increment(1);
            }
            FinishOutcome::Snooze { .. } => self.snoozed.increment(1),
            FinishOutcome::Release => self.released.increment(1),
        }
    }
}

/// The handles of one queue a pool runs: per registered kind, and the queue's own.
#[derive(Debug)]
pub(crate) struct QueueMetrics {
    queue: String,
    kinds: FastMap<&'static str, KindMetrics>,
    pub(crate) running: Gauge,
    pub(crate) claim_seconds: Histogram,
}

impl QueueMetrics {
    pub(crate) fn new(queue: &str, kinds: &[&'static str]) -> Self {
        let labels = [("queue", queue.to_owned())];
        QueueMetrics {
            queue: queue.to_owned(),
            kinds: kinds
                .iter()
                .map(|kind| (*kind, KindMetrics::new(queue, kind)))
                .collect(),
            running: metrics::gauge!(JOBS_RUNNING, &labels),
            claim_seconds: metrics::histogram!(CLAIM_SECONDS, &labels),
        }
    }

    /// Calls `record` with the handles of `kind` (built on the spot for a kind no worker of
    /// this pool registered: bad input, which is rare).
    pub(crate) fn kind(&self, kind: &str, record: impl FnOnce(&KindMetrics)) {
        match self.kinds.get(kind) {
            Some(metrics) => record(metrics),
            None => record(&KindMetrics::new(&self.queue, kind)),
        }
    }
}

/// Sets the gauge of jobs waiting for a process that knows their kind.
pub(crate) fn unknown_kinds_waiting(count: u64) {
    metrics::gauge!(JOBS_WAITING_UNKNOWN_KIND).set(count as f64);
}

/// Counts jobs a rescue returned to their queue (rare: built on the spot).
pub(crate) fn rescued(jobs: &[RescuedJob]) {
    for job in jobs {
        let labels = [("queue", job.queue.clone()), ("kind", job.kind.clone())];
        metrics::counter!(JOBS_RESCUED, &labels).increment(1);
    }
}

/// Counts a job a rescue moved to the dead set (rare: built on the spot).
pub(crate) fn dead_in_rescue(queue: &str, kind: &str) {
    let labels = [("queue", queue.to_owned()), ("kind", kind.to_owned())];
    metrics::counter!(JOBS_DEAD, &labels).increment(1);
}

/// Sets the queue-depth gauges from one sample of the store's counts.
pub(crate) fn queue_depth(stats: &[crate::stats::QueueStats]) {
    for queue in stats {
        for state in crate::job::JobState::ALL {
            let labels = [
                ("queue", queue.queue.clone()),
                ("state", state.as_str().to_owned()),
            ];
            metrics::gauge!(QUEUE_DEPTH, &labels).set(queue.count(state) as f64);
        }
    }
}
