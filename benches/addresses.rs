//! Issue 15 benchmarks: stable addresses, the registry, partitioned supervisors.
//!
//! - `send_round`: 10,000 messages sent one after the other to a consumer task, which
//!   receives them; a bare tokio `mpsc` channel (capacity 1024) and a stable address (a
//!   supervised child's mailbox of the same capacity) side by side, on a `current_thread`
//!   runtime (one core: the figure is the channel's own cost, not cross-core wake-ups).
//! - `call_round`: 10,000 request/response rounds: a bare `mpsc` + `oneshot` pair, the
//!   same under `tokio::time::timeout` (what `call` does), and `Address::call`.
//! - `registry_lookup_100k`: one look-up among 100,000 registered addresses (string keys,
//!   the address cloned): `hot`, keys from a set of 1,000 (the working set in cache), and
//!   `cold`, a walk over all 100,000 keys (each look-up misses the CPU caches).
//! - `partitioned_starts`: 40,000 idle children started by 4 concurrent starter tasks
//!   through a `PartitionSupervisor` with 1 and 2 partitions, on a `multi_thread` runtime
//!   with 2 workers; timed until every partition has taken in its children. `ready`: the
//!   same with children that signal readiness, which the partition's own task starts
//!   (the supervisor task is then the bottleneck partitions spread).
//! - `partitioned_restarts`: 100,000 crash→restart cycles of 8 children spread over 1 and
//!   2 partitions (each child fails as soon as it starts, 12,500 times), same runtime.
//!
//! The single-threaded benchmarks (`send_round`, `call_round`, `registry_lookup_100k`)
//! report the CPU time of the thread that runs them (`/proc/thread-self/schedstat`), not
//! wall time: on the shared machine the wall clock mostly measures other processes. Each
//! sample runs long enough (hundreds of ms) that the counter's tick granularity is noise.
//!
//! `cargo bench --bench addresses`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use supervisor::{
    Address, ChildContext, ChildSpec, Inbox, Keys, PartitionSupervisor, Registry, ReplyTo, Restart,
    Supervisor,
};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

/// CPU time the calling thread has run (Linux); on a `current_thread` runtime all the work
/// runs on the thread that calls `block_on`.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// The CPU time `iters` runs of `f` take on this thread.
fn cpu_of(iters: u64, mut f: impl FnMut()) -> Duration {
    let t0 = thread_cpu();
    for _ in 0..iters {
        f();
    }
    thread_cpu().saturating_sub(t0)
}

const MESSAGES: u64 = 10_000;
const CAPACITY: usize = 1024;
const ENTRIES: usize = 100_000;
const STARTS: u64 = 40_000;
const STARTERS: u64 = 4;

fn runtime(workers: Option<usize>) -> Runtime {
    let mut b = match workers {
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_current_thread(),
    };
    b.enable_all().build().expect("a tokio runtime")
}

/// Sends `n` messages through a bare channel to a consumer task; the time until it has
/// received the last one.
async fn bare_send(n: u64) -> Duration {
    let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
    let consumer = tokio::spawn(async move {
        let mut sum = 0;
        while let Some(v) = rx.recv().await {
            sum += v;
        }
        sum
    });
    let t0 = Instant::now();
    for i in 0..n {
        tx.send(i).await.expect("the consumer runs");
    }
    drop(tx);
    black_box(consumer.await.expect("the consumer ends"));
    t0.elapsed()
}

/// A supervised consumer: sums what it receives, reports the sum on `None`... via a
/// `ReplyTo` message at the end.
enum Msg {
    Value(u64),
    Done(ReplyTo<u64>),
}

fn summer() -> (ChildSpec, Address<Msg>) {
    ChildSpec::with_mailbox(
        "summer",
        CAPACITY,
        |_ctx: ChildContext, mut inbox: Inbox<Msg>| async move {
            let mut sum = 0;
            while let Some(msg) = inbox.recv().await {
                match msg {
                    Msg::Value(v) => sum += v,
                    Msg::Done(r) => {
                        let _ = r.send(sum);
                        sum = 0;
                    }
                }
            }
            Ok(())
        },
    )
    .expect("a valid mailbox")
}

