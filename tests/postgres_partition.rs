//! A worker pool cut off from PostgreSQL by the network, through an in-process TCP proxy
//! that can black-hole traffic or go down (cut every connection and refuse new ones: a
//! database restart). The pool must notice within a bounded time, stop the runs whose leases
//! it can no longer renew, and resume once the network is back.
//!
//! The black hole is a partition that loses the server's answers and outlasts the server's
//! patience, with no RST: while it lasts, requests still reach the server (it acknowledged
//! them) but no answer comes back, and nothing is closed; once it ends, the connections that
//! lived through it are dead on the server's side: the server never speaks on them again,
//! and the first byte the client sends on one is answered by closing it (the RST it would
//! get). A client that only waits for an answer on such a connection waits forever unless it
//! bounds its calls.
//!
//! Needs `JOBS_TEST_DATABASE_URL` (skipped with a notice otherwise, failed under
//! `JOBS_TEST_REQUIRE_POSTGRES=1`). The database must listen on TCP. Wall-clock waits are
//! bounded polls of a real database.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobs::store::Store;
use jobs::{
    Client, EnqueueOptions, JobArgs, JobContext, JobError, JobState, Pool, PoolConfig, Worker,
};
use jobs_postgres::{PostgresOptions, PostgresStore};
use jobs_postgres_testkit as testkit;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// Forwards both ways.
    Up,
    /// Forwards nothing, closes nothing (see the module docs).
    BlackHole,
    /// Cuts every connection and refuses new ones.
    Down,
}

/// A TCP proxy in front of PostgreSQL.
struct Proxy {
    addr: SocketAddr,
    link: watch::Sender<Link>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (link, _) = watch::channel(Link::Up);
        let watcher = link.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *watcher.borrow() == Link::Down {
                    drop(client); // refused
                    continue;
                }
                tokio::spawn(serve(client, upstream, watcher.subscribe()));
            }
        });
        Proxy { addr, link }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// Pumps one client connection, following the link's state.
async fn serve(mut client: TcpStream, upstream: SocketAddr, mut link: watch::Receiver<Link>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut to_server, mut to_client) = (vec![0_u8; 64 * 1024], vec![0_u8; 64 * 1024]);
    // Lived through a black hole: dead on the server's side once it ends.
    let mut dead = false;
    loop {
        let state = *link.borrow_and_update();
        dead |= state == Link::BlackHole;
        tokio::select! {
            // Requests still arrive during the black hole (the server has acknowledged them);
            // after it, the first byte on a dead connection closes it.
            read = client.read(&mut to_server), if state != Link::Down => {
                let Ok(read @ 1..) = read else { return };
                let refused = dead && state == Link::Up;
                if refused || server.write_all(&to_server[..read]).await.is_err() {
                    return;
                }
            }
            // Answers never come back during the black hole, nor after it on its survivors.
            read = server.read(&mut to_client), if state == Link::Up && !dead => {
                let Ok(read @ 1..) = read else { return };
                if client.write_all(&to_client[..read]).await.is_err() {
                    return;
                }
            }
            changed = link.changed() => {
                if changed.is_err() || *link.borrow() == Link::Down {
                    return;
                }
            }
        }
    }
}

/// The database's own address.
fn upstream(options: &PostgresOptions) -> SocketAddr {
    let connect = options.connect_options();
    std::net::ToSocketAddrs::to_socket_addrs(&(connect.get_host(), connect.get_port()))
        .expect("the database host resolves")
        .next()
        .expect("an address")
}

#[derive(Serialize, Deserialize)]
struct Step;
impl JobArgs for Step {
    const KIND: &'static str = "step";
}

