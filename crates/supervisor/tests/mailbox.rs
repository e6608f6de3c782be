//! Stable addresses: delivery across delayed restarts, backpressure, calls, final stops.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor::{
    Address, AddressStatus, CallError, ChildContext, ChildSpec, DynamicSupervisor, HandBack, Inbox,
    ReplyTo, Restart, RestartPolicy, SendError, SpecError, Supervisor, SupervisorHandle,
    TrySendError,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

enum Msg {
    Push(u32),
    Crash,
    Get(ReplyTo<Vec<u32>>),
}

/// (incarnation, value) pairs every incarnation received.
type Log = Arc<Mutex<Vec<(u32, u32)>>>;

/// A child that logs pushes, crashes on `Crash`, answers `Get` with what it logged.
fn logger(capacity: usize, log: &Log) -> (ChildSpec, Address<Msg>) {
    let log = log.clone();
    ChildSpec::with_mailbox(
        "logger",
        capacity,
        move |ctx: ChildContext, mut inbox: Inbox<Msg>| {
            let log = log.clone();
            async move {
                while let Some(msg) = inbox.recv().await {
                    match msg {
                        Msg::Push(v) => log.lock().unwrap().push((ctx.restarts(), v)),
                        Msg::Crash => return Err("crash requested".into()),
                        Msg::Get(reply) => {
                            let seen = log.lock().unwrap().iter().map(|&(_, v)| v).collect();
                            let _ = reply.send(seen);
                        }
                    }
                }
                Ok(())
            }
        },
    )
    .unwrap()
}

