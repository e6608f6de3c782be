//! Erlang/OTP-grade supervision trees on tokio.
//!
//! A *supervisor* starts *children* (tokio tasks built by a factory), watches them, and
//! restarts them by a declared policy when they exit; when restarts come too fast it gives
//! up, stops everything in order, and fails, so that its own supervisor can react. Trees
//! nest: a supervisor is a child like any other, and failure escalates up the tree.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use supervisor::{
//!     Backoff, ChildContext, ChildSpec, Intensity, Restart, RestartPolicy, Shutdown, Strategy,
//!     Supervisor,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Supervisor::builder("db")
//!     .child(ChildSpec::new("pool", |ctx: ChildContext| async move {
//!         // connect, then tell the supervisor the next child may start
//!         ctx.ready();
//!         ctx.cancelled().await;
//!         Ok(())
//!     }).wait_for_ready())
//!     .build()?;
//!
//! let spec = Supervisor::builder("app")
//!     .strategy(Strategy::OneForOne)
//!     .intensity(Intensity::new(10, Duration::from_secs(10)))
//!     .restart_policy(RestartPolicy::Backoff(Backoff::exponential(
//!         Duration::from_millis(100),
//!         Duration::from_secs(10),
//!     )))
//!     .child(ChildSpec::supervisor(db))
//!     .child(
//!         ChildSpec::new("worker", |ctx: ChildContext| async move {
//!             while !ctx.is_cancelled() {
//!                 // ... do a unit of work; `?` on errors makes an abnormal exit
//!                 tokio::select! {
//!                     () = ctx.cancelled() => {}
//!                     () = tokio::time::sleep(Duration::from_millis(10)) => {}
//!                 }
//!             }
//!             Ok(()) // returning after the token was cancelled is a `shutdown` exit
//!         })
//!         .restart(Restart::Permanent)
//!         .shutdown(Shutdown::Timeout(Duration::from_secs(5))),
//!     )
//!     .build()?;
//!
//! let handle = spec.start().await?; // children started in order, each ready
//! assert_eq!(handle.count_children().await?.active, 2);
//! let report = handle.shutdown().await; // reverse order, each within its bound
//! assert!(report.is_clean());
//! # Ok(())
//! # }
//! ```
//!
//! In a binary, `run_until_signal` runs the tree until SIGTERM / SIGINT and returns an
//! outcome whose [`exit_code`](SignalOutcome::exit_code) tells whether the shutdown was clean
//! (feature `signals`, on by default; without it, [`run_until`] takes any stream of
//! [`Signal`]s). The crate takes only the tokio features it uses: `rt`, `sync`, `time`,
//! `macros`, and `signal` with the `signals` feature.
//!
//! With the `metrics` feature, every restart is counted through the `metrics` facade in
//! `supervisor_restarts_total` (`RESTARTS_METRIC`), labelled `supervisor` and `child`.
//!
//! # Children
//!
//! A [`ChildSpec`] has an id (unique within its supervisor), a factory called on every
//! (re)start with a [`ChildContext`], and:
//!
//! | setting | values | default |
//! |---|---|---|
//! | [`Restart`] | `Permanent` (always restarted), `Transient` (only after an abnormal exit), `Temporary` (never; removed when it exits) | `Permanent` |
//! | [`Shutdown`] | `BrutalKill` (abort at once), `Timeout(d)` (cancel the token, let it linger up to `d`, then abort), `Infinity` (cancel, wait) | `Timeout(5 s)`; `Infinity` for supervisors |
//! | [`ChildKind`] | `Worker`, `Supervisor` | set by the constructor |
//! | significant | see auto-shutdown | `false` |
//! | readiness | [`wait_for_ready`](ChildSpec::wait_for_ready): the next child starts after [`ChildContext::ready`] | ready once spawned |
//! | start timeout | [`start_timeout`](ChildSpec::start_timeout) | none |
//! | restart policy | [`restart_policy`](ChildSpec::restart_policy) overrides the supervisor's | the supervisor's |
//!
//! A child's future returns `Result<(), ChildError>`: `Ok` is a *normal* exit, `Err` an
//! *abnormal* one, a panic is an abnormal exit whose [`ExitReason::Panic`] carries the panic
//! message, and a child that returns after its supervisor cancelled its token exited with
//! `shutdown`. The factory runs inside the child's task, so a panic there is caught too.
//!
//! # Supervisors
//!
//! | setting | meaning | default |
//! |---|---|---|
//! | [`Strategy`] | `OneForOne`, `OneForAll`, `RestForOne` | `OneForOne` |
//! | [`Intensity`] | at most N restarts within a period, else stop all and fail | 1 in 5 s (as OTP) |
//! | [`RestartPolicy`] | `Immediate`, `Fixed(d)`, `Backoff(`[`Backoff`]`)` | `Immediate` |
//! | [`AutoShutdown`] | `Never`, `AnySignificant`, `AllSignificant` | `Never` |
//! | event capacity | how far a subscriber may lag | 1024 |
//! | abort grace | how long an aborted task may take to finish before it is reported as not stopped | 100 ms |
//!
//! Specs are validated by `build()` ([`SpecError`]): empty or duplicate ids, a significant
//! permanent child, significant children without auto-shutdown, a zero period.
//!
//! Every duration setting saturates: a duration too large to add to the current instant
//! (`Duration::MAX`, say) means "no limit": a `Shutdown::Timeout` waits like `Infinity`, a
//! start timeout or abort grace never elapses, and a restart delay leaves the child
//! `Restarting` until it is terminated or the supervisor shuts down.
//!
//! **Start** is ordered: each child starts once the previous one is ready. A child that
//! exits before it is ready, or overruns its start timeout, fails the start with a
//! [`StartError`] naming it, after the children started before it have been stopped in
//! reverse order. Waiting for readiness never blocks the supervisor: it serves its handle and
//! handles other children's exits meanwhile.
//!
//! **Restarts** follow the strategy: under `OneForAll` / `RestForOne` the affected siblings
//! are stopped in reverse start order and restarted in start order. With a delay, the restart
//! (of the whole group) runs on a timer; while it is pending `which_children` shows
//! [`ChildState::Restarting`], `terminate_child` cancels it (under `RestForOne` together with
//! the pending restarts of the children after it, which depend on it), `restart_child` and
//! `delete_child` answer [`SupervisorError::ChildRestarting`], and shutdown cancels all
//! pending restarts at once. A restart that fails to start is retried through the same
//! delay; each retry counts once toward the intensity. As in OTP, a `RestForOne` retry
//! resumes at the child that failed (the children restarted before it keep running) and a
//! `OneForAll` retry restarts the whole group again. Intensity bookkeeping costs O(1) per
//! restart whatever the window.
//!
//! **Stopping** follows reverse start order, each child by its [`Shutdown`]. A child that
//! blocks its thread cannot be aborted; it is detached after the abort grace and listed in
//! [`ShutdownReport::not_stopped`], so a shutdown never hangs past its bounds.
//!
//! **Escalation**: exceeding the intensity stops all children and ends the supervisor with
//! [`SupervisorError::IntensityExceeded`]. Its parent sees the exit as
//! [`ExitReason::Escalated`], which, like the `shutdown` exit of an OTP supervisor that gave
//! up, is not abnormal: a transient nested supervisor stays down, a permanent one is
//! restarted and that restart counts toward the parent's intensity, so failure climbs the
//! tree. A supervisor stopped with `kill()` ends with [`SupervisorError::Killed`], which its
//! parent sees as `Killed`, an abnormal exit (OTP's `killed`).
//!
//! The [`DynamicSupervisor`] runs many children added at run time (OTP's
//! `simple_one_for_one`, Elixir's `DynamicSupervisor`), each restarted on its own, with an
//! optional `max_children`, and stops them concurrently.
//!
//! # Handles and events
//!
//! [`SupervisorHandle`] (and [`DynamicHandle`]) is cheap to clone and usable from any task:
//! `start_child`, `terminate_child`, `restart_child`, `delete_child`, `which_children`,
//! `count_children`, `subscribe`, `shutdown` (idempotent, returns a [`ShutdownReport`]),
//! `shutdown_within`, `kill`, `wait`. Calls on a supervisor that has ended return
//! [`SupervisorError::Gone`]; none hangs. [`Event`]s (started, exited with reason, restart
//! scheduled with delay, restarted, intensity exceeded, shutdown started / finished...) are
//! broadcast to subscribers and logged with `tracing` (target `supervisor`, fields
//! `supervisor` and `child`).
//!
//! # Talking to children: stable addresses
//!
//! A child declared with [`ChildSpec::with_mailbox`] gets a typed, bounded mailbox that
//! the supervisor owns, and the [`Address`] handed out once reaches every incarnation of
//! the child. No peer offers this (Erlang pids and Elixir names die with the process,
//! ractor and kameo references die with the actor, Akka's backoff supervisor stashes
//! untyped messages):
//!
//! - messages sent while the child restarts (also under a long restart delay) wait in the
//!   buffer and reach the next incarnation in order; [`Address::send`] applies backpressure
//!   when the buffer is full; [`Address::try_send`] says [`Full`](TrySendError::Full),
//!   [`Restarting`](TrySendError::Restarting) or [`Stopped`](TrySendError::Stopped);
//! - [`Address::call`] is request/response with a timeout, answered through a [`ReplyTo`]
//!   carried in the request; a call made during a restart is served by the next
//!   incarnation, or times out cleanly;
//! - a message the crashed incarnation had taken is dropped (as a process's mailbox dies
//!   with it), unless the message type implements [`HandBack`] and the child receives with
//!   [`Inbox::take`]: then it goes back to the front of the mailbox unless marked
//!   [`done`](Taken::done);
//! - once the child stops for good (a temporary child ends, it is terminated, a transient
//!   child exits normally, its supervisor ends, its spec is dropped) senders get a typed
//!   error, never a hang: waiting senders are released, buffered messages are dropped (a
//!   pending `call` then fails with [`CallError::Stopped`]). `restart_child` revives the
//!   same address.
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use supervisor::{ChildContext, ChildSpec, Inbox, ReplyTo, RestartPolicy, Supervisor};
//!
//! enum Cache {
//!     Put(String, String),
//!     Get(String, ReplyTo<Option<String>>),
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (spec, cache) = ChildSpec::with_mailbox(
//!     "cache",
//!     1024,
//!     |_ctx: ChildContext, mut inbox: Inbox<Cache>| async move {
//!         let mut data = HashMap::new(); // reloaded from its source on every start
//!         while let Some(msg) = inbox.recv().await {
//!             match msg {
//!                 Cache::Put(k, v) => {
//!                     data.insert(k, v);
//!                 }
//!                 Cache::Get(k, reply) => {
//!                     let _ = reply.send(data.get(&k).cloned());
//!                 }
//!             }
//!         }
//!         Ok(())
//!     },
//! )?;
//! let root = Supervisor::builder("app")
//!     .restart_policy(RestartPolicy::Fixed(Duration::from_secs(20)))
//!     .child(spec)
//!     .build()?
//!     .start()
//!     .await?;
//! cache.send(Cache::Put("k".into(), "v".into())).await?;
//! let v = cache.call(|r| Cache::Get("k".into(), r), Duration::from_secs(30)).await?;
//! assert_eq!(v.as_deref(), Some("v"));
//! assert!(root.shutdown().await.is_clean());
//! # Ok(())
//! # }
//! ```
//!
//! `examples/cache.rs` runs such a cache through crashes and delayed restarts with
//! concurrent callers and loses no request.
//!
//! A [`Registry`] names addresses (unique or duplicate keys, as Elixir's `Registry`):
//! look-ups take a read lock, no message to any supervisor; an entry follows its child's
//! restarts (the address is the same) and disappears when the child stops for good,
//! including a temporary sibling dropped by a `OneForAll` / `RestForOne` group restart.
//!
//! # Tasks, partitions, and the tree at a glance
//!
//! A [`TaskSupervisor`] (Elixir's `Task.Supervisor`) runs ad-hoc async tasks under the
//! tree: [`spawn`](TaskSupervisor::spawn) returns a [`TaskHandle`] to await the result,
//! [`spawn_and_await`](TaskSupervisor::spawn_and_await) waits for it,
//! [`spawn_restarting`](TaskSupervisor::spawn_restarting) restarts a failing task. Tasks
//! are dynamic children (counted by `which_children`, shown in the tree); on shutdown each
//! lingers within the task supervisor's [`Shutdown`] bound, then is aborted and listed in
//! the report's [`aborted`](ShutdownReport::aborted) paths.
//!
//! A [`PartitionSupervisor`] (Elixir's `PartitionSupervisor`) puts N dynamic supervisors
//! behind one [`PartitionHandle`] and routes each child by the hash of a key, so a very
//! large pool is not one supervisor task's bottleneck.
//!
//! [`SupervisorHandle::tree`] returns the whole tree recursively, every supervisor and
//! child with its state, restarts, last exit reason, uptime and pending restart delay, as
//! a [`SupervisorTree`] whose `Display` is an indented rendering (what Erlang's observer
//! shows); `examples/supervision_tree.rs` prints it on SIGUSR1:
//!
//! ```text
//! root (one_for_one)
//! ├─ cache  running  up 4s
//! ├─ services [rest_for_one]  running  up 4s
//! │  ├─ db  running  up 4s
//! │  └─ api  running  up 4s
//! └─ flaky  restarting  restart in 9s  last exit: error: lost its connection
//! ```
//!
//! # Differences from Erlang/OTP
//!
//! Deliberate, each because tokio is not BEAM or because OTP's behaviour is a known gap:
//!
//! 1. **Delayed restarts** (`RestartPolicy::Fixed` / `Backoff`, with jitter, a cap and a
//!    reset after a stable run) exist; OTP restarts at once only. Pending restarts run on
//!    timers and are visible and cancellable (see above). Under `OneForAll` / `RestForOne`
//!    the siblings are stopped at once and the group is restarted after the delay.
//!    Terminating a child whose `RestForOne` group restart is pending also cancels the
//!    restarts of the children after it (in OTP they stay down once the restart they wait
//!    on is gone); under `OneForAll` the others are still restarted.
//! 2. **A failed restart** is retried through the restart delay (OTP retries immediately
//!    through a message to itself); as in OTP each attempt counts toward the intensity, a
//!    `RestForOne` retry resumes at the child that failed and a `OneForAll` retry restarts
//!    the whole group.
//! 3. **Readiness never blocks the supervisor.** OTP's supervisor is blocked while a child's
//!    `init` runs; here a child signals readiness with [`ChildContext::ready`] and the
//!    supervisor serves calls and exits meanwhile, including during its own initial start
//!    (OTP handles such exits only after `init`). An optional per-child start timeout kills a
//!    child that is not ready in time (as `proc_lib` does on an `init` timeout).
//! 4. **Stopping is cooperative**: `Shutdown::Timeout` cancels the child's
//!    `CancellationToken` (instead of `exit(Pid, shutdown)`), then aborts it. Abort takes
//!    effect at the child's next `.await`; a child that blocks its thread cannot be killed as
//!    OTP's `kill` would, so it is detached after the abort grace and reported in
//!    [`ShutdownReport::not_stopped`]. `BrutalKill` aborts without cancelling the token.
//!    Durations are `Duration`s, not milliseconds; one too large for an `Instant` means no
//!    limit (OTP's `infinity`).
//! 5. **Exit reasons** come from the child's result: `Ok` = normal, `Err` or panic =
//!    abnormal, a return after the supervisor's stop request = shutdown. A child cannot exit
//!    with `shutdown` or `{shutdown, _}` on its own, and there is no `ignore` from a start.
//!    A nested supervisor that gave up exits with [`ExitReason::Escalated`] where OTP's exits
//!    with `shutdown`; both are normal exits (a transient one stays down, a permanent one is
//!    restarted and counts toward its parent's intensity), but ours keeps the error.
//! 6. **Intensity** is measured with `Duration` precision; a restart exactly `period` ago no
//!    longer counts (OTP counts in whole seconds and includes it). The bookkeeping is O(1)
//!    per restart (OTP walks its list of restarts).
//! 7. **No links.** Dropping every handle does not stop a supervisor (call `shutdown`).
//!    A nested supervisor runs inside its parent's child task, so aborting that task aborts
//!    its whole subtree. Calls on an ended supervisor return `Gone` instead of exiting the
//!    caller with `noproc`.
//! 8. **Shutdown API**: `shutdown()` is idempotent and returns a [`ShutdownReport`] (what
//!    was aborted, what could not be stopped, how the supervisor ended); `kill()` is a hard
//!    stop that ends the supervisor with [`SupervisorError::Killed`], abnormal to its parent
//!    as OTP's `killed`; `shutdown_within(bound)` escalates one to the other. A supervisor
//!    ended by auto-shutdown ends with `Ok` (OTP exits with reason `shutdown`), so a
//!    transient nested supervisor is not restarted, as in OTP.
//! 9. **Dynamic supervisor**: `start_child` takes a whole [`ChildSpec`] (Elixir style)
//!    instead of extra arguments appended to one template; children are named by a
//!    [`ChildId`] that stays the same across restarts (a restarted OTP child gets a new
//!    pid) and belongs to the supervisor instance that issued it, as a pid names one
//!    process; `terminate_child` removes the child and does not block other calls while the
//!    child lingers, and answers `Ok` for a child of this supervisor that has already ended
//!    (as OTP does for a dead pid); significant children are not supported there. A child
//!    that needs no readiness is spawned by `start_child` itself on the caller's task (no
//!    round trip to the supervisor's task), which is why starts are cheap; `start_child`
//!    may return before the child's first poll.
//! 10. **Observability**: typed [`Event`]s on a broadcast channel in addition to logs
//!     (OTP: SASL / logger reports), and `which_children` reports `Starting`, `Restarting`
//!     and `Stopping` states.
//! 11. **`start_child` of an id whose restart is pending** answers
//!     [`SupervisorError::ChildAlreadyStarted`] (OTP: `already_present`, since the child has
//!     no pid while it restarts): it will run again without a `restart_child`.
//! 12. **Not provided**: hot code upgrade (`code_change`), `get_childspec`,
//!     `check_childspecs` (specs are checked by `build()`), changing a running supervisor's
//!     flags.
//! 13. **Stable addresses** replace pids and registered names for talking to a child. An
//!     OTP mailbox is unbounded and dies with its process (a name is unregistered while the
//!     child restarts, and a send to it fails); here the supervisor owns a bounded mailbox
//!     that outlives the child's restarts: `send` waits for room (backpressure), messages
//!     sent during a restart wait for the next incarnation, and what the crashed
//!     incarnation had taken is lost unless the type opts in with [`HandBack`]. An address
//!     outlives its child's restarts, not its supervisor's: when the supervisor ends (even
//!     if its own parent then restarts it) the address is `Stopped` until the child runs
//!     again. A `call` that times out does not exit the caller (`gen_server:call` does);
//!     its late answer is dropped.
//! 14. **Registry**: entries are addresses, so an entry stays across restarts (Elixir's
//!     `Registry` drops it when the process exits and the restarted process registers
//!     again) and goes when the child stops for good. No per-entry values, `dispatch`,
//!     match specs or partitions; look-ups read a `RwLock`ed map instead of ETS.
//! 15. **Task supervisor**: no links. A task's failure reaches its [`TaskHandle`] as a
//!     [`TaskError`] (like `Task.Supervisor.async_nolink`), never the caller;
//!     `spawn_restarting` is `restart: :transient`; a task is stopped by its supervisor's
//!     [`Shutdown`] setting (Elixir: `:shutdown`, default 5 s, as here). No `async_stream`.
//! 16. **Partitioned supervisor**: a key is routed by SipHash-1-3 with fixed keys
//!     (Elixir: `:erlang.phash2`, integers by `rem`), stable within one build of the crate;
//!     partitions are dynamic supervisors with ids `0..N` under a `OneForOne` static
//!     supervisor, as in Elixir. Handle calls that span partitions (`which_children`,
//!     `count_children`) ask them one after the other: not one atomic snapshot.
//! 17. **The tree** is gathered by the caller's task, descending supervisor by supervisor
//!     (no supervisor waits for another), so it is a snapshot per supervisor, not one
//!     atomic picture (nor is observer's).
//!
//! As in OTP, a `OneForAll` / `RestForOne` group restart also starts non-temporary children
//! of the group that had been terminated, and drops temporary ones; `start_child` of an id in
//! use tells a started child ([`SupervisorError::ChildAlreadyStarted`]) from a terminated one
//! ([`SupervisorError::ChildAlreadyPresent`]); and a started temporary child's factory is
//! dropped (OTP drops its start arguments), so what it captured lives no longer than needed.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

mod backoff;
mod builder;
mod child;
mod context;
mod dynamic;
mod end;
mod error;
mod events;
mod flags;
mod handle;
mod intensity;
mod mailbox;
mod partition;
mod registry;
mod restarts;
mod runtime;
mod signals;
mod spec;
mod tasks;
mod timers;
mod tree;

pub use backoff::{Backoff, BackoffError, RestartPolicy};
pub use builder::{AutoShutdown, OnStart, Strategy, Supervisor, SupervisorBuilder, SupervisorSpec};
pub use context::ChildContext;
pub use dynamic::{
    DynamicHandle, DynamicSupervisor, DynamicSupervisorBuilder, DynamicSupervisorSpec,
    OnDynamicStart,
};
pub use error::{ChildError, ExitReason, ShutdownReport, SpecError, StartError, SupervisorError};
#[cfg(feature = "metrics")]
pub use events::RESTARTS_METRIC;
pub use events::{ChildId, Event};
pub use handle::{ChildCounts, ChildInfo, ChildState, SupervisorHandle};
pub use intensity::Intensity;
pub use mailbox::{
    Address, AddressStatus, CallError, HandBack, Inbox, ReplyTo, SendError, Taken, TrySendError,
};
pub use partition::{
    PartitionHandle, PartitionSupervisor, PartitionSupervisorBuilder, PartitionSupervisorSpec,
};
pub use registry::{Keys, Registry, RegistryError};
#[cfg(feature = "signals")]
pub use signals::{os_signals, run_until_signal};
pub use signals::{run_until, Signal, SignalOutcome, TreeHandle};
pub use spec::{ChildKind, ChildSpec, Restart, Shutdown};
pub use tasks::{TaskError, TaskHandle, TaskSupervisor, TaskSupervisorBuilder, TaskSupervisorSpec};
pub use tree::{ChildNode, SupervisorTree, TreeKind};
