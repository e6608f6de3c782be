//! [`StoreFacade`]: the one path from the engine to a [`Store`]. Every call is validated
//! once, timed, counted and traced here, never in a store and never in an engine child.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use metrics::{Key, Label, Level, Metadata};
use tracing::Instrument;

use super::params::{
    ClaimedJob, JobCancelParams, JobCheckpointParams, JobClaimParams, JobExpireUnknownKindsParams,
    JobFinishParams, JobHeartbeatParams, JobInsertParams, JobListParams, JobPromoteParams,
    JobPruneParams, JobRescueParams, JobRetryParams, RescueOutcome, UnknownKinds,
};
use super::{JobListener, Store};
use crate::error::StoreError;
use crate::job::{JobId, JobRecord};
use crate::stats::QueueStats;

/// Histogram of store call durations in seconds, labelled `op` and `store`.
pub const STORE_CALL_SECONDS: &str = "jobs_store_call_seconds";
/// Counter of failed store calls (refused requests included), labelled `op` and `store`.
pub const STORE_CALL_FAILURES: &str = "jobs_store_call_failures_total";

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The operations the facade instruments; each is one value of the `op` label.
#[derive(Clone, Copy, Debug)]
enum Op {
    InsertMany,
    Claim,
    FinishMany,
    HeartbeatMany,
    Checkpoint,
    RescueExpired,
    ExpireUnknownKinds,
    PromoteScheduled,
    Get,
    List,
    Retry,
    Cancel,
    Prune,
    QueueStats,
    Listen,
    ListenerNext,
}

impl Op {
    const ALL: [Op; 16] = [
        Op::InsertMany,
        Op::Claim,
        Op::FinishMany,
        Op::HeartbeatMany,
        Op::Checkpoint,
        Op::RescueExpired,
        Op::ExpireUnknownKinds,
        Op::PromoteScheduled,
        Op::Get,
        Op::List,
        Op::Retry,
        Op::Cancel,
        Op::Prune,
        Op::QueueStats,
        Op::Listen,
        Op::ListenerNext,
    ];

    /// The `op` label: the [`Store`] method's name.
    const fn name(self) -> &'static str {
        match self {
            Op::InsertMany => "job_insert_many",
            Op::Claim => "job_claim",
            Op::FinishMany => "job_finish_many",
            Op::HeartbeatMany => "job_heartbeat_many",
            Op::Checkpoint => "job_checkpoint",
            Op::RescueExpired => "job_rescue_expired",
            Op::ExpireUnknownKinds => "job_expire_unknown_kinds",
            Op::PromoteScheduled => "job_promote_scheduled",
            Op::Get => "job_get",
            Op::List => "job_list",
            Op::Retry => "job_retry",
            Op::Cancel => "job_cancel",
            Op::Prune => "job_prune",
            Op::QueueStats => "queue_stats",
            Op::Listen => "listen",
            Op::ListenerNext => "listener_next",
        }
    }
}

/// How one store's calls are recorded: its name and its metric keys, built once so a call
/// allocates nothing for its labels.
struct Instruments {
    store: &'static str,
    seconds: [Key; Op::ALL.len()],
    failures: [Key; Op::ALL.len()],
}

impl Instruments {
    fn new(store: &'static str) -> Self {
        let key = |name: &'static str, op: Op| {
            let labels = vec![
                Label::from_static_parts("op", op.name()),
                Label::from_static_parts("store", store),
            ];
            Key::from_parts(name, labels)
        };
        Instruments {
            store,
            seconds: Op::ALL.map(|op| key(STORE_CALL_SECONDS, op)),
            failures: Op::ALL.map(|op| key(STORE_CALL_FAILURES, op)),
        }
    }

    /// Records a failure once: the log line and the counter.
    fn failed(&self, op: Op, error: &StoreError) {
        tracing::warn!(op = op.name(), store = self.store, transient = error.is_transient(),
            %error, "store call failed");
        metrics::with_recorder(|recorder| {
            recorder
                .register_counter(&self.failures[op as usize], &METADATA)
                .increment(1);
        });
    }

    /// Records a call's duration.
    fn timed(&self, op: Op, elapsed: std::time::Duration) {
        metrics::with_recorder(|recorder| {
            recorder
                .register_histogram(&self.seconds[op as usize], &METADATA)
                .record(elapsed.as_secs_f64());
        });
    }
}

