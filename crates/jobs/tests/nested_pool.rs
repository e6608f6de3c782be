//! A pool as a child of an application's own supervision tree, on paused time: shutdown in
//! the tree's order, the pool delivered after each start, escalation, and `run_until`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::{Intensity, JobArgs, JobContext, JobError, JobState, Pool, PoolConfig, Worker};
use serde::{Deserialize, Serialize};
use supervisor::{ChildContext, ChildSpec, ExitReason, Shutdown, Supervisor};

use tokio::time::Instant;

mod support;
use support::*;

type Log = Arc<Mutex<Vec<(&'static str, Duration)>>>;

fn note(log: &Log, since: Instant, what: &'static str) {
    log.lock().unwrap().push((what, since.elapsed()));
}

#[derive(Serialize, Deserialize)]
struct Sleepy;
impl JobArgs for Sleepy {
    const KIND: &'static str = "sleepy";
}

/// Runs for an hour, noting when it sees the shutdown (it keeps running: only the end of the
/// grace period stops it).
struct SleepyWorker {
    log: Log,
    since: Instant,
}
impl Worker for SleepyWorker {
    type Args = Sleepy;
    async fn perform(&self, ctx: JobContext, _args: Sleepy) -> Result<(), JobError> {
        note(&self.log, self.since, "job started");
        ctx.stopping().await;
        note(&self.log, self.since, "job sees shutdown");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    }
}

/// A sibling started after the pool (an HTTP server, say): it lingers 2 s when stopped.
fn server(log: Log, since: Instant) -> ChildSpec {
    ChildSpec::new("server", move |ctx: ChildContext| {
        let log = log.clone();
        async move {
            ctx.cancelled().await;
            note(&log, since, "server stopping");
            tokio::time::sleep(Duration::from_secs(2)).await;
            note(&log, since, "server stopped");
            Ok(())
        }
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
}

fn config(grace: u64) -> PoolConfig {
    PoolConfig {
        grace: Duration::from_secs(grace),
        shutdown_timeout: Duration::from_secs(grace + 5),
        ..PoolConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_nested_pool_stops_after_the_siblings_started_after_it_and_releases_after_its_grace() {
    let store = memory();
    let log: Log = Arc::default();
    let since = Instant::now();
    let spec = pool_on(&store)
        .config(config(10))
        .register(SleepyWorker {
            log: log.clone(),
            since,
        })
        .build()
        .unwrap();
    let (pool_child, mut started) = spec.child_spec();
    let app = Supervisor::builder("app")
        .child(pool_child)
        .child(server(log.clone(), since))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let pool = started.wait().await.unwrap();
    let id = pool.client().enqueue(&Sleepy).await.unwrap();
    wait_for(|| count(&store, JobState::Running), 1).await;

    let stopping_at = since.elapsed();
    let report = app.shutdown().await;
    assert!(report.is_clean(), "{report}");
    let log = log.lock().unwrap().clone();
    let order: Vec<_> = log.iter().map(|(what, _)| *what).collect();
    assert_eq!(
        order,
        [
            "job started",
            "server stopping",
            "server stopped",
            "job sees shutdown"
        ],
        "the server stops first, then the pool"
    );
    let seen_at = log[3].1;
    assert!(seen_at >= stopping_at + Duration::from_secs(2));
    let released = job(&store, id).await;
    assert_eq!(
        (released.state, released.attempts),
        (JobState::Available, 0),
        "released after the grace period, no attempt charged"
    );
    assert!(
        since.elapsed() >= seen_at + Duration::from_secs(10),
        "the job had its whole grace period"
    );
    assert!(started.current().is_none(), "the stopped pool is withdrawn");
}

#[tokio::test(start_paused = true)]
async fn the_pool_is_delivered_after_start_and_again_after_a_restart() {
    let store = memory();
    let (pool_child, mut started) = pool_on(&store).build().unwrap().child_spec();
    assert!(
        started.current().is_none(),
        "nothing before the tree starts"
    );
    let app = Supervisor::builder("app")
        .child(pool_child)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let first = started.wait().await.unwrap();
    assert!(!first.supervisor().is_finished());

    first.supervisor().kill(); // the pool's tree fails; its parent restarts it
    let second = started.next().await.unwrap();
    assert!(
        first.supervisor().is_finished(),
        "the first incarnation stopped"
    );
    assert!(!second.supervisor().is_finished());
    let id = second.client().enqueue(&Sleepy).await.unwrap();
    assert_eq!(job(&store, id).await.state, JobState::Available);

    drop(app.shutdown().await);
    drop(app);
    assert!(matches!(started.next().await, Err(jobs::PoolError::Gone)));
}

#[tokio::test(start_paused = true)]
async fn a_nested_pool_past_its_intensity_escalates_to_its_parent() {
    let inner = memory();
    let store = Arc::new(FlakyStore::new(inner));
    store.fail(true);
    let spec = Pool::builder(store.clone())
        .config(PoolConfig {
            intensity: Intensity::new(3, Duration::from_secs(60)),
            restart_backoff: jobs::Backoff::constant(Duration::from_millis(100)),
            ..PoolConfig::default()
        })
        .build()
        .unwrap();
    let (pool_child, _started) = spec.child_spec();
    let app = Supervisor::builder("app")
        .intensity(Intensity::new(0, Duration::from_secs(60)))
        .child(pool_child)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut events = app.subscribe();
    let ended = tokio::time::timeout(Duration::from_secs(60), app.wait())
        .await
        .expect("the application tree gives up within a minute");
    assert!(
        ended.is_err(),
        "the failure climbed to the application tree"
    );
    let mut pool_exit = None;
    while let Ok(event) = events.try_recv() {
        if let supervisor::Event::Exited { child, reason, .. } = event {
            if &*child == jobs::POOL_SUPERVISOR {
                pool_exit = Some(reason);
            }
        }
    }
    assert!(
        matches!(pool_exit, Some(ExitReason::Escalated(_))),
        "{pool_exit:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn run_until_a_future_shuts_the_pool_down_and_releases_its_jobs() {
    let store = memory();
    let log: Log = Arc::default();
    let pool = pool_on(&store)
        .config(config(10))
        .register(SleepyWorker {
            log: log.clone(),
            since: Instant::now(),
        })
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&Sleepy).await.unwrap();
    wait_for(|| count(&store, JobState::Running), 1).await;
    let report = pool
        .run_until(tokio::time::sleep(Duration::from_secs(5)))
        .await;
    assert!(report.clean, "{report:?}");
    assert_eq!(report.released, vec![id]);
    assert!(
        report.took >= Duration::from_secs(10),
        "after the grace period"
    );
    assert_eq!(job(&store, id).await.state, JobState::Available);
}
