//! Partitioned supervisors: stable routing, per-partition children, nesting, bad input.

use std::time::Duration;

use supervisor::{
    ChildContext, ChildSpec, PartitionSupervisor, Restart, SpecError, Supervisor, SupervisorError,
};

fn idle() -> ChildSpec {
    ChildSpec::new("session", |ctx: ChildContext| async move {
        ctx.cancelled().await;
        Ok(())
    })
    .restart(Restart::Temporary)
}

#[tokio::test(start_paused = true)]
async fn routing_is_stable_and_spreads_keys_over_every_partition() {
    let a = PartitionSupervisor::builder("p")
        .partitions(4)
        .build()
        .unwrap();
    let b = PartitionSupervisor::builder("p")
        .partitions(4)
        .build()
        .unwrap();
    let (a, b) = (a.handle(), b.handle());
    let mut used = [0usize; 4];
    for n in 0..1000 {
        let key = format!("user-{n}");
        let p = a.partition_of(&key);
        assert_eq!(p, a.partition_of(&key), "same key, same partition");
        assert_eq!(
            p,
            b.partition_of(key.as_str()),
            "another handle routes it alike"
        );
        used[p] += 1;
    }
    assert!(used.iter().all(|&n| n > 150), "{used:?}");
}

#[tokio::test(start_paused = true)]
async fn children_start_in_their_keys_partition_and_terminate_through_the_handle() {
    let pool = PartitionSupervisor::builder("pool")
        .partitions(3)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(pool.partitions(), 3);
    let mut ids = Vec::new();
    for n in 0..30u32 {
        ids.push((n, pool.start_child(&n, idle()).await.unwrap()));
    }
    for i in 0..3 {
        let expected = (0..30u32).filter(|n| pool.partition_of(n) == i).count();
        let counted = pool.partition(i).unwrap().count_children().await.unwrap();
        assert_eq!(counted.active, expected, "partition {i}");
    }
    assert_eq!(pool.count_children().await.unwrap().active, 30);
    assert_eq!(pool.which_children().await.unwrap().len(), 30);
    for (_, id) in &ids[..10] {
        pool.terminate_child(*id).await.unwrap();
    }
    assert_eq!(pool.count_children().await.unwrap().active, 20);
    // an id another supervisor issued is unknown here
    let other = supervisor::DynamicSupervisor::builder("other")
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let foreign = other.start_child(idle()).await.unwrap();
    assert!(matches!(
        pool.terminate_child(foreign).await,
        Err(SupervisorError::UnknownChild { .. })
    ));
    assert!(pool.shutdown().await.is_clean());
    assert!(other.shutdown().await.is_clean());
    assert!(matches!(
        pool.start_child(&1, idle()).await,
        Err(SupervisorError::Gone { .. } | SupervisorError::ShuttingDown { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_nested_partitioned_supervisor_is_reached_through_its_spec_handle() {
    let spec = PartitionSupervisor::builder("pool")
        .partitions(2)
        .build()
        .unwrap();
    let pool = spec.handle();
    assert!(matches!(
        pool.start_child(&"k", idle()).await,
        Err(SupervisorError::Gone { .. })
    ));
    let root = Supervisor::builder("root")
        .child(ChildSpec::partitioned(&spec))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    pool.start_child(&"k", idle()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let text = root.tree().await.unwrap().to_string();
    assert!(text.contains("└─ pool [one_for_one]  running"), "{text}");
    assert!(text.contains("   ├─ 0 [dynamic]  running"), "{text}");
    assert!(text.contains("   └─ 1 [dynamic]  running"), "{text}");
    assert!(text.contains("session#1  running"), "{text}");
    assert!(root.shutdown().await.is_clean());
}

#[test]
fn zero_partitions_is_a_spec_error() {
    let err = PartitionSupervisor::builder("p")
        .partitions(0)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        SpecError::ZeroPartitions {
            supervisor: "p".into()
        }
    );
}