/// The store as the engine calls it: every request is validated once (the rules of
/// [`store`](super)'s `validate` methods, so stores receive only valid requests), every call
/// is timed into the histogram [`STORE_CALL_SECONDS`] and traced in a `store` span, and every
/// failure is logged once (a `warn` event with `op`, `store` and the error) and counted in
/// [`STORE_CALL_FAILURES`]. The engine's children do not log store errors again.
///
/// Metrics go through the [`metrics`] facade: with no recorder installed they cost next to
/// nothing, and labels are built once per facade, never per call.
///
/// The [`Client`](crate::Client) and the pool reach their store only through this; the
/// conformance suite exercises stores through it too. Cheap to clone.
///
/// ```
/// use std::sync::Arc;
/// use jobs::store::{JobClaimParams, StoreFacade};
/// use jobs::{MemoryStore, StoreError, Timestamp};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = StoreFacade::new(Arc::new(MemoryStore::new()));
/// let claim = JobClaimParams {
///     queue: "default".into(),
///     owner: "worker-1".into(),
///     limit: 0,
///     lease_ttl: std::time::Duration::from_secs(30),
///     now: Timestamp::now(),
///     kinds: None,
///     suspects: false,
/// };
/// let refused = store.job_claim(claim).await;
/// assert!(matches!(refused, Err(StoreError::Invalid { .. }))); // never reached the store
/// # }
/// ```
///
/// # Cancel safety
///
/// Every call is as cancel safe as the store's operation: reads are; a write whose future
/// is dropped may or may not have been applied (a store applies a batch whole or not at
/// all): treat it as a write whose reply was lost (an insert may have happened; a fenced
/// write may be sent again, and applies at most once).
#[derive(Clone)]
pub struct StoreFacade {
    store: Arc<dyn Store>,
    instruments: Arc<Instruments>,
}

impl fmt::Debug for StoreFacade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreFacade").field(&self.store).finish()
    }
}

