//! One job run outside a pool: a claimed job on an in-memory store, run through the engine's
//! own outcome mapping.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::context::{RunEnv, RunState};
use crate::job::JobRecord;
use crate::store::{JobClaimParams, JobInsertParams, NewJob};

/// The lease a test run holds: long, since nothing rescues jobs in a test.
pub(super) const TEST_LEASE: Duration = Duration::from_secs(3600);
/// The lease owner of test runs.
pub(super) const TEST_OWNER: &str = "jobs-testing";

/// What every test run gets: the client its context uses, and a shutdown and hard stop of
/// its own.
pub(super) fn run_env(client: Client) -> Arc<RunEnv> {
    Arc::new(RunEnv {
        shutdown: CancellationToken::new(),
        hard_stop: CancellationToken::new(),
        client,
        lease_ttl: TEST_LEASE,
        // Every checkpoint is written at once, so a test sees it in the store.
        checkpoint_interval: Duration::ZERO,
    })
}

/// Inserts `job` into the run's own store (empty until now) and claims it as a pool would:
/// the run the engine would start. `adjust` edits the claimed record (attempt, checkpoint).
pub(super) async fn claim_new(
    env: &Arc<RunEnv>,
    job: NewJob,
    adjust: impl FnOnce(&mut JobRecord),
) -> Result<Arc<RunState>, crate::error::StoreError> {
    let store = env.client.store();
    let now = env.client.clock().now();
    let queue = job.queue.clone();
    store
        .job_insert_many(JobInsertParams {
            jobs: vec![job],
            now,
        })
        .await?;
    let params = JobClaimParams {
        queue,
        owner: TEST_OWNER.to_owned(),
        limit: 1,
        lease_ttl: TEST_LEASE,
        now,
        kinds: None,
        suspects: false,
    };
    let mut claimed = store.job_claim(params).await?;
    // The run's store is its own: the job just inserted, available now, is the only one.
    let mut claimed = claimed
        .pop()
        .expect("a job just inserted alone into its own store is claimable");
    adjust(&mut claimed.record);
    Ok(Arc::new(RunState::new(
        claimed,
        Arc::clone(env),
        tokio::time::Instant::now(),
    )))
}
