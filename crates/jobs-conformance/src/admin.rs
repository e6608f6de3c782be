//! Cases for the inspection and control operations: retry, cancel, list, stats, prune.

use std::sync::Arc;
use std::time::Duration;

use super::support::{at, attempt_error, job_at, new_job, secs, Harness, WORKER};
use jobs::store::{FinishOutcome, JobListParams, NewJob, QueueStats, Store};
use jobs::Timestamp;
use jobs::{JobId, JobState};

/// Inserts `job`, claims it at `t` and finishes it with `outcome` at `t`. The job's queue
/// must have no other available job.
async fn run_to(h: &Harness, job: NewJob, outcome: FinishOutcome, t: Timestamp) -> JobId {
    let queue = job.queue.clone();
    let id = h.insert_one(job, t).await;
    let lease = h.claim_one(&queue, id, t).await;
    assert!(h.finish(lease, outcome, t).await);
    id
}

fn dead_outcome(t: Timestamp) -> FinishOutcome {
    FinishOutcome::Dead {
        error: attempt_error(1, t, "exhausted"),
    }
}

/// `job_retry` of a dead or a cancelled job makes it `available` at now with attempts and
/// rescues reset to 0, `finalized_at` cleared, errors kept and `claims` unchanged (so the
/// next claim's token is still new). It returns `false` and changes nothing for jobs that
/// are available, running or completed, and for a missing id.
pub async fn retry_dead_and_cancelled(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    h.claim_one("q", id, at(0)).await;
    assert_eq!(h.rescue_ids(at(31)).await, vec![id]);
    let lease = h.claim_suspect_one("q", id, at(32)).await;
    assert!(h.finish(lease, dead_outcome(at(33)), at(33)).await);
    assert!(h.retry(id, at(40)).await);
    let job = h.get(id).await;
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.run_at, at(40));
    assert_eq!((job.attempts, job.rescues), (0, 0));
    assert_eq!(
        job.errors,
        vec![attempt_error(1, at(33), "exhausted")],
        "errors kept"
    );
    assert_eq!(job.finalized_at, None);
    assert_eq!(job.claims, 2);
    assert_eq!(h.claim_one("q", id, at(41)).await.token, 3);

    let cancelled = h.insert_one(job_at("c", 0, at(100)), at(0)).await;
    assert!(h.cancel(cancelled, at(1)).await);
    assert!(h.retry(cancelled, at(42)).await);
    let job = h.get(cancelled).await;
    assert_eq!(
        (job.state, job.run_at, job.finalized_at),
        (JobState::Available, at(42), None)
    );

    let completed = run_to(&h, new_job("done"), FinishOutcome::Completed, at(50)).await;
    for other in [cancelled, id, completed] {
        let before = h.get(other).await;
        assert!(
            !h.retry(other, at(60)).await,
            "{} job {other}",
            before.state
        );
        assert_eq!(h.get(other).await, before, "unchanged");
    }
    assert!(
        !h.retry(JobId(completed.0 + 1_000_000), at(60)).await,
        "missing job"
    );
}

/// `job_cancel` cancels scheduled and available jobs (`cancelled`, `finalized_at` = now),
/// which are then never promoted or claimed; it returns `false` and changes nothing for
/// running, completed and already cancelled jobs and for a missing id.
pub async fn cancel_waiting_only(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let scheduled = h.insert_one(job_at("q", 0, at(100)), at(0)).await;
    let completed = run_to(&h, new_job("q"), FinishOutcome::Completed, at(0)).await;
    let running = h.insert_one(new_job("q"), at(0)).await;
    h.claim_one("q", running, at(0)).await;
    let available = h.insert_one(new_job("q"), at(0)).await;

    assert!(h.cancel(scheduled, at(5)).await);
    assert!(h.cancel(available, at(6)).await);
    let job = h.get(scheduled).await;
    assert_eq!(
        (job.state, job.finalized_at),
        (JobState::Cancelled, Some(at(5)))
    );
    let job = h.get(available).await;
    assert_eq!(
        (job.state, job.finalized_at),
        (JobState::Cancelled, Some(at(6)))
    );
    for other in [running, completed, scheduled] {
        let before = h.get(other).await;
        assert!(
            !h.cancel(other, at(7)).await,
            "{} job {other}",
            before.state
        );
        assert_eq!(h.get(other).await, before, "unchanged");
    }
    assert!(
        !h.cancel(JobId(available.0 + 1_000_000), at(7)).await,
        "missing job"
    );
    assert_eq!(h.promote(at(1000), 10).await, 0);
    assert!(h
        .claim("q", WORKER, 10, secs(30), at(1000))
        .await
        .is_empty());
    let stats = h.queue("q").await;
    assert_eq!((stats.cancelled, stats.running, stats.completed), (2, 1, 1));
}

