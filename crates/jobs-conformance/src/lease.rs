//! Cases for leases: fencing, heartbeats, checkpoints, rescue and poison pills.

use std::sync::Arc;

use serde_json::json;

use super::support::{at, claimed_ids, new_job, secs, sorted, Harness, WORKER};
use jobs::store::{FinishOutcome, JobFinish, Lease, Store};
use jobs::{JobId, JobState};

/// After a rescue and a reclaim by another worker, the first worker's (stale) lease fails
/// every fenced write — finish, heartbeat, checkpoint — with `false` and changes nothing;
/// so does the current token written in another owner's name, and an unknown token or job.
/// A batch reports per finish, in input order, and its stale entries do not keep the others
/// from applying.
pub async fn fencing_rejects_stale_leases(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let ids = h.insert(vec![new_job("q"), new_job("q")], at(0)).await;
    let claimed = h.claim("q", "old-worker", 1, secs(10), at(0)).await;
    assert_eq!(claimed_ids(&claimed), vec![ids[0]]);
    let stale = claimed[0].lease;
    assert_eq!(h.rescue_ids(at(11)).await, vec![ids[0]]);
    let fresh = h
        .claim_suspects("q", "new-worker", 1, secs(30), at(12))
        .await;
    assert_eq!(claimed_ids(&fresh), vec![ids[0]]);
    let fresh = fresh[0].lease;
    assert_ne!(stale.token, fresh.token);
    assert!(
        h.checkpoint_as(
            "new-worker",
            fresh,
            json!({ "by": "new" }),
            secs(30),
            at(13)
        )
        .await
    );
    assert_eq!(
        h.heartbeat_as("new-worker", vec![stale, fresh], secs(30), at(13))
            .await,
        vec![false, true],
        "in one batch, the stale lease fails and the fresh one holds"
    );
    let before = h.get(ids[0]).await;

    let done = FinishOutcome::Completed;
    let old = "old-worker";
    assert!(
        !h.finish_as(old, stale, done.clone(), at(14)).await,
        "stale finish"
    );
    assert_eq!(
        h.heartbeat_as(old, vec![stale], secs(300), at(14)).await,
        vec![false]
    );
    assert!(
        !h.checkpoint_as(old, stale, json!({ "by": "old" }), secs(300), at(14))
            .await
    );
    // The current token under another owner's name: writes check the owner too (a token
    // alone could repeat if a store lost a claim, say in a database crash).
    assert!(
        !h.finish_as(old, fresh, done.clone(), at(14)).await,
        "the current token, another owner"
    );
    assert_eq!(
        h.heartbeat_as(old, vec![fresh], secs(300), at(14)).await,
        vec![false]
    );
    assert!(
        !h.checkpoint_as(old, fresh, json!({ "by": "old" }), secs(300), at(14))
            .await
    );
    let wrong = Lease {
        job: ids[0],
        token: fresh.token + 100,
    };
    assert!(
        !h.finish_as("new-worker", wrong, done.clone(), at(14)).await,
        "a token never issued"
    );
    assert_eq!(h.get(ids[0]).await, before, "stale writes changed nothing");

    let other = h.claim_one("q", ids[1], at(15)).await;
    let missing = Lease {
        job: JobId(ids[1].0 + 1_000_000),
        token: 1,
    };
    let batch = [stale, missing, other].map(|lease| JobFinish {
        lease,
        outcome: done.clone(),
    });
    let applied = h.finish_many(batch.to_vec(), at(16)).await;
    assert_eq!(
        applied,
        vec![false, false, true],
        "per finish, in input order"
    );
    assert_eq!(
        h.get(ids[0]).await,
        before,
        "the stale finish in a batch changed nothing"
    );
    assert_eq!(h.get(ids[1]).await.state, JobState::Completed);
    assert!(
        h.finish_as("new-worker", fresh, done, at(17)).await,
        "the current lease still holds"
    );
    let job = h.get(ids[0]).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.finalized_at, Some(at(17)));
}

