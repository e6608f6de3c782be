//! Starting and terminating a child of a static supervisor costs O(log n): the same with
//! 20,000 children as with 200. Measured in CPU time of the one runtime thread, so the
//! figure does not depend on how busy the machine is.

use std::time::{Duration, Instant};

use supervisor::{ChildContext, ChildSpec, Supervisor, SupervisorHandle};

fn idle(id: String) -> ChildSpec {
    ChildSpec::new(id, |ctx: ChildContext| async move {
        ctx.cancelled().await;
        Ok(())
    })
}

/// CPU time the calling thread has run (Linux); wall-clock time elsewhere.
fn thread_time() -> Duration {
    let cpu = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    match cpu {
        Some(ns) => Duration::from_nanos(ns),
        None => {
            static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            T0.get_or_init(Instant::now).elapsed()
        }
    }
}

/// The cheapest of three rounds of `ops` start + terminate + delete of one more child.
async fn per_op(h: &SupervisorHandle, ops: usize) -> Duration {
    let mut best = Duration::MAX;
    for round in 0..3 {
        let t0 = thread_time();
        for i in 0..ops {
            let id = format!("extra-{round}-{i}");
            h.start_child(idle(id.clone())).await.unwrap();
            h.terminate_child(&id).await.unwrap();
            h.delete_child(&id).await.unwrap();
        }
        best = best.min((thread_time() - t0) / ops as u32);
    }
    best
}

async fn cost_with(children: usize) -> Duration {
    let h = Supervisor::builder("root")
        .children((0..children).map(|i| idle(format!("c{i}"))))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let cost = per_op(&h, 300).await;
    assert!(h.shutdown().await.is_clean());
    cost
}

#[test]
fn start_and_terminate_cost_the_same_with_many_children() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let few = rt.block_on(cost_with(200));
    let many = rt.block_on(cost_with(20_000));
    assert!(
        many < few * 4,
        "one start+terminate+delete costs {many:?} with 20,000 children, {few:?} with 200"
    );
}
