//! Helpers shared by the conformance cases: fixed timestamps and a store wrapper whose
//! methods panic with the store's name and the failed call.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use jobs::store::{
    ClaimedJob, FinishOutcome, JobCancelParams, JobCheckpointParams, JobClaimParams, JobFinish,
    JobFinishParams, JobHeartbeatParams, JobInsertParams, JobListParams, JobPromoteParams,
    JobPruneParams, JobRescueParams, JobRetryParams, Lease, NewJob, QueueStats, RescueOutcome,
    Store, StoreError, StoreFacade,
};
use jobs::Timestamp;
use jobs::{AttemptError, JobId, JobRecord, JobState};

/// The worker the helpers claim and write as, unless told otherwise.
pub(super) const WORKER: &str = "worker-1";

/// The suite's origin of time: 2023-11-14T22:13:20Z.
pub(super) const T0: Timestamp = Timestamp::from_micros(1_700_000_000_000_000);

/// `T0` moved by `secs` seconds (negative: earlier).
pub(super) fn at(secs: i64) -> Timestamp {
    Timestamp::from_micros(T0.as_micros() + secs * 1_000_000)
}

/// `d` seconds.
pub(super) fn secs(d: u64) -> Duration {
    Duration::from_secs(d)
}

/// A plain job: kind `test`, args `{}`, priority 0, three attempts, run now.
pub(super) fn new_job(queue: &str) -> NewJob {
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

/// `new_job` with a priority and a `run_at`.
pub(super) fn job_at(queue: &str, priority: i16, run_at: Timestamp) -> NewJob {
    NewJob {
        priority,
        run_at: Some(run_at),
        ..new_job(queue)
    }
}

/// An attempt error.
pub(super) fn attempt_error(attempt: u32, at: Timestamp, message: &str) -> AttemptError {
    AttemptError {
        attempt,
        at,
        message: message.to_owned(),
    }
}

/// The record a fresh insert of `new` must produce.
pub(super) fn fresh_record(
    id: JobId,
    new: &NewJob,
    state: JobState,
    run_at: Timestamp,
    now: Timestamp,
) -> JobRecord {
    JobRecord {
        id,
        kind: new.kind.clone(),
        queue: new.queue.clone(),
        args: new.args.clone(),
        state,
        priority: new.priority,
        attempts: 0,
        max_attempts: new.max_attempts,
        rescues: 0,
        suspect: None,
        claims: 0,
        run_at,
        created_at: now,
        attempted_at: None,
        finalized_at: None,
        lease_owner: None,
        lease_expires_at: None,
        checkpoint: None,
        errors: Vec::new(),
        metadata: new.metadata.clone(),
        unreadable: None,
    }
}

/// Sorted ids of claimed jobs.
pub(super) fn claimed_ids(claimed: &[ClaimedJob]) -> Vec<JobId> {
    let mut ids: Vec<JobId> = claimed.iter().map(|c| c.lease.job).collect();
    ids.sort();
    ids
}

/// `ids`, sorted.
pub(super) fn sorted(mut ids: Vec<JobId>) -> Vec<JobId> {
    ids.sort();
    ids
}

/// One claim's params, as the cases give them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Claim<'a> {
    pub(super) queue: &'a str,
    pub(super) owner: &'a str,
    pub(super) limit: usize,
    pub(super) ttl: Duration,
    pub(super) now: Timestamp,
    pub(super) kinds: Option<&'a [&'a str]>,
    pub(super) suspects: bool,
}

/// A store under test, called through the [`StoreFacade`] as the engine calls it; every
/// call panics with context if the store returns an error.
#[derive(Clone, Debug)]
pub(super) struct Harness {
    pub(super) store: StoreFacade,
}

impl Harness {
    pub(super) fn new(store: Arc<dyn Store>) -> Self {
        Harness {
            store: StoreFacade::new(store),
        }
    }

    pub(super) fn ok<T>(&self, result: Result<T, StoreError>, call: &str) -> T {
        match result {
            Ok(value) => value,
            Err(error) => panic!("{} store: {call} failed: {error}", self.store.name()),
        }
    }

    pub(super) async fn insert(&self, jobs: Vec<NewJob>, now: Timestamp) -> Vec<JobId> {
        let result = self
            .store
            .job_insert_many(JobInsertParams { jobs, now })
            .await;
        self.ok(result, "job_insert_many")
    }