/// A heartbeat sets `lease_expires_at` = now + ttl for leases that hold, so the rescuer leaves
/// the job alone until the new expiry; it reports per lease, in input order, `false` for a
/// job that is no longer running. Fencing is by token, owner and state only: a lease past its
/// expiry that nobody rescued yet can still be renewed.
pub async fn heartbeat_extends_lease(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let ids = h
        .insert(vec![new_job("q"), new_job("q"), new_job("q")], at(0))
        .await;
    let claimed = h.claim("q", WORKER, 3, secs(30), at(0)).await;
    assert_eq!(claimed_ids(&claimed), ids);
    let lease_of = |id: JobId| claimed.iter().find(|c| c.lease.job == id).map(|c| c.lease);
    let [a, b, c] = [ids[0], ids[1], ids[2]].map(|id| lease_of(id).expect("claimed above"));
    assert!(h.finish(b, FinishOutcome::Completed, at(5)).await);

    assert_eq!(
        h.heartbeat(vec![a, b, c], secs(30), at(20)).await,
        vec![true, false, true]
    );
    let job = h.get(ids[0]).await;
    assert_eq!(job.lease_expires_at, Some(at(50)));
    assert_eq!(job.state, JobState::Running);
    assert_eq!(
        job.lease_owner.as_deref(),
        Some(WORKER),
        "the owner is unchanged"
    );
    assert_eq!(job.claims, 1, "a heartbeat is not a claim");
    assert!(
        h.rescue_ids(at(40)).await.is_empty(),
        "renewed leases hold past the old expiry"
    );

    assert_eq!(
        h.heartbeat(vec![c], secs(30), at(55)).await,
        vec![true],
        "expired, not rescued"
    );
    assert_eq!(h.get(ids[2]).await.lease_expires_at, Some(at(85)));
    assert_eq!(
        h.rescue_ids(at(56)).await,
        vec![ids[0]],
        "only the lease that lapsed"
    );
}

/// A checkpoint saves its value (replacing the previous one) and renews the lease to
/// now + ttl; the job stays `running`.
pub async fn checkpoint_saves_and_renews(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    let lease = h.claim_one("q", id, at(0)).await;
    let first = json!({ "row": 100, "file": "import.csv" });
    assert!(h.checkpoint(lease, first.clone(), secs(60), at(10)).await);
    let job = h.get(id).await;
    assert_eq!(job.checkpoint, Some(first));
    assert_eq!(job.lease_expires_at, Some(at(70)));
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.claims, 1);
    assert!(
        h.rescue_ids(at(65)).await.is_empty(),
        "the checkpoint renewed the lease"
    );
    let second = json!({ "row": 200, "file": "import.csv" });
    assert!(h.checkpoint(lease, second.clone(), secs(60), at(66)).await);
    let job = h.get(id).await;
    assert_eq!(job.checkpoint, Some(second), "the newest checkpoint wins");
    assert_eq!(job.lease_expires_at, Some(at(126)));
}

/// The rescuer returns running jobs whose lease expired strictly before now to `available`:
/// `rescues` + 1, suspects with no strike (they were not suspects), lease cleared, no attempt
/// charged, no error recorded, `claims` unchanged; live leases (including one expiring
/// exactly now) stay; at most `limit` per call.
///
/// (`run_at` after a rescue is left open.)
pub async fn rescue_expired_only(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let ids = h
        .insert((0..5).map(|_| new_job("q")).collect(), at(0))
        .await;
    let short = h.claim("q", WORKER, 2, secs(10), at(0)).await;
    let long = h.claim("q", WORKER, 1, secs(100), at(0)).await;
    let later = h.claim("q", WORKER, 2, secs(10), at(5)).await;
    assert_eq!(claimed_ids(&short), ids[..2].to_vec());
    assert_eq!(claimed_ids(&long), vec![ids[2]]);
    assert_eq!(claimed_ids(&later), ids[3..].to_vec());

    assert!(
        h.rescue_ids(at(10)).await.is_empty(),
        "a lease expiring now still holds"
    );
    let first = h
        .rescue(at(10) + std::time::Duration::from_micros(1), 5, 1000)
        .await;
    assert_eq!(sorted(first.requeued_ids()), ids[..2].to_vec());
    assert!(
        first
            .requeued
            .iter()
            .all(|job| (job.queue.as_str(), job.kind.as_str()) == ("q", "test")),
        "a requeued job names its queue and kind: {:?}",
        first.requeued
    );
    assert!(first.dead.is_empty());
    let job = h.get(ids[0]).await;
    assert_eq!(job.state, JobState::Available);
    assert_eq!(
        job.suspect,
        Some(0),
        "a rescued job is a suspect, with no strike"
    );
    assert_eq!(job.rescues, 1);
    assert_eq!((job.lease_owner, job.lease_expires_at), (None, None));
    assert_eq!(job.attempts, 0, "a rescue charges no attempt");
    assert!(job.errors.is_empty(), "a requeue records no error");
    assert_eq!(job.claims, 1);
    assert_eq!(
        h.get(ids[2]).await.state,
        JobState::Running,
        "the live lease stays"
    );

    let limited = h.rescue(at(50), 5, 1).await;
    assert_eq!(limited.requeued.len(), 1, "limit 1");
    let rest = h.rescue(at(50), 5, 10).await;
    assert_eq!(
        sorted([limited.requeued_ids(), rest.requeued_ids()].concat()),
        ids[3..].to_vec()
    );
    let stats = h.queue("q").await;
    assert_eq!((stats.available, stats.running), (4, 1));
}

