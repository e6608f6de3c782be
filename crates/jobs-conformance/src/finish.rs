//! Cases for the outcomes of a run (`job_finish_many`).

use std::sync::Arc;

use serde_json::json;

use super::support::{at, attempt_error, claimed_ids, job_at, new_job, secs, Harness, WORKER};
use jobs::store::{FinishOutcome, JobFinish, Lease, Store};
use jobs::{JobId, JobState};

/// `Completed`: state `completed`, `finalized_at` = now, lease cleared, checkpoint cleared,
/// no attempt charged. Finishing the same lease again returns `false`.
pub async fn finish_completed(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    let lease = h.claim_one("q", id, at(1)).await;
    assert!(
        h.checkpoint(lease, json!({ "row": 3 }), secs(30), at(2))
            .await
    );
    assert!(h.finish(lease, FinishOutcome::Completed, at(5)).await);
    let job = h.get(id).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.finalized_at, Some(at(5)));
    assert_eq!((job.lease_owner, job.lease_expires_at), (None, None));
    assert_eq!(job.checkpoint, None, "success clears the checkpoint");
    assert_eq!(job.attempts, 0);
    assert!(job.errors.is_empty());
    assert!(
        !h.finish(lease, FinishOutcome::Completed, at(6)).await,
        "a finished job's lease no longer holds"
    );
    assert_eq!(h.get(id).await.finalized_at, Some(at(5)), "unchanged");
}

/// `Retry`: attempt charged, error recorded, lease cleared, checkpoint kept; state `scheduled`
/// at the given `run_at` (not claimable until promoted), or `available` at once when that
/// `run_at` is not after now.
pub async fn finish_retry(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    let lease = h.claim_one("q", id, at(1)).await;
    assert!(
        h.checkpoint(lease, json!({ "page": 2 }), secs(30), at(2))
            .await
    );
    let error = attempt_error(1, at(3), "connection reset");
    let retry = FinishOutcome::Retry {
        run_at: at(60),
        error: error.clone(),
    };
    assert!(h.finish(lease, retry, at(3)).await);
    let job = h.get(id).await;
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.run_at, at(60));
    assert_eq!(job.attempts, 1);
    assert_eq!(job.errors, vec![error]);
    assert_eq!((job.lease_owner, job.lease_expires_at), (None, None));
    assert_eq!(job.finalized_at, None);
    assert_eq!(
        job.checkpoint,
        Some(json!({ "page": 2 })),
        "a retry keeps progress"
    );
    assert!(h.claim("q", WORKER, 10, secs(30), at(30)).await.is_empty());
    assert_eq!(h.promote(at(60), 10).await, 1);
    let lease = h.claim_one("q", id, at(60)).await;
    assert_eq!(lease.token, 2);

    let now_retry = FinishOutcome::Retry {
        run_at: at(61),
        error: attempt_error(2, at(61), "timeout"),
    };
    assert!(h.finish(lease, now_retry, at(61)).await);
    let job = h.get(id).await;
    assert_eq!(
        job.state,
        JobState::Available,
        "run_at <= now: available at once"
    );
    assert_eq!(job.run_at, at(61));
    assert_eq!(job.attempts, 2);
    assert_eq!(
        claimed_ids(&h.claim("q", WORKER, 1, secs(30), at(61)).await),
        vec![id]
    );
}

/// `Dead`: attempt charged, error recorded, state `dead`, `finalized_at` = now, lease cleared,
/// checkpoint kept (for inspection and a later manual retry).
pub async fn finish_dead(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    let lease = h.claim_one("q", id, at(1)).await;
    assert!(h.checkpoint(lease, json!([1, 2, 3]), secs(30), at(2)).await);
    let error = attempt_error(1, at(4), "args do not deserialize: missing field `to`");
    let dead = FinishOutcome::Dead {
        error: error.clone(),
    };
    assert!(h.finish(lease, dead, at(4)).await);
    let job = h.get(id).await;
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.finalized_at, Some(at(4)));
    assert_eq!(job.attempts, 1);
    assert_eq!(job.errors, vec![error]);
    assert_eq!((job.lease_owner, job.lease_expires_at), (None, None));
    assert_eq!(job.checkpoint, Some(json!([1, 2, 3])));
    assert!(h.claim("q", WORKER, 10, secs(30), at(5)).await.is_empty());
    assert_eq!(h.promote(at(10_000), 10).await, 0);
}

/// `Snooze` (with a `run_at` after now): state `scheduled` at that time, no attempt charged,
/// no error recorded, lease cleared, checkpoint kept.
///
/// (A snooze whose `run_at` is not after now is left open: `scheduled` or `available`.)
pub async fn finish_snooze(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    let lease = h.claim_one("q", id, at(1)).await;
    assert!(
        h.checkpoint(lease, json!({ "cursor": "abc" }), secs(30), at(2))
            .await
    );
    let snooze = FinishOutcome::Snooze { run_at: at(30) };
    assert!(h.finish(lease, snooze, at(3)).await);
    let job = h.get(id).await;
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.run_at, at(30));
    assert_eq!(job.attempts, 0, "a snooze charges no attempt");
    assert!(job.errors.is_empty());
    assert_eq!((job.lease_owner, job.lease_expires_at), (None, None));
    assert_eq!(job.checkpoint, Some(json!({ "cursor": "abc" })));
    assert_eq!(job.finalized_at, None);
    assert!(h.claim("q", WORKER, 10, secs(30), at(10)).await.is_empty());
    assert_eq!(h.promote(at(30), 10).await, 1);
    assert_eq!(h.claim_one("q", id, at(30)).await.token, 2);
}

