//! Supervisor benchmarks, following the "Supervisor workload" of the benchmark protocol:
//!
//! - restart throughput: one_for_one, one permanent child that fails as soon as it starts,
//!   intensity 1,000,000 per second, 200,000 crash→restart cycles;
//! - dynamic start: 100,000 children started one at a time under the dynamic supervisor,
//!   memory per idle child, and the time to shut them all down;
//! - static start/terminate: 100,000 children added one at a time with `start_child` to a
//!   static supervisor, then terminated one at a time with `terminate_child` (each O(log n)).
//!
//! `cargo bench --bench supervisor` runs the criterion measurements and, first, one
//! "protocol" pass per runtime flavour that prints the figures recorded in BENCHMARKS.md
//! (including steadiness over the 200,000 cycles and bytes per idle child, which criterion
//! cannot report).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use supervisor::{
    ChildContext, ChildSpec, DynamicSupervisor, Intensity, Restart, Strategy, Supervisor,
};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// Counts live heap bytes, to measure memory per idle child.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the
// counter is a side effect that does not touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const CYCLES: u64 = 200_000;
const CHILDREN: usize = 100_000;

/// The number of dynamic children (env `SUPERVISOR_BENCH_CHILDREN`, default 100,000).
fn children() -> usize {
    std::env::var("SUPERVISOR_BENCH_CHILDREN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CHILDREN)
}

/// CPU time the calling thread has run (Linux), to report figures that do not depend on
/// how busy the shared machine is: on a current_thread runtime all the work runs on the
/// thread that calls `block_on`.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn cpu_since(start: Option<Duration>) -> Option<Duration> {
    Some(thread_cpu()?.saturating_sub(start?))
}