/// A job whose lease expires in quarantine after it already had `max_rescues` strikes
/// (rescues in quarantine) goes to `dead` instead (a poison pill): `rescues` + 1, lease cleared,
/// `finalized_at` = now, one error with attempt 0, time now and the message
/// `jobs::store::poison_pill_message` words (one wording for every store, naming the worker,
/// the strikes and `max_rescues`); it is returned in `dead` exactly as `job_get` then shows
/// it. Its first expiry (out of quarantine) only made it a suspect. `max_rescues` 0 kills at
/// the first expiry in quarantine.
pub async fn poison_pill_goes_dead(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    h.claim_one("q", id, at(0)).await;
    assert_eq!(h.rescue(at(31), 2, 10).await.requeued_ids(), vec![id]);
    for round in 1..3_i64 {
        let start = at(round * 100);
        h.claim_suspect_one("q", id, start).await;
        let outcome = h.rescue(start + secs(31), 2, 10).await;
        assert_eq!(outcome.requeued_ids(), vec![id], "rescue {round} requeues");
        assert!(outcome.dead.is_empty());
    }
    h.claim_suspect_one("q", id, at(300)).await;
    let outcome = h.rescue(at(331), 2, 10).await;
    assert!(outcome.requeued.is_empty());
    assert_eq!(
        outcome.dead.len(),
        1,
        "the third expiry in quarantine is one too many"
    );
    let dead = &outcome.dead[0];
    assert_eq!(dead.id, id);
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!((dead.rescues, dead.suspect), (4, Some(3)));
    assert_eq!(dead.finalized_at, Some(at(331)));
    assert_eq!(
        (dead.lease_owner.clone(), dead.lease_expires_at),
        (None, None)
    );
    assert_eq!(dead.errors.len(), 1);
    assert_eq!((dead.errors[0].attempt, dead.errors[0].at), (0, at(331)));
    assert_eq!(
        dead.errors[0].message,
        jobs::store::poison_pill_message(WORKER, 3, 2),
        "the one wording of every store"
    );
    assert_eq!(&h.get(id).await, dead);

    let other = h.insert_one(new_job("p"), at(300)).await;
    h.claim_one("p", other, at(300)).await;
    assert_eq!(h.rescue(at(400), 0, 10).await.requeued_ids(), vec![other]);
    h.claim_suspect_one("p", other, at(401)).await;
    let outcome = h.rescue(at(500), 0, 10).await;
    assert_eq!(
        outcome.dead.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![other]
    );
    let job = h.get(other).await;
    assert_eq!(
        (job.state, job.rescues, job.errors.len()),
        (JobState::Dead, 2, 1)
    );
    assert_eq!(
        job.errors[0].message,
        jobs::store::poison_pill_message(WORKER, 1, 0)
    );
}

