//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use jobs::store::{
    ClaimedJob, FinishOutcome, JobClaimParams, JobFinish, JobFinishParams, JobInsertParams, Lease,
    NewJob, Store,
};
use jobs::{JobId, Timestamp};

/// A fixed "now" so tests control time.
pub const T0: Timestamp = Timestamp::from_micros(1_700_000_000_000_000);

/// The worker the helpers claim and write as.
pub const OWNER: &str = "w1";

pub const TTL: Duration = Duration::from_secs(30);

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn job(queue: &str, n: i64) -> NewJob {
    NewJob {
        kind: "test".into(),
        args: serde_json::json!({ "n": n }),
        queue: queue.into(),
        priority: 0,
        max_attempts: 3,
        run_at: None,
        metadata: Default::default(),
    }
}

pub fn at(mut job: NewJob, run_at: Timestamp) -> NewJob {
    job.run_at = Some(run_at);
    job
}

pub async fn insert(store: &dyn Store, jobs: Vec<NewJob>, now: Timestamp) -> Vec<JobId> {
    store
        .job_insert_many(JobInsertParams { jobs, now })
        .await
        .expect("insert")
}

pub async fn claim(
    store: &dyn Store,
    queue: &str,
    limit: usize,
    now: Timestamp,
) -> Vec<ClaimedJob> {
    claim_as(store, queue, OWNER, limit, now).await
}

pub async fn claim_as(
    store: &dyn Store,
    queue: &str,
    owner: &str,
    limit: usize,
    now: Timestamp,
) -> Vec<ClaimedJob> {
    store
        .job_claim(JobClaimParams {
            queue: queue.into(),
            owner: owner.into(),
            limit,
            lease_ttl: TTL,
            now,
            kinds: None,
            suspects: false,
        })
        .await
        .expect("claim")
}

pub async fn finish(
    store: &dyn Store,
    lease: Lease,
    outcome: FinishOutcome,
    now: Timestamp,
) -> bool {
    let applied = store
        .job_finish_many(JobFinishParams {
            owner: OWNER.into(),
            finishes: vec![JobFinish { lease, outcome }],
            now,
        })
        .await
        .expect("finish");
    applied[0]
}

pub fn ids(claimed: &[ClaimedJob]) -> Vec<JobId> {
    claimed.iter().map(|job| job.lease.job).collect()
}
