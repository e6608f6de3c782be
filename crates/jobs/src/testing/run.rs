//! One job run outside a pool: a claimed job on an in-memory store, run through the engine's
//! own outcome mapping.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::context::{RunEnv, RunState};
use crate::job::JobRecord;
use crate::store::{FinishOutcome, JobClaimParams, JobInsertParams, NewJob};
use crate::time::Timestamp;

/// The lease a test run holds: long, since nothing rescues jobs in a test.
pub(super) const TEST_LEASE: Duration = Duration::from_secs(3600);
/// The lease owner of test runs.
pub(super) const TEST_OWNER: &str = "jobs-testing";

/// What a run came to, as the engine would record it. [`run_job`](super::run_job) and
/// [`Harness::drain`](super::Harness::drain) report it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// `perform` succeeded: the job is `completed`.
    Completed,
    /// A failed attempt with attempts left: `scheduled` again at `at` (the worker's backoff).
    Retry {
        /// When the job runs again.
        at: Timestamp,
        /// The recorded error.
        error: String,
    },
    /// The job went to the dead set (attempts exhausted, discarded, bad input).
    Dead {
        /// The recorded error, e.g. `"discarded: <reason>"`.
        reason: String,
    },
    /// Snoozed: `scheduled` at `until`, no attempt charged.
    Snoozed {
        /// When the job runs again.
        until: Timestamp,
    },
    /// Stopped at a safe point on shutdown (or aborted): back to `available`, no attempt
    /// charged, with the checkpoint it saved.
    Released {
        /// The newest checkpoint the run gave (or the one it started from).
        checkpoint: Option<Value>,
    },
}

impl Outcome {
    /// The outcome of `run` from the engine's mapping (`None`: the lease was lost, which a
    /// test run only sees if the test took it away; it counts as released).
    pub(super) fn of(run: &RunState, finish: Option<&FinishOutcome>) -> Outcome {
        match finish {
            Some(FinishOutcome::Completed) => Outcome::Completed,
            Some(FinishOutcome::Retry { run_at, error }) => Outcome::Retry {
                at: *run_at,
                error: error.message.clone(),
            },
            Some(FinishOutcome::Dead { error }) => Outcome::Dead {
                reason: error.message.clone(),
            },
            Some(FinishOutcome::Snooze { run_at }) => Outcome::Snoozed { until: *run_at },
            Some(FinishOutcome::Release) | None => Outcome::Released {
                checkpoint: run.latest_checkpoint(),
            },
        }
    }

    /// Whether the job completed.
    pub fn is_completed(&self) -> bool {
        matches!(self, Outcome::Completed)
    }
}

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
    };
    let mut claimed = store.job_claim(params).await?;
    // The run's store is its own: the job just inserted, available now, is the only one.
    let mut claimed = claimed
        .pop()
        .expect("a job just inserted alone into its own store is claimable");
    adjust(&mut claimed.record);
    Ok(Arc::new(RunState::new(
        claimed.record,
        claimed.lease,
        Arc::clone(env),
    )))
}
