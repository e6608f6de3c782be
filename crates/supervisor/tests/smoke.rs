//! Smoke test of the basic lifecycle.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use supervisor::*;

#[tokio::test(start_paused = true)]
async fn smoke() {
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let spec = Supervisor::builder("root")
        .intensity(Intensity::new(5, Duration::from_secs(5)))
        .restart_policy(RestartPolicy::Fixed(Duration::from_secs(1)))
        .child(ChildSpec::new("a", |ctx: ChildContext| async move {
            ctx.cancelled().await;
            Ok(())
        }))
        .child(ChildSpec::new("b", move |ctx: ChildContext| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                if ctx.restarts() < 2 {
                    return Err("boom".into());
                }
                ctx.cancelled().await;
                Ok(())
            }
        }))
        .build()
        .unwrap();
    let h = spec.start().await.unwrap();
    let mut ev = h.subscribe();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    while let Ok(e) = ev.try_recv() {
        println!("{e}");
    }
    let report = h.shutdown().await;
    assert!(report.is_clean());
    assert!(h.which_children().await.is_err());
    assert!(h.wait().await.is_ok());
}