/// `job_list` filters by state, by queue, by both, pages with `after` + `limit`, orders by
/// id, and returns full records (equal to `job_get`).
pub async fn list_filters_and_paging(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let jobs = vec![
        job_at("a", 9, at(0)),
        new_job("b"),
        new_job("a"),
        new_job("b"),
        new_job("a"),
        job_at("b", 0, at(100)),
    ];
    let ids = h.insert(jobs, at(0)).await;
    let [a1, b1, a2, b2, a3, b3] = [ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]];
    h.claim_one("a", a1, at(1)).await;
    let list = |state: Option<JobState>, queue: Option<&str>, after: Option<JobId>, limit| {
        let params = JobListParams {
            state,
            queue: queue.map(str::to_owned),
            after,
            limit,
        };
        let h = h.clone();
        async move {
            h.list(params)
                .await
                .iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    let available = Some(JobState::Available);
    assert_eq!(list(available, None, None, 100).await, vec![b1, a2, b2, a3]);
    assert_eq!(list(None, Some("b"), None, 100).await, vec![b1, b2, b3]);
    assert_eq!(list(available, Some("a"), None, 100).await, vec![a2, a3]);
    assert_eq!(
        list(Some(JobState::Running), None, None, 100).await,
        vec![a1]
    );
    assert_eq!(
        list(Some(JobState::Scheduled), Some("a"), None, 100).await,
        vec![]
    );
    assert_eq!(list(Some(JobState::Dead), None, None, 100).await, vec![]);
    assert_eq!(list(None, Some("zz"), None, 100).await, vec![]);
    assert_eq!(list(None, None, None, 2).await, vec![a1, b1]);
    assert_eq!(list(None, None, Some(b1), 2).await, vec![a2, b2]);
    assert_eq!(list(None, None, Some(b2), 2).await, vec![a3, b3]);
    assert_eq!(list(None, None, Some(b3), 2).await, vec![]);
    assert_eq!(list(available, Some("b"), Some(b1), 10).await, vec![b2]);
    let records = h
        .list(JobListParams {
            limit: 100,
            ..JobListParams::default()
        })
        .await;
    assert_eq!(records.len(), 6);
    for record in records {
        assert_eq!(h.get(record.id).await, record);
    }
}

/// `queue_stats` counts each queue's jobs per state, gives the oldest `run_at` among its
/// available jobs (whatever their priority) and orders queues by name; a store without jobs
/// has no stats.
pub async fn queue_stats_counts(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    assert_eq!(h.stats().await, vec![], "no jobs, no queues");
    let ids = h
        .insert(
            vec![
                job_at("alpha", 9, at(-1)),
                job_at("alpha", 8, at(-2)),
                job_at("alpha", 7, at(-3)),
                job_at("alpha", 6, at(-4)),
                job_at("alpha", 0, at(100)),
                job_at("alpha", 0, at(-30)),
                job_at("alpha", 5, at(-10)),
                job_at("alpha", 0, at(-5)),
                new_job("beta"),
                new_job("beta"),
            ],
            at(0),
        )
        .await;
    assert!(h.cancel(ids[3], at(0)).await);
    let claimed = h.claim("alpha", WORKER, 3, secs(30), at(0)).await;
    let lease_of = |id| claimed.iter().find(|c| c.lease.job == id).map(|c| c.lease);
    let completed = lease_of(ids[1]).expect("priority 8 is claimed second");
    let dead = lease_of(ids[2]).expect("priority 7 is claimed third");
    assert!(h.finish(completed, FinishOutcome::Completed, at(1)).await);
    assert!(h.finish(dead, dead_outcome(at(1)), at(1)).await);
    let expected = vec![
        QueueStats {
            queue: "alpha".to_owned(),
            scheduled: 1,
            available: 3,
            running: 1,
            completed: 1,
            dead: 1,
            cancelled: 1,
            oldest_available_at: Some(at(-30)),
        },
        QueueStats {
            queue: "beta".to_owned(),
            available: 2,
            oldest_available_at: Some(at(0)),
            ..QueueStats::default()
        },
    ];
    let stats = h.stats().await;
    assert_eq!(stats, expected);
    assert_eq!(stats[0].latency(at(0)), Duration::from_secs(30));
    assert_eq!(stats[0].count(JobState::Running), 1);
}

/// `job_prune` deletes jobs in the given terminal states finalized strictly before the
/// cut-off, at most `limit` per call, and returns how many; other jobs stay. Ids are never
/// reused: a job inserted after the newest job was pruned gets a larger id (else a stale
/// lease could fence onto a new job that got its id).
pub async fn prune_old_finalized(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let c1 = run_to(&h, new_job("q"), FinishOutcome::Completed, at(1)).await;
    let d1 = run_to(&h, new_job("q"), dead_outcome(at(2)), at(2)).await;
    let c3 = run_to(&h, new_job("q"), FinishOutcome::Completed, at(4)).await;
    let c2 = run_to(&h, new_job("q"), FinishOutcome::Completed, at(10)).await;
    let x1 = h.insert_one(new_job("q"), at(3)).await;
    assert!(h.cancel(x1, at(3)).await);
    let running = h.insert_one(new_job("q"), at(0)).await;
    h.claim_one("q", running, at(0)).await;
    let available = h.insert_one(new_job("q"), at(0)).await;

    assert_eq!(h.prune(vec![JobState::Completed], at(10), 100).await, 2);
    assert_eq!(h.try_get(c1).await, None);
    assert_eq!(h.try_get(c3).await, None);
    assert!(
        h.try_get(c2).await.is_some(),
        "finalized at the cut-off: kept"
    );
    assert!(h.try_get(d1).await.is_some(), "another state: kept");
    let both = vec![JobState::Dead, JobState::Cancelled];
    assert_eq!(h.prune(both.clone(), at(100), 1).await, 1, "limit 1");
    assert_eq!(h.prune(both.clone(), at(100), 1).await, 1);
    assert_eq!(h.prune(both, at(100), 1).await, 0);
    assert_eq!((h.try_get(d1).await, h.try_get(x1).await), (None, None));
    assert_eq!(
        h.prune(Vec::new(), at(100), 10).await,
        0,
        "no states, nothing"
    );
    assert_eq!(h.prune(vec![JobState::Completed], at(11), 10).await, 1);
    assert_eq!(h.get(running).await.state, JobState::Running);
    assert_eq!(h.get(available).await.state, JobState::Available);
    let newest = [c1, d1, c3, c2, x1, running, available]
        .into_iter()
        .max()
        .expect("seven jobs");
    let pruned_newest = run_to(&h, new_job("z"), FinishOutcome::Completed, at(20)).await;
    assert!(pruned_newest > newest);
    assert_eq!(h.prune(vec![JobState::Completed], at(21), 10).await, 1);
    let next = h.insert_one(new_job("z"), at(22)).await;
    assert!(
        next > pruned_newest,
        "ids are never reused after a prune: {next} after {pruned_newest}"
    );
    let stats = h.queue("q").await;
    let finalized = (stats.completed, stats.dead, stats.cancelled);
    assert_eq!(
        (finalized, stats.running, stats.available),
        ((0, 0, 0), 1, 1)
    );
}
