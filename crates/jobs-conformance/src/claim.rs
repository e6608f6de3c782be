//! Cases for claiming jobs.

use std::sync::Arc;

use super::support::{at, claimed_ids, job_at, new_job, secs, sorted, Claim, Harness, WORKER};
use jobs::store::{FinishOutcome, JobExpireUnknownKindsParams, NewJob, Store};
use jobs::JobState;

/// Claims take available jobs by priority (high first), then `run_at`, then id, and at most
/// `limit` per call; once the queue is empty a claim returns nothing.
///
/// The suite checks *which* jobs each claim returns, not their order inside the returned
/// batch (a store may return a batch in any order).
pub async fn claim_order_and_limit(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let now = at(0);
    let ids = h
        .insert(
            vec![
                job_at("q", 0, at(-10)),   // a
                job_at("q", 5, at(-1)),    // b
                job_at("q", 5, at(-5)),    // c
                job_at("q", -3, at(-100)), // d
                job_at("q", 0, at(-10)),   // e: same as a, later id
                job_at("q", 5, at(-5)),    // f: same as c, later id
            ],
            now,
        )
        .await;
    let [a, b, c, d, e, f] = [ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]];
    let first = h.claim("q", WORKER, 2, secs(30), now).await;
    assert_eq!(
        claimed_ids(&first),
        sorted(vec![c, f]),
        "priority 5, oldest run_at, ids"
    );
    let second = h.claim("q", WORKER, 3, secs(30), now).await;
    assert_eq!(
        claimed_ids(&second),
        sorted(vec![b, a, e]),
        "then b, then priority 0"
    );
    let third = h.claim("q", WORKER, 10, secs(30), now).await;
    assert_eq!(
        claimed_ids(&third),
        vec![d],
        "negative priority last, limit not reached"
    );
    assert!(h.claim("q", WORKER, 10, secs(30), now).await.is_empty());
}

/// A claim takes jobs of the named queue only; a queue without jobs yields nothing.
pub async fn claim_only_from_named_queue(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let now = at(0);
    let in_a = h.insert(vec![new_job("a"), new_job("a")], now).await;
    let in_b = h.insert(vec![job_at("b", 100, at(-1000))], now).await;
    let claimed = h.claim("a", WORKER, 10, secs(30), now).await;
    assert_eq!(claimed_ids(&claimed), in_a, "both of queue a, none of b");
    assert!(claimed.iter().all(|c| c.record.queue == "a"));
    assert!(
        h.claim("c", WORKER, 10, secs(30), now).await.is_empty(),
        "queue c is empty"
    );
    assert!(
        h.claim("a", WORKER, 10, secs(30), now).await.is_empty(),
        "queue a is drained"
    );
    assert_eq!(h.get(in_b[0]).await.state, JobState::Available);
    assert_eq!(
        claimed_ids(&h.claim("b", WORKER, 10, secs(30), now).await),
        in_b
    );
}

/// A claim makes the job `running` with `lease_owner` = owner, `lease_expires_at` = now + ttl,
/// `claims` + 1, `attempted_at` = now, attempts unchanged; the lease token equals the new
/// `claims`, and the returned record equals what `job_get` then returns. A reclaim after a
/// release increments `claims` (and the token) again.
pub async fn claim_sets_lease(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(job_at("q", 0, at(-5)), at(-5)).await;
    let claimed = h.claim("q", "worker-7", 5, secs(30), at(1)).await;
    assert_eq!(claimed.len(), 1);
    let job = &claimed[0];
    assert_eq!(job.lease.job, id);
    assert_eq!(job.lease.token, 1, "the first claim's token");
    let record = &job.record;
    assert_eq!(record.state, JobState::Running);
    assert_eq!(record.lease_owner.as_deref(), Some("worker-7"));
    assert_eq!(record.lease_expires_at, Some(at(31)));
    assert_eq!(record.claims, 1);
    assert_eq!(record.attempted_at, Some(at(1)));
    assert_eq!(record.attempts, 0, "claiming charges no attempt");
    assert_eq!(record.run_at, at(-5), "claiming keeps run_at");
    assert_eq!(
        &h.get(id).await,
        record,
        "the returned record is the stored one"
    );

    assert!(
        h.finish_as("worker-7", job.lease, FinishOutcome::Release, at(2))
            .await
    );
    let again = h.claim("q", "worker-8", 5, secs(10), at(3)).await;
    assert_eq!(claimed_ids(&again), vec![id]);
    assert_eq!(again[0].lease.token, 2, "every claim changes the token");
    assert_eq!(again[0].record.claims, 2);
    assert_eq!(again[0].record.lease_owner.as_deref(), Some("worker-8"));
    assert_eq!(again[0].record.lease_expires_at, Some(at(13)));
    assert_eq!(again[0].record.attempted_at, Some(at(3)));
}

