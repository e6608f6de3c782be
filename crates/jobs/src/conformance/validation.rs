//! Cases for requests a store must refuse.

use std::sync::Arc;

use super::support::{at, new_job, secs, Harness};
use crate::job::JobState;
use crate::store::NewJob;
use crate::store::{
    JobClaimParams, JobInsertParams, JobListParams, JobPromoteParams, JobPruneParams,
    JobRescueParams, Store, StoreError,
};

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Invalid(message)) => assert!(!message.is_empty(), "{what}: a message"),
        other => panic!("{what}: expected StoreError::Invalid, got {other:?}"),
    }
}

/// Out-of-range requests fail with [`StoreError::Invalid`] (not transient): an insert batch
/// holding a job with an empty kind, an empty queue name or `max_attempts` 0 (and then
/// *nothing* of that batch is inserted); a claim with limit 0 or an empty queue name; a
/// zero limit on rescue, promote, list and prune; pruning a non-terminal state.
pub async fn invalid_requests(store: Arc<dyn Store>) {
    let h = Harness::new(store.clone());
    let bad_jobs = [
        NewJob {
            kind: String::new(),
            ..new_job("q")
        },
        new_job(""),
        NewJob {
            max_attempts: 0,
            ..new_job("q")
        },
    ];
    for bad in bad_jobs {
        let jobs = vec![new_job("q"), bad.clone(), new_job("q")];
        let result = store
            .job_insert_many(JobInsertParams { jobs, now: at(0) })
            .await;
        assert!(result.as_ref().is_err_and(|e| !e.is_transient()), "{bad:?}");
        assert_invalid(result, "an insert batch with an invalid job");
    }
    let all = JobListParams {
        limit: 100,
        ..JobListParams::default()
    };
    assert!(
        h.list(all).await.is_empty(),
        "a refused batch inserts nothing"
    );

    h.insert(vec![new_job("q")], at(0)).await;
    let claim = |queue: &str, limit| JobClaimParams {
        queue: queue.to_owned(),
        owner: "w".to_owned(),
        limit,
        lease_ttl: secs(30),
        now: at(0),
    };
    assert_invalid(store.job_claim(claim("q", 0)).await, "claim limit 0");
    assert_invalid(store.job_claim(claim("", 10)).await, "claim of queue \"\"");
    let rescue = JobRescueParams {
        now: at(0),
        max_rescues: 3,
        limit: 0,
    };
    assert_invalid(store.job_rescue_expired(rescue).await, "rescue limit 0");
    let promote = JobPromoteParams {
        now: at(0),
        limit: 0,
    };
    assert_invalid(
        store.job_promote_scheduled(promote).await,
        "promote limit 0",
    );
    assert_invalid(
        store
            .job_list(JobListParams {
                limit: 0,
                ..JobListParams::default()
            })
            .await,
        "list limit 0",
    );
    let prune = |states, limit| JobPruneParams {
        states,
        finalized_before: at(100),
        limit,
    };
    let completed = vec![JobState::Completed];
    assert_invalid(store.job_prune(prune(completed, 0)).await, "prune limit 0");
    let running = vec![JobState::Completed, JobState::Running];
    assert_invalid(
        store.job_prune(prune(running, 10)).await,
        "prune of running",
    );
    assert_eq!(
        h.queue("q").await.available,
        1,
        "the valid job is untouched"
    );
}
