//! Assertions on enqueued jobs: [`enqueued`], [`assert_enqueued`], [`refute_enqueued`].

use crate::args::JobArgs;
use crate::client::Client;
use crate::job::{JobRecord, JobState};
use crate::store::JobListParams;
use crate::worker::decode;

/// Jobs per list round trip.
const PAGE: usize = 1_000;

/// The waiting (available or scheduled) jobs of kind `A` in `client`'s store, oldest first,
/// with their args decoded and their record (queue, priority, `max_attempts`, `run_at`, ...).
///
/// Works on any store; with a [`Harness`](super::Harness) in manual mode these are the jobs
/// the next [`drain`](super::Harness::drain) runs (in inline mode jobs have already run).
///
/// # Panics
///
/// If the store fails, or a waiting job of kind `A` has args that do not decode into `A`.
pub async fn enqueued<A: JobArgs>(client: &Client) -> Vec<(A, JobRecord)> {
    let mut found = Vec::new();
    for state in [JobState::Available, JobState::Scheduled] {
        let mut after = None;
        loop {
            let params = JobListParams {
                state: Some(state),
                queue: None,
                after,
                limit: PAGE,
            };
            let page = client
                .store()
                .job_list(params)
                .await
                .unwrap_or_else(|error| panic!("listing enqueued jobs failed: {error}"));
            after = page.last().map(|job| job.id);
            let full = page.len() == PAGE;
            for job in page.into_iter().filter(|job| job.kind == A::KIND) {
                let args = decode::<A>(job.args.clone())
                    .unwrap_or_else(|bad| panic!("job {}: {bad}", job.id));
                found.push((args, job));
            }
            if !full {
                break;
            }
        }
    }
    found.sort_by_key(|(_, job)| job.id);
    found
}

/// Asserts that a waiting job of kind `A` matches `matches(&args, &record)`.
///
/// ```
/// use jobs::testing::{assert_enqueued, refute_enqueued};
/// use jobs::{Client, EnqueueOptions, JobArgs, MemoryStore};
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Invoice { order: u64 }
/// impl JobArgs for Invoice { const KIND: &'static str = "invoice"; }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jobs::EnqueueError> {
/// let client = Client::new(std::sync::Arc::new(MemoryStore::new()));
/// client.enqueue_with(&Invoice { order: 9 }, EnqueueOptions::new().queue("billing")).await?;
/// assert_enqueued::<Invoice, _>(&client, |args, job| args.order == 9 && job.queue == "billing").await;
/// refute_enqueued::<Invoice, _>(&client, |args, _| args.order == 10).await;
/// # Ok(()) }
/// ```
///
/// # Panics
///
/// When none matches, listing the waiting jobs of kind `A`; as [`enqueued`].
pub async fn assert_enqueued<A, F>(client: &Client, matches: F)
where
    A: JobArgs,
    F: Fn(&A, &JobRecord) -> bool,
{
    let jobs = enqueued::<A>(client).await;
    if !jobs.iter().any(|(args, job)| matches(args, job)) {
        panic!(
            "expected a waiting job of kind {:?} that matches; waiting jobs of that kind: {}",
            A::KIND,
            describe(&jobs)
        );
    }
}

/// Asserts that no waiting job of kind `A` matches `matches(&args, &record)`.
///
/// # Panics
///
/// When one matches, naming it; as [`enqueued`].
pub async fn refute_enqueued<A, F>(client: &Client, matches: F)
where
    A: JobArgs,
    F: Fn(&A, &JobRecord) -> bool,
{
    let jobs = enqueued::<A>(client).await;
    let matching: Vec<_> = jobs.into_iter().filter(|(a, j)| matches(a, j)).collect();
    if !matching.is_empty() {
        panic!(
            "expected no waiting job of kind {:?} that matches; found: {}",
            A::KIND,
            describe(&matching)
        );
    }
}

fn describe<A>(jobs: &[(A, JobRecord)]) -> String {
    if jobs.is_empty() {
        return "none".to_owned();
    }
    let each: Vec<_> = jobs
        .iter()
        .map(|(_, job)| {
            format!(
                "#{} {} in {:?} (priority {}, run at {}) args {}",
                job.id, job.state, job.queue, job.priority, job.run_at, job.args
            )
        })
        .collect();
    each.join("; ")
}