/// `Release` (shutdown): state `available` at once, `run_at` unchanged, checkpoint kept, no
/// attempt charged, lease cleared; the job is claimable again at once and keeps its place
/// in the queue (its old `run_at`).
pub async fn finish_release(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(job_at("q", 0, at(-5)), at(0)).await;
    let lease = h.claim_one("q", id, at(1)).await;
    let newer = h.insert_one(new_job("q"), at(2)).await;
    assert!(
        h.checkpoint(lease, json!({ "row": 10 }), secs(30), at(2))
            .await
    );
    assert!(h.finish(lease, FinishOutcome::Release, at(3)).await);
    let job = h.get(id).await;
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.run_at, at(-5), "release keeps run_at");
    assert_eq!(
        job.checkpoint,
        Some(json!({ "row": 10 })),
        "release keeps progress"
    );
    assert_eq!(job.attempts, 0);
    assert!(job.errors.is_empty());
    assert_eq!((job.lease_owner, job.lease_expires_at), (None, None));
    assert_eq!(job.finalized_at, None);
    let again = h.claim_one("q", id, at(3)).await;
    assert_eq!(again.token, 2, "released before the newer job {newer}");
}

/// A finish batch naming one lease twice finishes it once, by its first entry: the later
/// entry reports `false` and its outcome is not applied (the first one ended the lease).
pub async fn lease_twice_in_one_batch_finishes_once(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    let lease = h.claim_one("q", id, at(0)).await;
    let dead = FinishOutcome::Dead {
        error: attempt_error(1, at(1), "second"),
    };
    let batch = vec![
        JobFinish {
            lease,
            outcome: FinishOutcome::Completed,
        },
        JobFinish {
            lease,
            outcome: dead,
        },
    ];
    assert_eq!(h.finish_many(batch, at(1)).await, vec![true, false]);
    let job = h.get(id).await;
    assert_eq!(job.state, JobState::Completed, "the first entry won");
    assert_eq!((job.attempts, job.errors.len()), (0, 0));

    let other = h.insert_one(new_job("r"), at(2)).await;
    let lease = h.claim_one("r", other, at(2)).await;
    let release_then_complete = vec![
        JobFinish {
            lease,
            outcome: FinishOutcome::Release,
        },
        JobFinish {
            lease,
            outcome: FinishOutcome::Completed,
        },
    ];
    let applied = h.finish_many(release_then_complete, at(3)).await;
    assert_eq!(applied, vec![true, false]);
    assert_eq!(h.get(other).await.state, JobState::Available);
}

/// A batch mixing completions and other outcomes, some of them stale, applies exactly those
/// whose lease holds and reports each in input order; a batch where all hold applies all.
pub async fn mixed_batch_applies_what_holds(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let ids = h
        .insert((0..5).map(|_| new_job("q")).collect(), at(0))
        .await;
    let claimed = h.claim("q", WORKER, 5, secs(30), at(0)).await;
    assert_eq!(claimed_ids(&claimed), ids);
    let lease_of = |id: JobId| {
        let found = claimed.iter().find(|c| c.lease.job == id);
        found.map(|c| c.lease).expect("claimed above")
    };
    let leases: Vec<Lease> = ids.iter().map(|&id| lease_of(id)).collect();
    let stale = |lease: Lease| Lease {
        token: lease.token + 99,
        ..lease
    };
    let error = attempt_error(1, at(1), "flaky");
    let finish = |lease, outcome| JobFinish { lease, outcome };
    let batch = vec![
        finish(leases[0], FinishOutcome::Completed),
        finish(stale(leases[4]), FinishOutcome::Completed),
        finish(
            leases[1],
            FinishOutcome::Retry {
                run_at: at(9),
                error: error.clone(),
            },
        ),
        finish(leases[2], FinishOutcome::Completed),
        finish(stale(leases[3]), FinishOutcome::Release),
    ];
    let applied = h.finish_many(batch, at(1)).await;
    assert_eq!(applied, vec![true, false, true, true, false]);
    let states = [
        JobState::Completed,
        JobState::Scheduled,
        JobState::Completed,
        JobState::Running,
        JobState::Running,
    ];
    for (id, state) in ids.iter().zip(states) {
        assert_eq!(h.get(*id).await.state, state, "job {id}");
    }
    assert_eq!(h.get(ids[1]).await.errors, vec![error]);

    let rest = [leases[3], leases[4]].map(|lease| finish(lease, FinishOutcome::Completed));
    assert_eq!(h.finish_many(rest.to_vec(), at(2)).await, vec![true, true]);
    assert_eq!(h.get(ids[4]).await.state, JobState::Completed);
}

/// An empty finish batch and an empty heartbeat return empty results and change nothing.
pub async fn empty_batches_do_nothing(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    h.claim_one("q", id, at(0)).await;
    let before = h.get(id).await;
    assert!(h.finish_many(Vec::new(), at(1)).await.is_empty());
    assert!(h.heartbeat(Vec::new(), secs(30), at(1)).await.is_empty());
    assert_eq!(h.get(id).await, before);
}