async fn start(spec: ChildSpec, delay: Duration) -> SupervisorHandle {
    Supervisor::builder("root")
        .restart_policy(RestartPolicy::Fixed(delay))
        .child(spec)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn messages_sent_during_a_delayed_restart_reach_the_next_incarnation_in_order() {
    let log = Log::default();
    let (spec, addr) = logger(8, &log);
    let h = start(spec, secs(20)).await;
    addr.send(Msg::Push(0)).await.unwrap();
    addr.send(Msg::Crash).await.unwrap();
    settle().await;
    assert_eq!(addr.status(), AddressStatus::Restarting);
    for v in 1..=5 {
        addr.send(Msg::Push(v)).await.unwrap(); // buffered, no wait
    }
    tokio::time::sleep(secs(19)).await;
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "nothing delivered before the restart"
    );
    tokio::time::sleep(secs(2)).await;
    assert_eq!(addr.status(), AddressStatus::Running);
    let got = log.lock().unwrap().clone();
    assert_eq!(got, [(0, 0), (1, 1), (1, 2), (1, 3), (1, 4), (1, 5)]);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_applies_backpressure_and_try_send_says_why() {
    let log = Log::default();
    let (spec, addr) = logger(2, &log);
    let h = start(spec, secs(10)).await;
    addr.send(Msg::Crash).await.unwrap();
    settle().await;
    assert!(matches!(
        addr.try_send(Msg::Push(9)),
        Err(TrySendError::Restarting { .. })
    ));
    addr.send(Msg::Push(1)).await.unwrap();
    addr.send(Msg::Push(2)).await.unwrap();
    // the buffer is full: the third send waits for the next incarnation to make room
    let waiting = tokio::spawn({
        let addr = addr.clone();
        async move { addr.send(Msg::Push(3)).await.is_ok() }
    });
    tokio::time::sleep(secs(5)).await;
    assert!(
        !waiting.is_finished(),
        "send must wait while the buffer is full"
    );
    tokio::time::sleep(secs(6)).await;
    assert!(waiting.await.unwrap());
    settle().await;
    let values: Vec<u32> = log.lock().unwrap().iter().map(|&(_, v)| v).collect();
    assert_eq!(values, [1, 2, 3]);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn try_send_says_full_while_running() {
    let (spec, addr) = ChildSpec::with_mailbox(
        "slow",
        1,
        |ctx: ChildContext, inbox: Inbox<u32>| async move {
            let _held = inbox; // never receives
            ctx.cancelled().await;
            Ok(())
        },
    )
    .unwrap();
    let h = start(spec, secs(1)).await;
    settle().await;
    addr.try_send(1).unwrap();
    match addr.try_send(2) {
        Err(TrySendError::Full { message, .. }) => assert_eq!(message, 2),
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn calls_time_out_cleanly_while_the_child_restarts_past_the_timeout() {
    let log = Log::default();
    let (spec, addr) = logger(8, &log);
    let h = start(spec, secs(10)).await;
    addr.send(Msg::Push(7)).await.unwrap();
    addr.send(Msg::Crash).await.unwrap();
    settle().await;
    let err = addr.call(Msg::Get, secs(1)).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { timeout, .. } if timeout == secs(1)));
    tokio::time::sleep(secs(10)).await;
    // the timed-out request was answered into the void; a new call works
    assert_eq!(addr.call(Msg::Get, secs(1)).await.unwrap(), [7]);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn addresses_of_temporary_children_fail_after_the_child_ends() {
    let (spec, addr) = ChildSpec::with_mailbox(
        "once",
        4,
        |_ctx: ChildContext, mut inbox: Inbox<u32>| async move {
            inbox.recv().await;
            Ok(())
        },
    )
    .unwrap();
    let h = start(spec.restart(Restart::Temporary), secs(1)).await;
    addr.send(1).await.unwrap();
    settle().await;
    assert_eq!(addr.status(), AddressStatus::Stopped);
    assert!(matches!(addr.send(2).await, Err(SendError::Stopped { .. })));
    assert!(matches!(
        addr.try_send(3),
        Err(TrySendError::Stopped { .. })
    ));
    let err = addr.call(|_r: ReplyTo<()>| 4, secs(1)).await.unwrap_err();
    assert!(matches!(err, CallError::Stopped { .. }));
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_sender_waiting_for_room_is_released_when_the_child_is_terminated() {
    let (spec, addr) = ChildSpec::with_mailbox(
        "deaf",
        1,
        |ctx: ChildContext, inbox: Inbox<u32>| async move {
            let _held = inbox;
            ctx.cancelled().await;
            Ok(())
        },
    )
    .unwrap();
    let h = start(spec, secs(1)).await;
    settle().await;
    addr.send(1).await.unwrap();
    let blocked = tokio::spawn({
        let addr = addr.clone();
        async move { addr.send(2).await.map_err(SendError::into_message) }
    });
    settle().await;
    assert!(!blocked.is_finished());
    h.terminate_child("deaf").await.unwrap();
    assert_eq!(blocked.await.unwrap(), Err(2));
    assert_eq!(addr.status(), AddressStatus::Stopped);
    // a restart by hand revives the same address
    h.restart_child("deaf").await.unwrap();
    settle().await;
    assert_eq!(addr.status(), AddressStatus::Running);
    addr.send(3).await.unwrap();
    assert!(h.shutdown().await.is_clean());
    assert!(matches!(addr.send(4).await, Err(SendError::Stopped { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_request_taken_by_a_crashing_incarnation_is_dropped_unless_handed_back() {
    // without opting in: the caller learns the request was dropped
    let log = Log::default();
    let (spec, addr) = ChildSpec::with_mailbox(
        "lossy",
        4,
        |_ctx: ChildContext, mut inbox: Inbox<ReplyTo<u32>>| async move {
            let _taken = inbox.recv().await;
            Err("crashed while handling".into())
        },
    )
    .unwrap();
    drop(log);
    let h = start(spec, secs(1)).await;
    let err = addr.call(|r| r, secs(5)).await.unwrap_err();
    assert!(matches!(err, CallError::Dropped { .. }), "{err:?}");
    assert!(h.shutdown().await.is_clean());

    // opting in: the next incarnation gets the unfinished request first and answers it
    struct Job(ReplyTo<u32>);
    impl HandBack for Job {}
    let (spec, addr) = ChildSpec::with_mailbox(
        "careful",
        4,
        |ctx: ChildContext, mut inbox: Inbox<Job>| async move {
            while let Some(job) = inbox.take().await {
                if ctx.restarts() == 0 {
                    panic!("first incarnation crashes mid-job");
                }
                let _ = job.done().0.send(ctx.restarts());
            }
            Ok(())
        },
    )
    .unwrap();
    let h = start(spec, secs(3)).await;
    assert_eq!(addr.call(Job, secs(5)).await.unwrap(), 1);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn bad_input_gets_typed_errors() {
    let zero = ChildSpec::with_mailbox("z", 0, |_c: ChildContext, _i: Inbox<()>| async { Ok(()) });
    assert!(matches!(zero, Err(SpecError::ZeroCapacity { ref child }) if child == "z"));
    let empty = ChildSpec::with_mailbox("", 1, |_c: ChildContext, _i: Inbox<()>| async { Ok(()) });
    assert!(matches!(empty, Err(SpecError::EmptyId { .. })));
    // a spec dropped without ever starting: its address is stopped, not hanging
    let (spec, addr) =
        ChildSpec::with_mailbox("never", 1, |_c: ChildContext, _i: Inbox<u8>| async {
            Ok(())
        })
        .unwrap();
    addr.send(1).await.unwrap();
    drop(spec);
    assert!(matches!(addr.send(2).await, Err(SendError::Stopped { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_childs_address_stops_with_it() {
    let pool = DynamicSupervisor::builder("pool")
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let (spec, addr) = ChildSpec::with_mailbox(
        "echo",
        4,
        |_ctx: ChildContext, mut inbox: Inbox<ReplyTo<u32>>| async move {
            while let Some(r) = inbox.recv().await {
                let _ = r.send(42);
            }
            Ok(())
        },
    )
    .unwrap();
    let id = pool.start_child(spec).await.unwrap();
    assert_eq!(addr.call(|r| r, secs(1)).await.unwrap(), 42);
    pool.terminate_child(id).await.unwrap();
    assert_eq!(addr.status(), AddressStatus::Stopped);
    assert!(pool.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_message_held_by_an_aborted_incarnation_is_handed_back_to_the_next() {
    struct Job(u32, ReplyTo<(u32, u32)>);
    impl HandBack for Job {}
    // the first incarnation takes the job and hangs; a sibling's crash restarts both
    // (one_for_all), and the brutal kill aborts it while it holds the job
    let (spec, addr) = ChildSpec::with_mailbox(
        "worker",
        4,
        |ctx: ChildContext, mut inbox: Inbox<Job>| async move {
            while let Some(job) = inbox.take().await {
                if ctx.restarts() == 0 {
                    std::future::pending::<()>().await;
                }
                let Job(n, reply) = job.done();
                let _ = reply.send((n, ctx.restarts()));
            }
            Ok(())
        },
    )
    .unwrap();
    let crash = Arc::new(tokio::sync::Notify::new());
    let trigger = crash.clone();
    let sibling = ChildSpec::new("sibling", move |_ctx: ChildContext| {
        let crash = trigger.clone();
        async move {
            crash.notified().await;
            Err("sibling crashed".into())
        }
    });
    let h = Supervisor::builder("root")
        .strategy(supervisor::Strategy::OneForAll)
        .child(spec.shutdown(supervisor::Shutdown::BrutalKill))
        .child(sibling)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let call = tokio::spawn({
        let addr = addr.clone();
        async move { addr.call(|r| Job(7, r), secs(10)).await }
    });
    settle().await;
    crash.notify_one();
    assert_eq!(call.await.unwrap().unwrap(), (7, 1));
    assert!(h.shutdown().await.is_clean());
}
