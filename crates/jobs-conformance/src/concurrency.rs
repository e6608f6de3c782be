//! Cases for concurrent workers and rescuers on one store.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use super::support::{at, new_job, secs, Harness, WORKER};
use jobs::store::{FinishOutcome, JobFinish, Store};
use jobs::Timestamp;
use jobs::{JobId, JobState};

const TASKS: usize = 4;

/// Runs `TASKS` copies of `task` concurrently and collects what they return.
async fn run_tasks<F, Fut, T>(task: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..TASKS).map(|n| tokio::spawn(task(n))).collect();
    let mut results = Vec::with_capacity(TASKS);
    for handle in handles {
        match handle.await {
            Ok(result) => results.push(result),
            Err(error) => panic!("a concurrent task failed: {error}"),
        }
    }
    results
}

/// Adds `ids` to `seen`, failing on any id seen before.
fn add_unique(seen: &mut BTreeSet<JobId>, ids: impl IntoIterator<Item = JobId>, what: &str) {
    for id in ids {
        assert!(seen.insert(id), "job {id} was {what} twice");
    }
}

/// Claims batches from `queue` until a claim returns nothing, completing each batch;
/// returns the ids claimed.
async fn claim_loop(h: Harness, owner: String, limit: usize) -> Vec<JobId> {
    let mut mine = Vec::new();
    loop {
        let claimed = h.claim("race", &owner, limit, secs(300), at(1)).await;
        if claimed.is_empty() {
            return mine;
        }
        for job in &claimed {
            assert_eq!(job.record.state, JobState::Running);
            assert_eq!(job.record.lease_owner.as_deref(), Some(owner.as_str()));
        }
        let finishes: Vec<JobFinish> = claimed
            .iter()
            .map(|job| JobFinish {
                lease: job.lease,
                outcome: FinishOutcome::Completed,
            })
            .collect();
        let applied = h.finish_many_as(&owner, finishes, at(2)).await;
        assert!(applied.iter().all(|&ok| ok), "{owner}: its own leases hold");
        mine.extend(claimed.iter().map(|job| job.lease.job));
        tokio::task::yield_now().await;
    }
}

/// Four tasks claiming in loops (batches of 10 to 49) over 2,000 jobs never get the same
/// job twice, every finish of theirs applies, and together they get all 2,000.
pub async fn concurrent_claimers(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let ids = h
        .insert((0..2000).map(|_| new_job("race")).collect(), at(0))
        .await;
    let results = run_tasks(|n| claim_loop(h.clone(), format!("claimer-{n}"), 10 + 13 * n)).await;
    let mut seen = BTreeSet::new();
    for claimed in results {
        add_unique(&mut seen, claimed, "claimed");
    }
    // A claimer may stop while others hold the last rows; whatever is left is claimed here.
    let left = claim_loop(h.clone(), "last".to_owned(), 100).await;
    add_unique(&mut seen, left, "claimed");
    assert_eq!(
        seen,
        ids.into_iter().collect::<BTreeSet<_>>(),
        "all jobs, once each"
    );
    assert_eq!(h.queue("race").await.completed, 2000);
}

/// Rescues until a call returns nothing; returns the ids requeued and the ids killed.
async fn rescue_loop(h: Harness, now: Timestamp, max_rescues: u32) -> (Vec<JobId>, Vec<JobId>) {
    let (mut requeued, mut dead) = (Vec::new(), Vec::new());
    loop {
        let outcome = h.rescue(now, max_rescues, 20).await;
        if outcome.requeued.is_empty() && outcome.dead.is_empty() {
            return (requeued, dead);
        }
        requeued.extend(outcome.requeued_ids());
        dead.extend(outcome.dead.iter().map(|job| job.id));
        tokio::task::yield_now().await;
    }
}

