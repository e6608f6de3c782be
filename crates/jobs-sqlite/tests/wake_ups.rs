//! Wake-ups across processes (issue 9 item 12): two stores on one file stand for two
//! processes; a job enqueued through one wakes the other's listener and pool within
//! milliseconds (`PRAGMA data_version`), not at the pool's next poll (1 s).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use jobs::store::{JobListener, Store, ANY_QUEUE};
use jobs::{Client, JobArgs, JobContext, JobError, Pool, Worker};
use jobs_sqlite::{SqliteStore, SqliteStoreOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

async fn two_stores(dir: &tempfile::TempDir) -> (Arc<SqliteStore>, Arc<SqliteStore>) {
    let path = dir.path().join("jobs.db");
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    (Arc::new(a), Arc::new(b))
}

/// The next wake-up within `within`, if any.
async fn woken(listener: &mut Box<dyn JobListener>, within: Duration) -> Option<String> {
    tokio::time::timeout(within, listener.next())
        .await
        .ok()
        .map(|next| next.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_stores_insert_wakes_the_listener_and_its_own_writes_do_not_wake_it_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_stores(&dir).await;
    let mut listener = a.listen().await.unwrap().expect("sqlite has a listener");
    // Let the poll take its first reading.
    assert_eq!(woken(&mut listener, Duration::from_millis(50)).await, None);

    let sent = Instant::now();
    insert(&*b, vec![job("emails", 1)], T0).await;
    assert_eq!(
        woken(&mut listener, Duration::from_secs(1))
            .await
            .as_deref(),
        Some(ANY_QUEUE)
    );
    assert!(
        sent.elapsed() < Duration::from_millis(50),
        "heard within {:?}",
        sent.elapsed()
    );

    // This store's own writes are heard once, in-process, by name.
    insert(&*a, vec![job("sms", 2)], T0).await;
    assert_eq!(
        woken(&mut listener, Duration::from_secs(1))
            .await
            .as_deref(),
        Some("sms")
    );
    claim(&*a, "sms", 10, T0).await;
    assert_eq!(woken(&mut listener, Duration::from_millis(100)).await, None);

    // Another store's writes that leave no job available (a claim of the last one), and
    // an empty claim (it commits nothing), wake no one.
    claim(&*b, "emails", 10, T0).await;
    claim(&*b, "emails", 10, T0).await;
    assert_eq!(woken(&mut listener, Duration::from_millis(100)).await, None);

    b.close().await;
    a.close().await;
    assert!(listener.next().await.is_err(), "the listener ends on close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turned_off_the_listener_hears_only_its_own_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let a = SqliteStoreOptions::new()
        .wake_poll_interval(None)
        .open(&path)
        .await
        .unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    let mut listener = a.listen().await.unwrap().expect("sqlite has a listener");
    insert(&b, vec![job("emails", 1)], T0).await;
    assert_eq!(woken(&mut listener, Duration::from_millis(200)).await, None);
}

#[derive(Serialize, Deserialize)]
struct Ping(u64);
impl JobArgs for Ping {
    const KIND: &'static str = "ping";
}

struct Pinged(mpsc::UnboundedSender<(u64, Instant)>);
impl Worker for Pinged {
    type Args = Ping;
    async fn perform(&self, _ctx: JobContext, Ping(n): Ping) -> Result<(), JobError> {
        let _ = self.0.send((n, Instant::now()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_picks_up_jobs_enqueued_through_another_store_within_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_stores(&dir).await;
    let (started, mut starts) = mpsc::unbounded_channel();
    // The pool polls once a second (the default): only a wake-up explains a faster pickup.
    let pool = Pool::builder(a.clone() as Arc<dyn Store>)
        .register(Pinged(started))
        .start()
        .await
        .unwrap();
    let other = Client::new(b.clone() as Arc<dyn Store>);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut latencies = Vec::new();
    for n in 0..20 {
        let sent = Instant::now();
        other.enqueue(&Ping(n)).await.unwrap();
        let (got, at) = tokio::time::timeout(Duration::from_secs(5), starts.recv())
            .await
            .expect("picked up")
            .unwrap();
        assert_eq!(got, n);
        latencies.push(at - sent);
        tokio::time::sleep(Duration::from_millis(20 + 7 * (n % 5))).await;
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < Duration::from_millis(50),
        "median pickup {median:?}: {latencies:?}"
    );
    assert!(
        latencies[latencies.len() - 1] < Duration::from_millis(500),
        "never a poll's wait: {latencies:?}"
    );
    assert!(pool.shutdown().await.clean);
}