/// A claim with a kind list never returns a job of another kind, and leaves those jobs
/// available (not charged, not leased) for a claimer that knows their kind; without a list
/// it takes any kind.
pub async fn claim_only_listed_kinds(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let kinded = |kind: &str, priority: i16| NewJob {
        kind: kind.to_owned(),
        priority,
        ..new_job("q")
    };
    let ids = h
        .insert(
            vec![
                kinded("b", 5),
                kinded("a", 0),
                kinded("c", 9),
                kinded("a", 1),
                kinded("b", 0),
            ],
            at(0),
        )
        .await;
    let old_kinds: &[&str] = &["a"];
    let old = h
        .claim_with(Claim {
            queue: "q",
            owner: "old",
            limit: 10,
            ttl: secs(30),
            now: at(1),
            kinds: Some(old_kinds),
            suspects: false,
        })
        .await;
    assert_eq!(claimed_ids(&old), vec![ids[1], ids[3]], "only kind a");
    let stats = h.queue("q").await;
    assert_eq!((stats.available, stats.running), (3, 2));
    for id in [ids[0], ids[2], ids[4]] {
        let job = h.get(id).await;
        assert_eq!(
            (job.state, job.claims, job.attempts),
            (JobState::Available, 0, 0)
        );
    }
    let new_kinds: &[&str] = &["a", "b"];
    let new = h
        .claim_with(Claim {
            queue: "q",
            owner: "new",
            limit: 10,
            ttl: secs(30),
            now: at(2),
            kinds: Some(new_kinds),
            suspects: false,
        })
        .await;
    assert_eq!(
        claimed_ids(&new),
        vec![ids[0], ids[4]],
        "kinds a and b: the b jobs left"
    );
    let any = h.claim("q", "any", 10, secs(30), at(3)).await;
    assert_eq!(claimed_ids(&any), vec![ids[2]], "no list: any kind");
}

/// `job_expire_unknown_kinds` moves available jobs of kinds not in the known list, available
/// since before the cut-off, to `dead` (one error of attempt 0 naming the kind,
/// `finalized_at` = now), returns them as `job_get` then shows them, and counts the jobs of
/// unknown kinds still waiting; jobs of known kinds, younger ones and running ones stay.
pub async fn unknown_kinds_wait_then_expire(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let kinded = |kind: &str, run_at: i64| NewJob {
        kind: kind.to_owned(),
        ..job_at("q", 0, at(run_at))
    };
    let ids = h
        .insert(
            vec![
                kinded("a", 0),
                kinded("b", 0),
                kinded("b", 50),
                kinded("c", 1),
            ],
            at(60),
        )
        .await;
    let running = h.claim_one("q", ids[0], at(60)).await;
    let expire = |waiting_since, limit| JobExpireUnknownKindsParams {
        known: vec!["a".to_owned(), "c".to_owned()].into(),
        waiting_since: at(waiting_since),
        now: at(61),
        limit,
    };
    let outcome = h.store.job_expire_unknown_kinds(expire(10, 10)).await;
    let outcome = h.ok(outcome, "job_expire_unknown_kinds");
    assert_eq!(outcome.waiting, 1, "the younger b job still waits");
    assert_eq!(outcome.dead.len(), 1);
    let dead = &outcome.dead[0];
    assert_eq!((dead.id, dead.state), (ids[1], JobState::Dead));
    assert_eq!(dead.finalized_at, Some(at(61)));
    assert_eq!(dead.errors.len(), 1);
    assert_eq!((dead.errors[0].attempt, dead.errors[0].at), (0, at(61)));
    assert!(
        dead.errors[0].message.contains("\"b\""),
        "{:?}",
        dead.errors
    );
    assert_eq!(&h.get(ids[1]).await, dead);
    assert_eq!(h.get(ids[2]).await.state, JobState::Available);
    assert_eq!(h.get(ids[3]).await.state, JobState::Available, "known kind");
    assert_eq!(h.get(running.job).await.state, JobState::Running);

    let outcome = h.store.job_expire_unknown_kinds(expire(100, 1)).await;
    let outcome = h.ok(outcome, "job_expire_unknown_kinds");
    assert_eq!(
        (outcome.dead.len(), outcome.waiting),
        (1, 0),
        "the limit, then nothing left"
    );
    assert_eq!(outcome.dead[0].id, ids[2]);
}