impl StoreFacade {
    /// The facade over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let instruments = Arc::new(Instruments::new(store.name()));
        StoreFacade { store, instruments }
    }

    /// The store's short name (the `store` label).
    pub fn name(&self) -> &'static str {
        self.store.name()
    }

    /// The store behind the facade, for calls that must bypass it (tests of a store's own
    /// checks).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A request the rules refused: it never reaches the store.
    fn refused<T>(&self, op: Op, error: StoreError) -> Result<T, StoreError> {
        self.instruments.failed(op, &error);
        Err(error)
    }

    /// Runs one store call: timed, traced, its failure recorded once.
    async fn call<T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let span = tracing::debug_span!("store", op = op.name(), store = self.name());
        let started = Instant::now();
        let result = call.instrument(span).await;
        let elapsed = started.elapsed();
        self.instruments.timed(op, elapsed);
        match &result {
            Ok(_) => tracing::debug!(
                op = op.name(),
                elapsed_us = elapsed.as_micros() as u64,
                "store call"
            ),
            Err(error) => self.instruments.failed(op, error),
        }
        result
    }

    /// [`Store::job_insert_many`], after [`JobInsertParams::validate`]; an empty batch returns
    /// at once without a call.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] from the rules, or the store's error.
    ///
    /// # Cancel safety
    ///
    /// A cancelled insert may or may not have been applied (never half).
    pub async fn job_insert_many(&self, params: JobInsertParams) -> Result<Vec<JobId>, StoreError> {
        if params.jobs.is_empty() {
            return Ok(Vec::new());
        }
        if let Err(error) = params.validate() {
            return self.refused(Op::InsertMany, error);
        }
        self.call(Op::InsertMany, self.store.job_insert_many(params))
            .await
    }

    /// [`Store::job_claim`], after [`JobClaimParams::validate`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] from the rules, or the store's error.
    ///
    /// # Cancel safety
    ///
    /// A claim cancelled after the store applied it leaves its jobs leased to no one until
    /// their lease expires and the rescuer returns them.
    pub async fn job_claim(&self, params: JobClaimParams) -> Result<Vec<ClaimedJob>, StoreError> {
        if let Err(error) = params.validate() {
            return self.refused(Op::Claim, error);
        }
        self.call(Op::Claim, self.store.job_claim(params)).await
    }

    /// [`Store::job_finish_many`].
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn job_finish_many(&self, params: JobFinishParams) -> Result<Vec<bool>, StoreError> {
        self.call(Op::FinishMany, self.store.job_finish_many(params))
            .await
    }

    /// [`Store::job_heartbeat_many`].
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn job_heartbeat_many(
        &self,
        params: JobHeartbeatParams,
    ) -> Result<Vec<bool>, StoreError> {
        self.call(Op::HeartbeatMany, self.store.job_heartbeat_many(params))
            .await
    }

    /// [`Store::job_checkpoint`], after [`JobCheckpointParams::validate`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] from the rules, or the store's error.
    pub async fn job_checkpoint(&self, params: JobCheckpointParams) -> Result<bool, StoreError> {
        if let Err(error) = params.validate() {
            return self.refused(Op::Checkpoint, error);
        }
        self.call(Op::Checkpoint, self.store.job_checkpoint(params))
            .await
    }

    /// [`Store::job_rescue_expired`], after [`JobRescueParams::validate`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] from the rules, or the store's error.
    pub async fn job_rescue_expired(
        &self,
        params: JobRescueParams,
    ) -> Result<RescueOutcome, StoreError> {
        if let Err(error) = params.validate() {
            return self.refused(Op::RescueExpired, error);
        }
        self.call(Op::RescueExpired, self.store.job_rescue_expired(params))
            .await
    }

    /// [`Store::job_expire_unknown_kinds`], after [`JobExpireUnknownKindsParams::validate`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] from the rules, or the store's error.
    pub async fn job_expire_unknown_kinds(
        &self,
        params: JobExpireUnknownKindsParams,
    ) -> Result<UnknownKinds, StoreError> {
        if let Err(error) = params.validate() {
            return self.refused(Op::ExpireUnknownKinds, error);
        }
        self.call(
            Op::ExpireUnknownKinds,
            self.store.job_expire_unknown_kinds(params),
        )
        .await
    }

    /// [`Store::job_promote_scheduled`], after [`JobPromoteParams::validate`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] from the rules, or the store's error.
    pub async fn job_promote_scheduled(&self, params: JobPromoteParams) -> Result<u64, StoreError> {
        if let Err(error) = params.validate() {
            return self.refused(Op::PromoteScheduled, error);
        }
        self.call(
            Op::PromoteScheduled,
            self.store.job_promote_scheduled(params),
        )
        .await
    }

    /// [`Store::job_get`].
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn job_get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.call(Op::Get, self.store.job_get(id)).await
    }

    /// [`Store::job_list`], after [`JobListParams::validate`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] from the rules, or the store's error.
    pub async fn job_list(&self, params: JobListParams) -> Result<Vec<JobRecord>, StoreError> {
        if let Err(error) = params.validate() {
            return self.refused(Op::List, error);
        }
        self.call(Op::List, self.store.job_list(params)).await
    }

    /// [`Store::job_retry`].
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn job_retry(&self, params: JobRetryParams) -> Result<bool, StoreError> {
        self.call(Op::Retry, self.store.job_retry(params)).await
    }

    /// [`Store::job_cancel`].
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn job_cancel(&self, params: JobCancelParams) -> Result<bool, StoreError> {
        self.call(Op::Cancel, self.store.job_cancel(params)).await
    }

    /// [`Store::job_prune`], after [`JobPruneParams::validate`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] from the rules, or the store's error.
    pub async fn job_prune(&self, params: JobPruneParams) -> Result<u64, StoreError> {
        if let Err(error) = params.validate() {
            return self.refused(Op::Prune, error);
        }
        self.call(Op::Prune, self.store.job_prune(params)).await
    }

    /// [`Store::queue_stats`].
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.call(Op::QueueStats, self.store.queue_stats()).await
    }

    /// [`Store::listen`]; the listener's failures are recorded as those of other calls (op
    /// `listener_next`; waiting for a wake-up is not timed).
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn listen(&self) -> Result<Option<FacadeListener>, StoreError> {
        let listener = self.call(Op::Listen, self.store.listen()).await?;
        Ok(listener.map(|inner| FacadeListener {
            inner,
            instruments: Arc::clone(&self.instruments),
        }))
    }
}

