//! A child that blocks its thread cannot be aborted: shutdown still ends at its bound and
//! reports it. Needs real threads, so it runs on a multi-thread runtime with short real
//! bounds (it waits on the supervisor's own timers, never sleeps itself).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use supervisor::{ChildContext, ChildSpec, DynamicSupervisor, Shutdown, Supervisor};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Blocks its worker thread (never yields) until `release` is set.
fn blocker(release: Arc<AtomicBool>) -> ChildSpec {
    ChildSpec::new("blocker", move |_ctx: ChildContext| {
        let release = release.clone();
        async move {
            while !release.load(Ordering::SeqCst) {
                std::thread::sleep(ms(5));
            }
            Ok(())
        }
    })
    .shutdown(Shutdown::Timeout(ms(50)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_completes_at_its_bound_and_names_the_blocked_child() {
    let release = Arc::new(AtomicBool::new(false));
    let inner = Supervisor::builder("inner")
        .abort_grace(ms(50))
        .child(blocker(release.clone()))
        .build()
        .unwrap();
    let h = Supervisor::builder("root")
        .abort_grace(ms(50))
        .child(ChildSpec::supervisor(inner))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    let report = h.shutdown().await;
    let took = t0.elapsed();
    release.store(true, Ordering::SeqCst);
    assert!(!report.is_clean());
    assert_eq!(report.not_stopped(), ["root/inner/blocker"]);
    assert!(took >= ms(100) && took < ms(2000), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_supervisor_reports_its_blocked_child_too() {
    let release = Arc::new(AtomicBool::new(false));
    let h = DynamicSupervisor::builder("pool")
        .abort_grace(ms(50))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let id = h.start_child(blocker(release.clone())).await.unwrap();
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    let report = h.shutdown().await;
    let took = t0.elapsed();
    release.store(true, Ordering::SeqCst);
    assert_eq!(report.not_stopped(), [format!("pool/blocker{id}")]);
    assert!(took >= ms(100) && took < ms(2000), "{took:?}");
}