fn runtime(multi: bool) -> Runtime {
    let mut b = if multi {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().expect("a tokio runtime builds")
}

/// Runs `cycles` crash→restart cycles; returns the instants at which every 10% was reached
/// and the CPU time of the calling thread.
async fn restart_cycles(cycles: u64) -> (Vec<Instant>, Option<Duration>) {
    let cpu = thread_cpu();
    let starts = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let marks = Arc::new(std::sync::Mutex::new(Vec::with_capacity(11)));
    let (s, d, m) = (starts.clone(), done.clone(), marks.clone());
    let child = ChildSpec::new("crasher", move |ctx: ChildContext| {
        let n = s.fetch_add(1, Ordering::Relaxed);
        if n % (cycles / 10) == 0 {
            m.lock().expect("marks lock").push(Instant::now());
        }
        let d = d.clone();
        async move {
            if n < cycles {
                return Err("crash".into());
            }
            d.notify_one();
            ctx.cancelled().await;
            Ok(())
        }
    })
    .restart(Restart::Permanent);
    let spec = Supervisor::builder("bench")
        .strategy(Strategy::OneForOne)
        .intensity(Intensity::new(1_000_000, Duration::from_secs(1)))
        .child(child)
        .build()
        .expect("valid spec");
    let h = spec.start().await.expect("starts");
    done.notified().await;
    assert!(h.shutdown().await.is_clean());
    let marks = marks.lock().expect("marks lock").clone();
    (marks, cpu_since(cpu))
}

/// What one dynamic-start run measured.
struct DynamicRun {
    start: Duration,
    start_cpu: Option<Duration>,
    bytes: f64,
    stop: Duration,
    stop_cpu: Option<Duration>,
}

/// Starts `n` idle children one at a time, measures their memory, shuts them all down.
async fn dynamic_start(n: usize) -> DynamicRun {
    let h = DynamicSupervisor::builder("pool")
        .build()
        .expect("valid")
        .start()
        .await
        .expect("starts");
    let idle = ChildSpec::new("idle", |ctx: ChildContext| async move {
        ctx.cancelled().await;
        Ok(())
    })
    .restart(Restart::Temporary);
    tokio::task::yield_now().await;
    let before = LIVE.load(Ordering::Relaxed);
    let cpu = thread_cpu();
    let t0 = Instant::now();
    for _ in 0..n {
        h.start_child(idle.clone()).await.expect("child starts");
    }
    let start = t0.elapsed();
    let start_cpu = cpu_since(cpu);
    // let every child reach its idle await point before measuring
    tokio::task::yield_now().await;
    assert_eq!(h.count_children().await.expect("alive").active, n);
    let bytes = (LIVE.load(Ordering::Relaxed) - before) as f64 / n as f64;
    let cpu = thread_cpu();
    let t1 = Instant::now();
    let report = h.shutdown().await;
    let stop = t1.elapsed();
    let stop_cpu = cpu_since(cpu);
    assert!(report.is_clean());
    DynamicRun {
        start,
        start_cpu,
        bytes,
        stop,
        stop_cpu,
    }
}

/// What one static start/terminate run measured.
struct StaticRun {
    start: Duration,
    terminate: Duration,
}

/// Adds `n` idle children one at a time to a static supervisor, then terminates them one at
/// a time.
async fn static_start_terminate(n: usize) -> StaticRun {
    let h = Supervisor::builder("static")
        .build()
        .expect("valid")
        .start()
        .await
        .expect("starts");
    let ids: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let specs: Vec<ChildSpec> = ids
        .iter()
        .map(|id| {
            ChildSpec::new(id.as_str(), |ctx: ChildContext| async move {
                ctx.cancelled().await;
                Ok(())
            })
        })
        .collect();
    let t0 = Instant::now();
    for spec in specs {
        h.start_child(spec).await.expect("child starts");
    }
    let start = t0.elapsed();
    let t1 = Instant::now();
    for id in &ids {
        h.terminate_child(id).await.expect("child stops");
    }
    let terminate = t1.elapsed();
    assert!(h.shutdown().await.is_clean());
    StaticRun { start, terminate }
}

fn per_sec(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64()
}

fn protocol_pass(multi: bool) {
    let flavour = if multi {
        "multi_thread(2)"
    } else {
        "current_thread"
    };
    let rt = runtime(multi);
    let (marks, cpu) = rt.block_on(restart_cycles(CYCLES));
    let total = marks.last().expect("marks").duration_since(marks[0]);
    let rates: Vec<String> = marks
        .windows(2)
        .map(|w| {
            format!(
                "{:.0}",
                per_sec((CYCLES / 10) as f64, w[1].duration_since(w[0]))
            )
        })
        .collect();
    eprintln!(
        "[{flavour}] restart: {CYCLES} cycles in {:.3} s = {:.0} cycles/s; per 10% slice: {}",
        total.as_secs_f64(),
        per_sec(CYCLES as f64, total),
        rates.join(", ")
    );
    if let (false, Some(cpu)) = (multi, cpu) {
        eprintln!(
            "[{flavour}] restart: {:.0} cycles per CPU-second",
            per_sec(CYCLES as f64, cpu)
        );
    }
    let n = children();
    let run = rt.block_on(dynamic_start(n));
    eprintln!(
        "[{flavour}] dynamic: {n} starts in {:.3} s = {:.0} children/s; {:.0} bytes per idle child; shutdown of all in {:.3} s",
        run.start.as_secs_f64(),
        per_sec(n as f64, run.start),
        run.bytes,
        run.stop.as_secs_f64()
    );
    if let (false, Some(start), Some(stop)) = (multi, run.start_cpu, run.stop_cpu) {
        eprintln!(
            "[{flavour}] dynamic: {:.0} children per CPU-second; shutdown of all: {:.3} CPU-seconds",
            per_sec(n as f64, start),
            stop.as_secs_f64()
        );
    }
    let run = rt.block_on(static_start_terminate(CHILDREN));
    eprintln!(
        "[{flavour}] static: {CHILDREN} start_child in {:.3} s = {:.0}/s; {CHILDREN} terminate_child in {:.3} s = {:.0}/s",
        run.start.as_secs_f64(),
        per_sec(CHILDREN as f64, run.start),
        run.terminate.as_secs_f64(),
        per_sec(CHILDREN as f64, run.terminate)
    );
}

fn bench(c: &mut Criterion) {
    if std::env::var_os("SUPERVISOR_BENCH_SKIP_PROTOCOL").is_none() {
        protocol_pass(true);
        protocol_pass(false);
    }
    let mut g = c.benchmark_group("supervisor");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(10));
    for multi in [true, false] {
        let name = if multi {
            "multi_thread"
        } else {
            "current_thread"
        };
        let rt = runtime(multi);
        g.throughput(Throughput::Elements(CYCLES));
        g.bench_function(format!("restart_cycles_200k/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (marks, _) = rt.block_on(restart_cycles(CYCLES));
                    total += marks.last().expect("marks").duration_since(marks[0]);
                }
                total
            })
        });
        g.throughput(Throughput::Elements(CHILDREN as u64));
        g.bench_function(format!("dynamic_start_100k/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(dynamic_start(CHILDREN)).start;
                }
                total
            })
        });
        for (what, pick) in [
            (
                "start",
                (|r: &StaticRun| r.start) as fn(&StaticRun) -> Duration,
            ),
            ("terminate", |r: &StaticRun| r.terminate),
        ] {
            g.bench_function(format!("static_{what}_100k/{name}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += pick(&rt.block_on(static_start_terminate(CHILDREN)));
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