/// A rescue makes a suspect: the normal claim never takes it again, the quarantine claim
/// takes only suspects (a `suspect` record), and `queue_stats` still counts it available.
pub async fn rescue_makes_a_suspect(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let ids = h
        .insert((0..3).map(|_| new_job("q")).collect(), at(0))
        .await;
    let claimed = h.claim("q", WORKER, 2, secs(10), at(0)).await;
    assert_eq!(claimed_ids(&claimed), ids[..2].to_vec());
    assert!(claimed.iter().all(|job| job.record.suspect.is_none()));
    assert_eq!(sorted(h.rescue_ids(at(11)).await), ids[..2].to_vec());
    for id in &ids[..2] {
        let job = h.get(*id).await;
        assert_eq!(
            (job.state, job.suspect, job.rescues),
            (JobState::Available, Some(0), 1)
        );
    }
    assert_eq!(h.queue("q").await.available, 3, "suspects are available");
    let normal = h.claim("q", WORKER, 10, secs(10), at(12)).await;
    assert_eq!(
        claimed_ids(&normal),
        vec![ids[2]],
        "the normal claim skips suspects"
    );
    let quarantine = h.claim_suspects("q", WORKER, 10, secs(10), at(12)).await;
    assert_eq!(
        claimed_ids(&quarantine),
        ids[..2].to_vec(),
        "the quarantine claim takes suspects only"
    );
    assert!(quarantine.iter().all(|job| job.record.suspect == Some(0)));
    assert_eq!(
        h.get(ids[0]).await.suspect,
        Some(0),
        "a claimed suspect stays one"
    );
    assert!(h
        .claim_suspects("q", WORKER, 10, secs(10), at(12))
        .await
        .is_empty());
}

/// Only rescues collected in quarantine count toward `max_rescues`: a job rescued any number
/// of times out of quarantine (each time cleared in between by a run that ended) never
/// becomes a poison pill, even with `max_rescues` 0; a suspect's rescues are strikes, and it
/// stays a suspect.
pub async fn only_quarantine_rescues_count(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    for round in 0..3_i64 {
        let start = at(round * 100);
        h.claim_one("q", id, start).await;
        let rescued = h.rescue(start + secs(31), 0, 10).await;
        assert_eq!(
            rescued.requeued_ids(),
            vec![id],
            "round {round}: not a poison pill"
        );
        assert_eq!(h.get(id).await.suspect, Some(0), "no strike");
        let lease = h.claim_suspect_one("q", id, start + secs(32)).await;
        let snooze = FinishOutcome::Snooze {
            run_at: start + secs(33),
        };
        assert!(h.finish(lease, snooze, start + secs(33)).await);
        assert_eq!(h.get(id).await.suspect, None, "a run that ended clears it");
    }
    h.claim_one("q", id, at(400)).await;
    assert_eq!(h.rescue(at(431), 1, 10).await.requeued_ids(), vec![id]);
    h.claim_suspect_one("q", id, at(432)).await;
    let charged = h.rescue(at(463), 1, 10).await;
    assert_eq!(charged.requeued_ids(), vec![id]);
    let job = h.get(id).await;
    assert_eq!(
        (job.rescues, job.suspect),
        (5, Some(1)),
        "a strike, still a suspect"
    );
    h.claim_suspect_one("q", id, at(464)).await;
    let outcome = h.rescue(at(495), 1, 10).await;
    assert_eq!(
        outcome.dead.len(),
        1,
        "the second charged rescue is too many"
    );
}

/// A suspect whose run ends is cleared: completed (and retried, dead, snoozed) jobs are no
/// longer suspects; a release on shutdown (the run did not end) keeps it a suspect.
pub async fn a_suspect_that_completes_is_cleared(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let ids = h
        .insert((0..2).map(|_| new_job("q")).collect(), at(0))
        .await;
    h.claim("q", WORKER, 2, secs(10), at(0)).await;
    assert_eq!(sorted(h.rescue_ids(at(11)).await), ids.clone());

    let lease = h.claim_suspect_one("q", ids[0], at(12)).await;
    assert!(h.finish(lease, FinishOutcome::Release, at(13)).await);
    let released = h.get(ids[0]).await;
    assert_eq!(
        (released.state, released.suspect),
        (JobState::Available, Some(0))
    );
    let lease = h.claim_suspect_one("q", ids[0], at(14)).await;
    assert!(h.finish(lease, FinishOutcome::Completed, at(15)).await);
    let done = h.get(ids[0]).await;
    assert_eq!((done.state, done.suspect), (JobState::Completed, None));

    let lease = h.claim_suspect_one("q", ids[1], at(16)).await;
    let retry = FinishOutcome::Retry {
        run_at: at(16),
        error: super::support::attempt_error(1, at(17), "boom"),
    };
    assert!(h.finish(lease, retry, at(17)).await);
    let retried = h.get(ids[1]).await;
    assert_eq!(
        (retried.state, retried.suspect),
        (JobState::Available, None)
    );
    assert_eq!(
        h.claim_one("q", ids[1], at(18)).await.job,
        ids[1],
        "cleared: the normal claim takes it again"
    );
}