/// A store's [`JobListener`] whose failures the facade records once. It does not keep the
/// store alive.
pub struct FacadeListener {
    inner: Box<dyn JobListener>,
    instruments: Arc<Instruments>,
}

impl fmt::Debug for FacadeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FacadeListener").field(&self.inner).finish()
    }
}

impl FacadeListener {
    /// The next queue that received jobs. An error ends the listener.
    ///
    /// # Errors
    ///
    /// The store's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`JobListener::next`] must be.
    pub async fn next(&mut self) -> Result<String, StoreError> {
        let next = self.inner.next().await;
        if let Err(error) = &next {
            self.instruments.failed(Op::ListenerNext, error);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::future::BoxFuture;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;
    use serde_json::json;

    use super::*;
    use crate::job::JobState;
    use crate::memory::MemoryStore;
    use crate::store::{Lease, NewJob, MAX_ATTEMPTS_LIMIT, MAX_JSON_DEPTH};
    use crate::time::Timestamp;

    /// A store that fails the test if any call reaches it.
    #[derive(Debug)]
    struct Unreachable;

    fn reached<T: Send + 'static>(call: &'static str) -> BoxFuture<'static, T> {
        panic!("{call} reached the store; the facade should have refused it")
    }

    impl Store for Unreachable {
        fn name(&self) -> &'static str {
            "unreachable"
        }
        fn job_insert_many(
            &self,
            _: JobInsertParams,
        ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
            reached("job_insert_many")
        }
        fn job_claim(
            &self,
            _: JobClaimParams,
        ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>> {
            reached("job_claim")
        }
        fn job_finish_many(
            &self,
            _: JobFinishParams,
        ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
            reached("job_finish_many")
        }
        fn job_heartbeat_many(
            &self,
            _: JobHeartbeatParams,
        ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
            reached("job_heartbeat_many")
        }
        fn job_checkpoint(
            &self,
            _: JobCheckpointParams,
        ) -> BoxFuture<'_, Result<bool, StoreError>> {
            reached("job_checkpoint")
        }
        fn job_rescue_expired(
            &self,
            _: JobRescueParams,
        ) -> BoxFuture<'_, Result<RescueOutcome, StoreError>> {
            reached("job_rescue_expired")
        }
        fn job_promote_scheduled(
            &self,
            _: JobPromoteParams,
        ) -> BoxFuture<'_, Result<u64, StoreError>> {
            reached("job_promote_scheduled")
        }
        fn job_get(&self, _: JobId) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
            reached("job_get")
        }
        fn job_list(&self, _: JobListParams) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
            reached("job_list")
        }
        fn job_retry(&self, _: JobRetryParams) -> BoxFuture<'_, Result<bool, StoreError>> {
            reached("job_retry")
        }
        fn job_cancel(&self, _: JobCancelParams) -> BoxFuture<'_, Result<bool, StoreError>> {
            reached("job_cancel")
        }
        fn job_prune(&self, _: JobPruneParams) -> BoxFuture<'_, Result<u64, StoreError>> {
            reached("job_prune")
        }
        fn queue_stats(&self) -> BoxFuture<'_, Result<Vec<QueueStats>, StoreError>> {
            reached("queue_stats")
        }
    }

    const NOW: Timestamp = Timestamp::from_micros(1_700_000_000_000_000);

    fn job(queue: &str) -> NewJob {
        NewJob {
            kind: "test".to_owned(),
            args: json!({}),
            queue: queue.to_owned(),
            priority: 0,
            max_attempts: 3,
            run_at: None,
            metadata: Default::default(),
        }
    }

    fn claim(queue: &str, limit: usize) -> JobClaimParams {
        JobClaimParams {
            queue: queue.to_owned(),
            owner: "w".to_owned(),
            limit,
            lease_ttl: Duration::from_secs(30),
            now: NOW,
            kinds: None,
            suspects: false,
        }
    }

    fn prune(states: Vec<JobState>, limit: usize) -> JobPruneParams {
        JobPruneParams {
            states,
            finalized_before: NOW,
            limit,
        }
    }

    /// `result` is a refusal of `op` with one wording: not transient, naming the operation.
    fn assert_refused<T: fmt::Debug>(result: Result<T, StoreError>, op: &str, what: &str) {
        match result {
            Err(error @ StoreError::Invalid { .. }) => {
                assert!(!error.is_transient(), "{what}");
                assert!(
                    error.to_string().contains(&format!("{op}: ")),
                    "{what}: {error}"
                );
            }
            other => panic!("{what}: expected StoreError::Invalid, got {other:?}"),
        }
    }

    /// Every rule, once: a request that breaks one is refused before it reaches the store.
    #[tokio::test]
    async fn invalid_requests_never_reach_the_store() {
        let facade = StoreFacade::new(Arc::new(Unreachable));
        let long = "q".repeat(129);
        let bad_jobs = [
            (
                "empty kind",
                NewJob {
                    kind: String::new(),
                    ..job("q")
                },
            ),
            (
                "kind with a space",
                NewJob {
                    kind: "bad kind!".to_owned(),
                    ..job("q")
                },
            ),
            (
                "args nested too deep",
                NewJob {
                    args: (0..=MAX_JSON_DEPTH).fold(json!(1), |inner, _| json!([inner])),
                    ..job("q")
                },
            ),
            ("empty queue", job("")),
            ("queue with a space", job("has space")),
            ("queue of 129 characters", job(&long)),
            (
                "max_attempts 0",
                NewJob {
                    max_attempts: 0,
                    ..job("q")
                },
            ),
            (
                "max_attempts too large",
                NewJob {
                    max_attempts: MAX_ATTEMPTS_LIMIT + 1,
                    ..job("q")
                },
            ),
        ];
        for (what, bad) in bad_jobs {
            let jobs = vec![job("q"), bad, job("q")];
            let result = facade
                .job_insert_many(JobInsertParams { jobs, now: NOW })
                .await;
            assert_refused(result, "job_insert_many", what);
        }
        assert_refused(
            facade.job_claim(claim("q", 0)).await,
            "job_claim",
            "claim limit 0",
        );
        assert_refused(
            facade.job_claim(claim("", 10)).await,
            "job_claim",
            "claim of queue \"\"",
        );
        let rescue = JobRescueParams {
            now: NOW,
            max_rescues: 3,
            limit: 0,
        };
        assert_refused(
            facade.job_rescue_expired(rescue).await,
            "job_rescue_expired",
            "rescue limit 0",
        );
        let checkpoint = JobCheckpointParams {
            owner: "w".to_owned(),
            lease: Lease {
                job: JobId(1),
                token: 1,
            },
            checkpoint: (0..=MAX_JSON_DEPTH).fold(json!(1), |inner, _| json!({ "a": inner })),
            lease_ttl: Duration::from_secs(30),
            now: NOW,
        };
        assert_refused(
            facade.job_checkpoint(checkpoint).await,
            "job_checkpoint",
            "checkpoint nested too deep",
        );
        let promote = JobPromoteParams { now: NOW, limit: 0 };
        assert_refused(
            facade.job_promote_scheduled(promote).await,
            "job_promote_scheduled",
            "promote limit 0",
        );
        let list = JobListParams {
            limit: 0,
            ..JobListParams::default()
        };
        assert_refused(facade.job_list(list).await, "job_list", "list limit 0");
        assert_refused(
            facade.job_prune(prune(vec![JobState::Completed], 0)).await,
            "job_prune",
            "prune limit 0",
        );
        let running = vec![JobState::Completed, JobState::Running];
        assert_refused(
            facade.job_prune(prune(running, 10)).await,
            "job_prune",
            "prune of running",
        );
        let empty = facade
            .job_insert_many(JobInsertParams {
                jobs: Vec::new(),
                now: NOW,
            })
            .await;
        assert_eq!(empty.expect("an empty batch is no call"), Vec::new());
    }

    #[test]
    fn the_refusal_names_the_job_and_the_fix() {
        let params = JobInsertParams {
            jobs: vec![job("q"), job("a b")],
            now: NOW,
        };
        let message = params.validate().expect_err("an invalid queue").to_string();
        assert!(message.contains("job 1 (\"test\")"), "{message}");
        assert!(
            message.contains("\"a b\"") && message.contains("1 to 128"),
            "{message}"
        );
        assert!(message.contains("nothing was inserted"), "{message}");
    }

    #[tokio::test]
    async fn requests_at_the_edges_of_the_rules_pass() {
        let facade = StoreFacade::new(Arc::new(MemoryStore::new()));
        let edge = NewJob {
            max_attempts: MAX_ATTEMPTS_LIMIT,
            ..job(&"q".repeat(128))
        };
        let ids = facade
            .job_insert_many(JobInsertParams {
                jobs: vec![edge],
                now: NOW,
            })
            .await;
        assert_eq!(ids.expect("valid").len(), 1);
        assert_eq!(
            facade
                .job_claim(claim("a.b:c-d_1", 1))
                .await
                .expect("valid")
                .len(),
            0
        );
        assert_eq!(
            facade.job_prune(prune(Vec::new(), 1)).await.expect("valid"),
            0
        );
    }

    #[test]
    fn every_op_has_its_own_key() {
        for (index, op) in Op::ALL.into_iter().enumerate() {
            assert_eq!(op as usize, index, "{op:?}");
        }
        let keys = Instruments::new("memory");
        let labels: Vec<_> = keys.seconds[Op::Claim as usize]
            .labels()
            .map(|l| (l.key(), l.value()))
            .collect();
        assert_eq!(labels, vec![("op", "job_claim"), ("store", "memory")]);
    }

    /// Every call is timed under its op and store; a failure is counted once, a refused
    /// request too (but not timed: it made no call).
    #[test]
    fn calls_are_timed_and_failures_counted() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let facade = StoreFacade::new(Arc::new(MemoryStore::new()));
                let insert = JobInsertParams {
                    jobs: vec![job("q")],
                    now: NOW,
                };
                facade.job_insert_many(insert).await.expect("insert");
                facade.job_claim(claim("q", 10)).await.expect("claim");
                facade.job_claim(claim("q", 10)).await.expect("claim");
                let refused = facade.job_claim(claim("q", 0)).await;
                assert!(refused.is_err());
            });
        });
        // One snapshot: taking one drains the histograms.
        let snapshot = snapshotter.snapshot().into_vec();
        let metric = |kind, name: &str, op: &str| {
            snapshot.iter().find_map(|(key, _, _, value)| {
                let key_matches = key.kind() == kind
                    && key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == "op" && l.value() == op)
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == "store" && l.value() == "memory");
                key_matches.then_some(value)
            })
        };
        let timed = |op| match metric(MetricKind::Histogram, STORE_CALL_SECONDS, op) {
            Some(DebugValue::Histogram(samples)) => samples.len(),
            other => panic!("{op}: {other:?}"),
        };
        assert_eq!(timed("job_insert_many"), 1);
        assert_eq!(timed("job_claim"), 2, "the refused claim made no call");
        assert_eq!(
            metric(MetricKind::Counter, STORE_CALL_FAILURES, "job_claim"),
            Some(&DebugValue::Counter(1))
        );
        assert_eq!(
            metric(MetricKind::Counter, STORE_CALL_FAILURES, "job_insert_many"),
            None
        );
    }

    #[tokio::test]
    async fn listener_failures_are_recorded_and_returned() {
        let store = MemoryStore::new();
        let facade = StoreFacade::new(Arc::new(store.clone()));
        let mut listener = facade
            .listen()
            .await
            .expect("listen")
            .expect("memory has one");
        drop((store, facade));
        assert!(matches!(listener.next().await, Err(StoreError::Closed)));
    }
}