    pub(super) async fn insert_one(&self, job: NewJob, now: Timestamp) -> JobId {
        let ids = self.insert(vec![job], now).await;
        assert_eq!(ids.len(), 1, "{}: one insert, one id", self.store.name());
        ids[0]
    }

    pub(super) async fn claim(
        &self,
        queue: &str,
        owner: &str,
        limit: usize,
        ttl: Duration,
        now: Timestamp,
    ) -> Vec<ClaimedJob> {
        self.claim_with(Claim {
            queue,
            owner,
            limit,
            ttl,
            now,
            kinds: None,
            suspects: false,
        })
        .await
    }

    /// A quarantine claim: suspects only.
    pub(super) async fn claim_suspects(
        &self,
        queue: &str,
        owner: &str,
        limit: usize,
        ttl: Duration,
        now: Timestamp,
    ) -> Vec<ClaimedJob> {
        self.claim_with(Claim {
            queue,
            owner,
            limit,
            ttl,
            now,
            kinds: None,
            suspects: true,
        })
        .await
    }

    /// Any claim.
    pub(super) async fn claim_with(&self, claim: Claim<'_>) -> Vec<ClaimedJob> {
        let params = JobClaimParams {
            queue: claim.queue.to_owned(),
            owner: claim.owner.to_owned(),
            limit: claim.limit,
            lease_ttl: claim.ttl,
            now: claim.now,
            kinds: claim
                .kinds
                .map(|kinds| kinds.iter().map(|kind| (*kind).to_owned()).collect()),
            suspects: claim.suspects,
        };
        let result = self.store.job_claim(params).await;
        self.ok(result, "job_claim")
    }

    /// Claims exactly one suspect of `queue` (a quarantine claim) for [`WORKER`] with a 30 s
    /// lease, and checks it is `expected`.
    pub(super) async fn claim_suspect_one(
        &self,
        queue: &str,
        expected: JobId,
        now: Timestamp,
    ) -> Lease {
        let claimed = self.claim_suspects(queue, WORKER, 1, secs(30), now).await;
        assert_eq!(
            claimed_ids(&claimed),
            vec![expected],
            "{}: quarantine claim of one job from queue {queue:?}",
            self.store.name()
        );
        assert!(
            claimed[0].record.suspect.is_some(),
            "a quarantined job is a suspect"
        );
        claimed[0].lease
    }

    /// Claims exactly one job of `queue` for [`WORKER`] with a 30 s lease, and checks it is
    /// `expected`.
    pub(super) async fn claim_one(&self, queue: &str, expected: JobId, now: Timestamp) -> Lease {
        let claimed = self.claim(queue, WORKER, 1, secs(30), now).await;
        assert_eq!(
            claimed_ids(&claimed),
            vec![expected],
            "{}: claim of one job from queue {queue:?}",
            self.store.name()
        );
        claimed[0].lease
    }

    /// Finishes leases [`WORKER`] holds.
    pub(super) async fn finish_many(&self, finishes: Vec<JobFinish>, now: Timestamp) -> Vec<bool> {
        self.finish_many_as(WORKER, finishes, now).await
    }

    pub(super) async fn finish_many_as(
        &self,
        owner: &str,
        finishes: Vec<JobFinish>,
        now: Timestamp,
    ) -> Vec<bool> {
        let params = JobFinishParams {
            owner: owner.to_owned(),
            finishes,
            now,
        };
        let result = self.store.job_finish_many(params).await;
        self.ok(result, "job_finish_many")
    }

    /// Finishes one lease [`WORKER`] holds.
    pub(super) async fn finish(
        &self,
        lease: Lease,
        outcome: FinishOutcome,
        now: Timestamp,
    ) -> bool {
        self.finish_as(WORKER, lease, outcome, now).await
    }

    pub(super) async fn finish_as(
        &self,
        owner: &str,
        lease: Lease,
        outcome: FinishOutcome,
        now: Timestamp,
    ) -> bool {
        let applied = self
            .finish_many_as(owner, vec![JobFinish { lease, outcome }], now)
            .await;
        assert_eq!(
            applied.len(),
            1,
            "{}: one finish, one result",
            self.store.name()
        );
        applied[0]
    }