/// Sends `n` messages to a supervised child's address; the time until it has received
/// the last one (its answer to the closing `Done`).
async fn address_send(addr: &Address<Msg>, n: u64) -> Duration {
    let t0 = Instant::now();
    for i in 0..n {
        addr.send(Msg::Value(i)).await.expect("the child runs");
    }
    let sum = addr.call(Msg::Done, Duration::from_secs(60)).await;
    black_box(sum.expect("the child answers"));
    t0.elapsed()
}

/// `n` request/response rounds over a bare channel and oneshots.
async fn bare_call(n: u64, timeout: Option<Duration>) -> Duration {
    let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(CAPACITY);
    tokio::spawn(async move {
        while let Some((v, r)) = rx.recv().await {
            let _ = r.send(v + 1);
        }
    });
    let t0 = Instant::now();
    for i in 0..n {
        let (rtx, rrx) = oneshot::channel();
        let round = async {
            tx.send((i, rtx)).await.expect("the server runs");
            rrx.await.expect("an answer")
        };
        match timeout {
            Some(t) => black_box(tokio::time::timeout(t, round).await.expect("in time")),
            None => black_box(round.await),
        };
    }
    t0.elapsed()
}

enum Req {
    Inc(u64, ReplyTo<u64>),
}

fn server() -> (ChildSpec, Address<Req>) {
    ChildSpec::with_mailbox(
        "server",
        CAPACITY,
        |_ctx: ChildContext, mut inbox: Inbox<Req>| async move {
            while let Some(Req::Inc(v, r)) = inbox.recv().await {
                let _ = r.send(v + 1);
            }
            Ok(())
        },
    )
    .expect("a valid mailbox")
}

async fn address_call(addr: &Address<Req>, n: u64) -> Duration {
    let t0 = Instant::now();
    for i in 0..n {
        let answer = addr.call(|r| Req::Inc(i, r), Duration::from_secs(60)).await;
        black_box(answer.expect("an answer"));
    }
    t0.elapsed()
}

fn idle(ready: bool) -> ChildSpec {
    let spec = ChildSpec::new("idle", |ctx: ChildContext| async move {
        ctx.ready();
        ctx.cancelled().await;
        Ok(())
    })
    .restart(Restart::Temporary);
    if ready {
        spec.wait_for_ready()
    } else {
        spec
    }
}

/// Starts `STARTS` children from `STARTERS` concurrent tasks through `partitions`
/// partitions; the time until every partition has taken them all in.
async fn partitioned_starts(partitions: usize, ready: bool) -> Duration {
    let pool = PartitionSupervisor::builder("pool")
        .partitions(partitions)
        .build()
        .expect("a valid spec")
        .start()
        .await
        .expect("started");
    let t0 = Instant::now();
    let starters: Vec<_> = (0..STARTERS)
        .map(|s| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..STARTS / STARTERS {
                    let key = s * STARTS + i;
                    pool.start_child(&key, idle(ready)).await.expect("started");
                }
            })
        })
        .collect();
    for s in starters {
        s.await.expect("the starter ends");
    }
    // each partition answers after the children queued before this call are taken in
    let counted = pool.count_children().await.expect("running").active;
    let elapsed = t0.elapsed();
    assert_eq!(counted as u64, STARTS);
    let _ = pool.shutdown().await;
    elapsed
}

const CYCLES: u32 = 100_000;
const CRASHERS: u32 = 8;

