//! The case of a row damaged behind the store's back (written by hand or by an older
//! version): how a store's test damages one is its own ([`Damage`]); what every store then
//! does is the same.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jobs::store::{FinishOutcome, JobListParams, NewJob, Store};
use jobs::{JobId, JobState};
use serde_json::json;

use super::support::{at, attempt_error, new_job, secs, Harness, WORKER};

/// Damages the stored args of job `id` behind the store's back, so that they no longer
/// decode (not JSON, or nested deeper than a decoder reads). A store's test gives it, through
/// [`store_conformance_tests!`](crate::store_conformance_tests)'s `damage = ...`, for a store
/// that can hold such a row (the memory store cannot).
pub type Damage = Box<dyn FnOnce(JobId) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A damaged row never fails a read: `job_get` and `job_list` (the dead set's listing among
/// them) return it with what could be read (kind, queue, state; args `null`) and
/// [`JobRecord::unreadable`](jobs::JobRecord::unreadable) naming it, beside the other rows,
/// whole; and an operator can prune it.
pub async fn a_damaged_row_is_read_in_part(store: Arc<dyn Store>, damage: Damage) {
    let h = Harness::new(store);
    let jobs = (0..3)
        .map(|n| NewJob {
            args: json!({ "n": n }),
            ..new_job("q")
        })
        .collect();
    let ids = h.insert(jobs, at(0)).await;
    let claimed = h.claim("q", WORKER, 3, secs(30), at(1)).await;
    assert_eq!(claimed.len(), 3);
    for job in &claimed {
        let dead = FinishOutcome::Dead {
            error: attempt_error(1, at(2), "exhausted"),
        };
        assert!(h.finish(job.lease, dead, at(2)).await);
    }
    damage(ids[1]).await;

    let damaged = h.get(ids[1]).await;
    let reason = damaged.unreadable.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("job {}", ids[1])),
        "{}: the reason names the job: {damaged:?}",
        h.store.name()
    );
    assert_eq!(
        (damaged.kind.as_str(), damaged.queue.as_str(), damaged.state),
        ("test", "q", JobState::Dead),
        "what could be read is kept"
    );
    assert_eq!(damaged.args, json!(null));
    let whole = h.get(ids[0]).await;
    assert_eq!((whole.args, whole.unreadable), (json!({ "n": 0 }), None));

    let dead_set = h
        .list(JobListParams {
            state: Some(JobState::Dead),
            ..JobListParams::default()
        })
        .await;
    let listed: Vec<(JobId, bool)> = dead_set
        .iter()
        .map(|job| (job.id, job.unreadable.is_some()))
        .collect();
    assert_eq!(
        listed,
        vec![(ids[0], false), (ids[1], true), (ids[2], false)],
        "{}: the dead set lists every job, the damaged one marked",
        h.store.name()
    );
    assert_eq!(dead_set[2].args, json!({ "n": 2 }));

    assert_eq!(h.prune(vec![JobState::Dead], at(3), 10).await, 3);
    assert!(h.try_get(ids[1]).await.is_none(), "pruned");
}