    /// Renews leases [`WORKER`] holds.
    pub(super) async fn heartbeat(
        &self,
        leases: Vec<Lease>,
        ttl: Duration,
        now: Timestamp,
    ) -> Vec<bool> {
        self.heartbeat_as(WORKER, leases, ttl, now).await
    }

    pub(super) async fn heartbeat_as(
        &self,
        owner: &str,
        leases: Vec<Lease>,
        ttl: Duration,
        now: Timestamp,
    ) -> Vec<bool> {
        let params = JobHeartbeatParams {
            owner: owner.to_owned(),
            leases,
            lease_ttl: ttl,
            now,
        };
        let result = self.store.job_heartbeat_many(params).await;
        self.ok(result, "job_heartbeat_many")
    }

    /// Saves a checkpoint under a lease [`WORKER`] holds.
    pub(super) async fn checkpoint(
        &self,
        lease: Lease,
        checkpoint: Value,
        ttl: Duration,
        now: Timestamp,
    ) -> bool {
        self.checkpoint_as(WORKER, lease, checkpoint, ttl, now)
            .await
    }

    pub(super) async fn checkpoint_as(
        &self,
        owner: &str,
        lease: Lease,
        checkpoint: Value,
        ttl: Duration,
        now: Timestamp,
    ) -> bool {
        let params = JobCheckpointParams {
            owner: owner.to_owned(),
            lease,
            checkpoint,
            lease_ttl: ttl,
            now,
        };
        let result = self.store.job_checkpoint(params).await;
        self.ok(result, "job_checkpoint")
    }

    pub(super) async fn rescue(
        &self,
        now: Timestamp,
        max_rescues: u32,
        limit: usize,
    ) -> RescueOutcome {
        let params = JobRescueParams {
            now,
            max_rescues,
            limit,
        };
        let result = self.store.job_rescue_expired(params).await;
        self.ok(result, "job_rescue_expired")
    }

    /// Rescues with a generous limit and max_rescues; returns the sorted requeued ids.
    pub(super) async fn rescue_ids(&self, now: Timestamp) -> Vec<JobId> {
        let outcome = self.rescue(now, 100, 1000).await;
        assert!(
            outcome.dead.is_empty(),
            "{}: no poison pill",
            self.store.name()
        );
        sorted(outcome.requeued_ids())
    }

    pub(super) async fn promote(&self, now: Timestamp, limit: usize) -> u64 {
        let result = self
            .store
            .job_promote_scheduled(JobPromoteParams { now, limit })
            .await;
        self.ok(result, "job_promote_scheduled")
    }

    pub(super) async fn try_get(&self, id: JobId) -> Option<JobRecord> {
        let result = self.store.job_get(id).await;
        self.ok(result, "job_get")
    }

    pub(super) async fn get(&self, id: JobId) -> JobRecord {
        match self.try_get(id).await {
            Some(job) => job,
            None => panic!("{}: job {id} is missing", self.store.name()),
        }
    }

    pub(super) async fn list(&self, params: JobListParams) -> Vec<JobRecord> {
        let result = self.store.job_list(params).await;
        self.ok(result, "job_list")
    }

    pub(super) async fn retry(&self, id: JobId, now: Timestamp) -> bool {
        let result = self.store.job_retry(JobRetryParams { id, now }).await;
        self.ok(result, "job_retry")
    }

    pub(super) async fn cancel(&self, id: JobId, now: Timestamp) -> bool {
        let result = self.store.job_cancel(JobCancelParams { id, now }).await;
        self.ok(result, "job_cancel")
    }

    pub(super) async fn prune(
        &self,
        states: Vec<JobState>,
        finalized_before: Timestamp,
        limit: usize,
    ) -> u64 {
        let params = JobPruneParams {
            states,
            finalized_before,
            limit,
        };
        let result = self.store.job_prune(params).await;
        self.ok(result, "job_prune")
    }

    pub(super) async fn stats(&self) -> Vec<QueueStats> {
        let result = self.store.queue_stats().await;
        self.ok(result, "queue_stats")
    }

    /// The stats of one queue (all zero if the queue has no job).
    pub(super) async fn queue(&self, queue: &str) -> QueueStats {
        let stats = self.stats().await;
        let found = stats.into_iter().find(|s| s.queue == queue);
        found.unwrap_or_else(|| QueueStats {
            queue: queue.to_owned(),
            ..QueueStats::default()
        })
    }
}