/// `CYCLES` crash→restart cycles of `CRASHERS` children spread over `partitions`
/// partitions; the time until the last child has run its last cycle.
async fn partitioned_restarts(partitions: usize) -> Duration {
    let pool = PartitionSupervisor::builder("pool")
        .partitions(partitions)
        .intensity(supervisor::Intensity::new(
            1_000_000,
            Duration::from_secs(1),
        ))
        .build()
        .expect("a valid spec")
        .start()
        .await
        .expect("started");
    let done = Arc::new(tokio::sync::Semaphore::new(0));
    let per_child = CYCLES / CRASHERS;
    let t0 = Instant::now();
    for c in 0..CRASHERS {
        let done = done.clone();
        let crasher = ChildSpec::new("crasher", move |ctx: ChildContext| {
            let done = done.clone();
            async move {
                if ctx.restarts() < per_child {
                    return Err("crash".into());
                }
                done.add_permits(1);
                ctx.cancelled().await;
                Ok(())
            }
        });
        pool.start_child(&c, crasher).await.expect("started");
    }
    let all = done.acquire_many(CRASHERS).await.expect("open");
    let elapsed = t0.elapsed();
    drop(all);
    let _ = pool.shutdown().await;
    elapsed
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("addresses");
    g.sample_size(20);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(8));

    let rt = runtime(None);
    let (spec, addr) = summer();
    let (spec2, server_addr) = server();
    let root = rt.block_on(async {
        Supervisor::builder("bench")
            .child(spec)
            .child(spec2)
            .build()
            .expect("a valid spec")
            .start()
            .await
            .expect("started")
    });
    g.throughput(Throughput::Elements(MESSAGES));
    g.bench_function("send_round/bare_mpsc", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(bare_send(MESSAGES))).sum())
    });
    g.bench_function("send_round/address", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(address_send(&addr, MESSAGES)))
                .sum()
        })
    });
    g.bench_function("call_round/bare_mpsc_oneshot", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(bare_call(MESSAGES, None)))
                .sum()
        })
    });
    g.bench_function("call_round/bare_mpsc_oneshot_timeout", |b| {
        let t = Some(Duration::from_secs(60));
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(bare_call(MESSAGES, t)))
                .sum()
        })
    });
    g.bench_function("call_round/address_call", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(address_call(&server_addr, MESSAGES)))
                .sum()
        })
    });
    let _ = rt.block_on(root.shutdown());

    // 100,000 registered addresses (their specs kept alive, or the entries would go)
    let registry: Registry<String, u8> = Registry::new(Keys::Unique);
    let mut keep = Vec::with_capacity(ENTRIES);
    let keys: Vec<String> = (0..ENTRIES).map(|n| format!("child-{n}")).collect();
    for key in &keys {
        let (spec, addr) =
            ChildSpec::with_mailbox(key.clone(), 1, |_c: ChildContext, _i: Inbox<u8>| async {
                Ok(())
            })
            .expect("a valid mailbox");
        registry.register(key.clone(), &addr).expect("a fresh key");
        keep.push(spec);
    }
    // a fixed pseudo-random walk over the keys, so the look-ups miss the cache as a real
    // look-up would
    let order: Vec<usize> = (0..ENTRIES).map(|i| (i * 7_919 + 13) % ENTRIES).collect();
    g.throughput(Throughput::Elements(1));
    g.sample_size(50);
    for (name, span) in [("hot", 1_000), ("cold", ENTRIES)] {
        let mut next = 0;
        g.bench_function(format!("registry_lookup_100k/{name}"), |b| {
            b.iter_custom(|iters| {
                cpu_of(iters, || {
                    next = (next + 1) % span;
                    black_box(registry.lookup(keys[order[next]].as_str()));
                })
            })
        });
    }
    drop(keep);

    let rt = runtime(Some(2));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(STARTS));
    for ready in [false, true] {
        for partitions in [1, 2] {
            let name = if ready { "ready/" } else { "" };
            g.bench_function(format!("partitioned_starts_40k/{name}{partitions}"), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| rt.block_on(partitioned_starts(partitions, ready)))
                        .sum()
                })
            });
        }
    }
    g.throughput(Throughput::Elements(u64::from(CYCLES)));
    for partitions in [1, 2] {
        g.bench_function(format!("partitioned_restarts_100k/{partitions}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| rt.block_on(partitioned_restarts(partitions)))
                    .sum()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