/// Short jobs, counted.
struct StepWorker(Arc<AtomicUsize>);
impl Worker for StepWorker {
    type Args = Step;
    async fn perform(&self, _ctx: JobContext, _args: Step) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Long;
impl JobArgs for Long {
    const KIND: &'static str = "long";
}

/// A long job that notes the time of each of its steps (its side effects). Only its first
/// run is long: once rescued, it runs alone in quarantine (as a suspect), and a long run
/// there would hold every other claim back.
struct LongWorker(Arc<Mutex<Vec<Instant>>>, AtomicBool);
impl Worker for LongWorker {
    type Args = Long;
    async fn perform(&self, ctx: JobContext, _args: Long) -> Result<(), JobError> {
        if self.1.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        for _ in 0..600 {
            if ctx.is_shutting_down() {
                return Err(JobError::Interrupted);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.0.lock().unwrap().push(Instant::now());
        }
        Ok(())
    }
}

/// Waits (polling a real database) until `probe` holds, at most `within`; how long it took.
async fn within<F, Fut>(within: Duration, probe: F) -> Option<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if probe().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A fresh schema, a proxy in front of the database, and a store reaching it through the
/// proxy with short bounds (statement and acquire timeouts of 1 s: calls abandoned after 3 s)
/// and a small pool (fewer connections than the calls a partition catches in flight, so a
/// connection abandoned mid-call that kept its slot would wedge the pool).
async fn setup(test: &str) -> Option<(Proxy, PostgresStore, Arc<dyn Store>)> {
    let url = testkit::database_url()?;
    let admin = testkit::test_pool(&url).await;
    let schema = testkit::test_schema(test);
    testkit::fresh_schema(&admin, &schema).await;
    let direct: Arc<dyn Store> = Arc::new(
        PostgresStore::open(admin, schema.clone())
            .await
            .expect("opening the store directly"),
    );
    let direct_options = PostgresOptions::new(&url).unwrap();
    let proxy = Proxy::start(upstream(&direct_options)).await;
    let connect = direct_options
        .connect_options()
        .clone()
        .host("127.0.0.1")
        .port(proxy.addr.port());
    let options = PostgresOptions::from_connect_options(connect)
        .schema(schema)
        .statement_timeout(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(1))
        .max_connections(3);
    let store = PostgresStore::connect(&options).await.unwrap();
    Some((proxy, store, direct))
}

async fn completed(store: &Arc<dyn Store>) -> u64 {
    store
        .queue_stats()
        .await
        .unwrap()
        .iter()
        .map(|queue| queue.count(JobState::Completed))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_is_noticed_leases_stop_side_effects_and_work_resumes() {
    let Some((proxy, store, direct)) = setup("partition").await else {
        return;
    };
    let steps = Arc::new(AtomicUsize::new(0));
    let long_steps = Arc::new(Mutex::new(Vec::new()));
    let lease = Duration::from_secs(3);
    let config = PoolConfig {
        lease_ttl: lease,
        heartbeat_interval: Duration::from_secs(1),
        rescue_interval: Duration::from_secs(1),
        ..PoolConfig::default()
    };
    let pool = Pool::builder(Arc::new(store.clone()))
        .config(config)
        .queue("default", 10)
        .register(StepWorker(steps.clone()))
        .register(LongWorker(long_steps.clone(), AtomicBool::new(false)))
        .start()
        .await
        .unwrap();
    let client = Client::new(direct.clone());
    client.enqueue(&Long).await.unwrap();
    client
        .enqueue_many((0..200).map(|_| Step), EnqueueOptions::new())
        .await
        .unwrap();
    let started = within(Duration::from_secs(20), || async {
        !long_steps.lock().unwrap().is_empty() && completed(&direct).await >= 200
    })
    .await;
    assert!(started.is_some(), "the pool works through the proxy");

    proxy.set(Link::BlackHole);
    let cut = Instant::now();
    client
        .enqueue_many((0..200).map(|_| Step), EnqueueOptions::new())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await; // two leases' worth of silence
    let last_step = *long_steps.lock().unwrap().last().unwrap();
    assert!(
        last_step <= cut + lease + Duration::from_millis(500),
        "the long job stopped its side effects once its lease ran out: last step {:?} after the cut",
        last_step - cut
    );
    assert_eq!(
        completed(&direct).await,
        200,
        "nothing completed while cut off"
    );

    proxy.set(Link::Up);
    let resumed = within(Duration::from_secs(20), || async {
        completed(&direct).await >= 400
    })
    .await;
    assert!(
        resumed.is_some(),
        "the pool resumed after the network came back (steps run: {})",
        steps.load(Ordering::SeqCst)
    );
    let resumed = resumed.unwrap();
    assert!(
        resumed < Duration::from_secs(10),
        "noticed and resumed within bounds: {resumed:?}"
    );
    assert!(pool.shutdown().await.clean);
}

/// How long an outage lasts (`JOBS_TEST_OUTAGE_SECS`, default 5; BENCHMARKS.md uses 30).
fn outage() -> Duration {
    let secs = std::env::var("JOBS_TEST_OUTAGE_SECS")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_resumes_within_about_a_second_of_an_outage_ending() {
    let Some((proxy, store, direct)) = setup("outage").await else {
        return;
    };
    let steps = Arc::new(AtomicUsize::new(0));
    let pool = Pool::builder(Arc::new(store.clone()))
        .register(StepWorker(steps.clone()))
        .start()
        .await
        .unwrap();
    let client = Client::new(direct.clone());
    client.enqueue(&Step).await.unwrap();
    let warm = within(Duration::from_secs(20), || async {
        completed(&direct).await >= 1
    })
    .await;
    assert!(warm.is_some(), "the pool works through the proxy");

    proxy.set(Link::Down);
    let outage = outage();
    tokio::time::sleep(outage).await;
    client
        .enqueue_many((0..100).map(|_| Step), EnqueueOptions::new())
        .await
        .unwrap();
    proxy.set(Link::Up);
    let resumed = within(Duration::from_secs(60), || async {
        completed(&direct).await >= 2
    })
    .await
    .expect("work resumed after the outage");
    println!("outage of {outage:?}: the first job completed {resumed:?} after the database was reachable again");
    assert!(
        resumed < Duration::from_millis(2_500),
        "work resumed {resumed:?} after the outage ended"
    );
    assert!(pool.shutdown().await.clean);
}