/// Claims every available job of `queue` "race" with a 10 s lease at `now` (suspects only,
/// or none).
async fn claim_all(h: &Harness, now: Timestamp, expected: usize, suspects: bool) {
    let mut claimed = 0;
    loop {
        let batch = if suspects {
            h.claim_suspects("race", "doomed", 100, secs(10), now).await
        } else {
            h.claim("race", "doomed", 100, secs(10), now).await
        }
        .len();
        if batch == 0 {
            break;
        }
        claimed += batch;
    }
    assert_eq!(claimed, expected);
}

/// Four rescuers racing over 400 expired leases never return the same job twice, whether
/// they requeue it (each ends with `rescues` 1, a suspect) or kill it as a poison pill
/// (rescued again in quarantine with `max_rescues` 0); together they
/// handle all of them.
pub async fn concurrent_rescuers(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let ids: BTreeSet<JobId> = h
        .insert((0..400).map(|_| new_job("race")).collect(), at(0))
        .await
        .into_iter()
        .collect();
    for (round, now, max_rescues) in [(0, at(0), 5), (1, at(100), 0)] {
        claim_all(&h, now, ids.len(), round == 1).await;
        let expired = now + secs(11);
        let results = run_tasks(|_| rescue_loop(h.clone(), expired, max_rescues)).await;
        let (mut requeued, mut dead) = (BTreeSet::new(), BTreeSet::new());
        for (mine, killed) in
            results
                .into_iter()
                .chain([rescue_loop(h.clone(), expired, max_rescues).await])
        {
            add_unique(&mut requeued, mine, "requeued");
            add_unique(&mut dead, killed, "killed");
        }
        let (all, none) = if round == 0 {
            (requeued, dead)
        } else {
            (dead, requeued)
        };
        assert_eq!(all, ids, "round {round}: every expired lease handled once");
        assert!(none.is_empty(), "round {round}: {none:?}");
    }
    for id in &ids {
        let job = h.get(*id).await;
        assert_eq!((job.state, job.rescues), (JobState::Dead, 2), "job {id}");
        assert_eq!(job.errors.len(), 1, "job {id}: one poison-pill error");
    }
}

/// A heartbeat batch and a finish batch over the same leases (in opposite orders), sent at
/// once, both complete and every finish applies: a store's own writers never deadlock (or,
/// if the database detects one, the store does not pass it on as an error).
pub async fn concurrent_heartbeats_and_finishes_complete(store: Arc<dyn Store>) {
    const BATCH: usize = 100;
    let h = Harness::new(store.clone());
    let name = store.name();
    h.insert((0..4 * BATCH).map(|_| new_job("beat")).collect(), at(0))
        .await;
    for round in 0..4 {
        let claimed = h.claim("beat", WORKER, BATCH, secs(30), at(1)).await;
        assert_eq!(claimed.len(), BATCH, "{name}: round {round} claims a batch");
        let mut leases: Vec<_> = claimed.iter().map(|c| c.lease).collect();
        let beat = {
            let h = Harness::new(store.clone());
            let leases = leases.clone();
            tokio::spawn(async move { h.heartbeat(leases, secs(30), at(2)).await })
        };
        leases.reverse();
        let finishes: Vec<JobFinish> = leases
            .iter()
            .map(|&lease| JobFinish {
                lease,
                outcome: FinishOutcome::Completed,
            })
            .collect();
        let done = {
            let h = Harness::new(store.clone());
            tokio::spawn(async move { h.finish_many(finishes, at(2)).await })
        };
        let both = tokio::time::timeout(secs(30), async { (beat.await, done.await) }).await;
        let Ok((beat, done)) = both else {
            panic!("{name}: a heartbeat and a finish of the same leases hung for 30 s");
        };
        if let Err(error) = beat {
            panic!("{name}: the heartbeat failed: {error}");
        }
        match done {
            Ok(applied) => assert!(
                applied.iter().all(|&ok| ok),
                "{name}: every finish applies, round {round}"
            ),
            Err(error) => panic!("{name}: the finish failed: {error}"),
        }
    }
    assert_eq!(h.queue("beat").await.completed, 4 * BATCH as u64);
}
