//! Cases for inserting jobs and promoting scheduled ones.

use std::sync::Arc;

use serde_json::json;

use super::support::{at, claimed_ids, fresh_record, job_at, new_job, secs, Harness, WORKER};
use jobs::store::{JobListParams, NewJob, Store};
use jobs::JobState;

/// `job_insert_many` returns ids in input order, increasing within and across calls, and
/// records every field: state `available`, `run_at` = now when none was given (or the given
/// past/present time), `created_at` = now, counters 0, no lease, checkpoint or errors.
/// A `run_at` equal to now is `available`, not `scheduled`. An empty batch returns no ids.
pub async fn insert_records_defaults(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let now = at(0);
    let email = NewJob {
        kind: "email".to_owned(),
        args: json!({ "to": "ada@example.com", "tries": [1, 2] }),
        ..new_job("default")
    };
    let urgent = NewJob {
        priority: 5,
        max_attempts: 7,
        ..new_job("mail")
    };
    let past = job_at("default", -2, at(-30));
    let present = job_at("default", 0, now);
    let batch = vec![email, urgent, past, present];
    let ids = h.insert(batch.clone(), now).await;
    assert_eq!(ids.len(), 4, "one id per job");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase in input order: {ids:?}"
    );
    let run_ats = [now, now, at(-30), now];
    for ((id, new), run_at) in ids.iter().zip(&batch).zip(run_ats) {
        let expected = fresh_record(*id, new, JobState::Available, run_at, now);
        assert_eq!(h.get(*id).await, expected, "job {id} as inserted");
    }
    let later = h.insert(vec![new_job("default")], at(1)).await;
    assert!(later[0] > ids[3], "a later insert gets a larger id");
    assert!(
        h.insert(Vec::new(), at(2)).await.is_empty(),
        "an empty batch inserts nothing"
    );
    assert_eq!(h.queue("default").await.available, 4);
}

/// One call inserts 1,000 jobs: 1,000 distinct increasing ids whose records carry their own
/// args, all available.
pub async fn insert_many_in_one_call(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let jobs: Vec<NewJob> = (0..1000)
        .map(|n| NewJob {
            args: json!({ "n": n }),
            priority: (n % 7) as i16,
            ..new_job("bulk")
        })
        .collect();
    let ids = h.insert(jobs, at(0)).await;
    assert_eq!(ids.len(), 1000);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase in input order"
    );
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = h
            .list(JobListParams {
                queue: Some("bulk".to_owned()),
                after,
                limit: 400,
                ..JobListParams::default()
            })
            .await;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        listed.extend(page);
    }
    assert_eq!(listed.len(), 1000, "all 1,000 jobs are stored");
    for (n, (job, id)) in listed.iter().zip(&ids).enumerate() {
        assert_eq!(job.id, *id);
        assert_eq!(job.args, json!({ "n": n }), "job {id} keeps its own args");
        assert_eq!(job.priority, (n % 7) as i16);
        assert_eq!(job.state, JobState::Available);
    }
    assert_eq!(h.queue("bulk").await.available, 1000);
}

/// A batch mixing kinds (every job a different run of alike jobs, which some stores write
/// with another statement than a batch of alike jobs) stores each job's own kind, queue and
/// args, args of every JSON type intact, and ids in input order.
pub async fn insert_mixed_batch(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let args = [
        json!({ "nested": { "list": [1, 2.5, "x"] }, "empty": {} }),
        json!([null, true, false]),
        json!("quote \" backslash \\ unicode é 🚀 newline \n"),
        json!(-42),
        json!(1.5e300),
        json!(true),
        json!(null),
        json!({}),
    ];
    let mixed: Vec<NewJob> = (0..24)
        .map(|i| NewJob {
            kind: if i % 2 == 0 { "even" } else { "odd" }.to_owned(),
            args: args[i % args.len()].clone(),
            priority: (i % 3) as i16,
            ..new_job(if i % 4 < 2 { "left" } else { "right" })
        })
        .collect();
    let mut alike = mixed.clone();
    alike.sort_by(|a, b| (&a.kind, &a.queue, a.priority).cmp(&(&b.kind, &b.queue, b.priority)));
    for batch in [mixed, alike] {
        let ids = h.insert(batch.clone(), at(0)).await;
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in input order");
        for (id, new) in ids.iter().zip(&batch) {
            let expected = fresh_record(*id, new, JobState::Available, at(0), at(0));
            assert_eq!(h.get(*id).await, expected, "job {id} as inserted");
        }
    }
}

/// A job whose `run_at` is after now is `scheduled` and not claimable; promotion at a time
/// before its `run_at` leaves it alone; promotion at `now >= run_at` makes it `available`
/// with `run_at` unchanged and returns the count; promotion honours its limit.
///
/// (Whether a store may also claim a scheduled job whose time has come before it is
/// promoted is left open: the suite never claims between a job's `run_at` and its promotion.)
pub async fn scheduled_jobs_wait_for_promotion(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let now = at(0);
    let ids = h
        .insert(
            vec![
                job_at("q", 0, at(60)),
                job_at("q", 0, at(120)),
                new_job("q"),
            ],
            now,
        )
        .await;
    let first = h.get(ids[0]).await;
    assert_eq!(first.state, JobState::Scheduled);
    assert_eq!(first.run_at, at(60));
    assert_eq!(h.get(ids[1]).await.state, JobState::Scheduled);
    let claimed = h.claim("q", WORKER, 10, secs(30), now).await;
    assert_eq!(
        claimed_ids(&claimed),
        vec![ids[2]],
        "only the due job is claimable"
    );

    assert_eq!(
        h.promote(at(59), 100).await,
        0,
        "nothing is due a second early"
    );
    assert!(h.claim("q", WORKER, 10, secs(30), at(59)).await.is_empty());
    assert_eq!(
        h.promote(at(60), 100).await,
        1,
        "the first job is due at its run_at"
    );
    let promoted = h.get(ids[0]).await;
    assert_eq!(promoted.state, JobState::Available);
    assert_eq!(promoted.run_at, at(60), "promotion keeps run_at");
    assert_eq!(h.get(ids[1]).await.state, JobState::Scheduled);
    let claimed = h.claim("q", WORKER, 10, secs(30), at(60)).await;
    assert_eq!(claimed_ids(&claimed), vec![ids[0]]);

    let five: Vec<NewJob> = (0..5).map(|_| job_at("q", 0, at(600))).collect();
    h.insert(five, at(500)).await;
    assert_eq!(h.promote(at(500), 100).await, 1, "the second job only");
    assert_eq!(h.promote(at(600), 2).await, 2, "limit 2");
    assert_eq!(h.promote(at(600), 10).await, 3, "the rest");
    assert_eq!(h.promote(at(600), 10).await, 0, "nothing left");
    let stats = h.queue("q").await;
    assert_eq!((stats.scheduled, stats.available, stats.running), (0, 6, 2));
}
