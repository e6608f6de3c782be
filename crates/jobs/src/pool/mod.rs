//! The worker pool: a supervision tree that claims, runs, heartbeats, rescues and shuts down.
//!
//! ```text
//! jobs-pool (one_for_one, restart backoff, generous intensity)
//! ├── completer      writes outcomes in batches            stopped last: flushes releases
//! ├── heartbeat      renews leases of claimed jobs         runs through the grace period
//! ├── rescuer        returns expired leases to the queue
//! ├── scheduler      promotes due scheduled jobs, expires unknown kinds
//! ├── pruner         deletes finished jobs past retention, in batches
//! ├── listener       wake-ups from the store
//! ├── executor       one task per job, grace then abort    linger = the grace period
//! └── fetcher:<q>    claims batches for queue q            stopped first: stop fetching
//! ```
//!
//! Children stop in reverse start order, so a shutdown stops fetching first, then gives
//! running jobs their grace, then writes their outcomes and releases.

mod books;
mod channels;
mod completer;
mod config;
mod events;
mod executor;
mod fetcher;
mod heartbeat;
mod hooks;
mod keeper;
mod lifecycle;
mod maintenance;
mod quarantine;
mod queues;
pub(crate) mod run;
mod slots;
mod spec;
mod stops;
mod tree;
pub(crate) mod watchdog;

use std::future::Future;

use futures::stream::{self, Stream, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use supervisor::{Signal, SupervisorHandle};
use tokio::time::Instant;

pub use config::{ConfigError, PoolConfig};
pub use events::JobEvent;
pub use lifecycle::PoolStarted;
pub use spec::PoolSpec;

use crate::args::validate_queue_name;
use crate::client::Client;
use crate::error::EnqueueError;
use crate::job::{JobId, JobRecord};
use crate::store::Store;
use crate::time::Clock;
use crate::worker::{Registry, Worker};
use books::Books;
use events::Events;
use hooks::{ExhaustedHook, Hooks};
use spec::Plan;
use stops::Stops;

/// The id of a pool's supervisor, and of the child [`PoolSpec::child_spec`] gives.
pub const POOL_SUPERVISOR: &str = "jobs-pool";

/// Concurrency of the `default` queue when a pool declares none.
pub const DEFAULT_CONCURRENCY: usize = 10;

/// Why a pool did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The settings are inconsistent.
    #[error("invalid pool settings: {0}")]
    Config(#[from] ConfigError),
    /// A queue name is invalid.
    #[error(transparent)]
    Queue(#[from] EnqueueError),
    /// The supervision tree's spec was refused (a bug in the pool's tree, never the
    /// application's settings: those are checked first).
    #[error("the pool's supervision tree is invalid: {0}")]
    Spec(#[source] supervisor::SpecError),
    /// The supervision tree could not be started.
    #[error("the pool's supervision tree failed to start: {0}")]
    Supervisor(#[source] supervisor::StartError),
    /// The pool's child spec is gone (its tree ended), so no pool will start any more.
    #[error("the pool's child spec was dropped: its supervision tree has ended and will not start the pool again")]
    Gone,
}

/// Builds a [`Pool`]: register workers, declare queues, then [`start`](Self::start) it on
/// its own or [`build`](Self::build) a [`PoolSpec`] to nest in your supervision tree.
#[must_use = "a builder does nothing until `start()` or `build()`"]
pub struct PoolBuilder {
    store: Arc<dyn Store>,
    config: PoolConfig,
    registry: Registry,
    queues: Vec<(String, usize)>,
    exhausted_hook: Option<ExhaustedHook>,
    worker_id: Option<String>,
    clock: Clock,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("store", &self.store.name())
            .field("workers", &self.registry)
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

impl PoolBuilder {
    /// A pool on `store` with default settings.
    pub fn new(store: Arc<dyn Store>) -> Self {
        PoolBuilder {
            store,
            config: PoolConfig::default(),
            registry: Registry::default(),
            queues: Vec::new(),
            exhausted_hook: None,
            worker_id: None,
            clock: Clock::System,
        }
    }

    /// Registers the worker for its job kind (replacing an earlier one of the same kind).
    pub fn register<W: Worker>(mut self, worker: W) -> Self {
        self.registry.register(worker);
        self
    }

    /// Runs jobs of `queue`, at most `concurrency` at once. Without any, the pool runs
    /// `default` with [`DEFAULT_CONCURRENCY`].
    pub fn queue(mut self, queue: impl Into<String>, concurrency: usize) -> Self {
        self.queues.push((queue.into(), concurrency));
        self
    }

    /// Replaces the settings.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// Calls `hook` with the whole job (kind, args, attempts, every error) each time a job
    /// this pool ran or rescued reaches the dead set: attempts exhausted, discarded, timed
    /// out on its last attempt, poison pill, or bad input. It runs after the store recorded
    /// the death, in its own task.
    pub fn on_exhausted<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(JobRecord) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.exhausted_hook = Some(Arc::new(move |job| Box::pin(hook(job))));
        self
    }

    /// The id recorded as lease owner (default `<hostname>-<pid>-<random>`).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// The clock the pool reads "now" from (tests use [`Clock::tokio`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the settings and queues and gives the pool's spec: start it on its own
    /// ([`PoolSpec::start`]) or put it in your own supervision tree
    /// ([`PoolSpec::child_spec`]).
    ///
    /// # Errors
    ///
    /// [`PoolError`] for invalid settings or queue names.
    pub fn build(mut self) -> Result<PoolSpec, PoolError> {
        self.config.validate()?;
        if self.queues.is_empty() {
            self.queues
                .push((crate::args::DEFAULT_QUEUE.to_owned(), DEFAULT_CONCURRENCY));
        }
        for (queue, concurrency) in &self.queues {
            validate_queue_name(queue)?;
            if *concurrency == 0 {
                return Err(ConfigError::ZeroConcurrency {
                    queue: queue.clone(),
                }
                .into());
            }
        }
        let worker_id = self.worker_id.unwrap_or_else(default_worker_id);
        let plan = Plan {
            client: Client::new(self.store).with_clock(self.clock),
            config: self.config,
            registry: self.registry,
            owner: worker_id.into(),
            queues: self.queues,
            exhausted_hook: self.exhausted_hook,
        };
        // Build the tree once now, so a spec that cannot be built fails here, not on start.
        let _checked = plan.parts().tree(&plan.config, None)?;
        Ok(PoolSpec {
            plan: Arc::new(plan),
        })
    }

    /// Builds and starts the pool as a supervision tree of its own: the one-line path,
    /// `self.build()?.start()`.
    ///
    /// # Errors
    ///
    /// [`PoolError`] for invalid settings or queue names, or if the tree fails to start.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future once the tree's task is spawned leaves the pool
    /// running with no handle to stop it.
    pub async fn start(self) -> Result<Pool, PoolError> {
        self.build()?.start().await
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{nonce:08x}", std::process::id())
}

/// What a shutdown did.
#[must_use = "a report tells whether the shutdown was clean and which jobs were released; check `clean`"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs that were still running (or waiting for a slot) and were released back to their
    /// queue, checkpoint kept, no attempt charged.
    pub released: Vec<JobId>,
    /// Whether everything stopped within the bound and every job was written back.
    pub clean: bool,
    /// Children that did not stop (e.g. a job stuck in blocking code).
    pub not_stopped: Vec<String>,
    /// How long the shutdown took.
    pub took: Duration,
}

/// What a [`Pool`] handle holds besides its supervisor: the parts of one incarnation that
/// the handle's calls use.
#[derive(Clone, Debug)]
pub(crate) struct PoolView {
    pub(crate) client: Client,
    pub(crate) worker_id: Arc<str>,
    pub(crate) books: Arc<Books>,
    pub(crate) stops: Stops,
    pub(crate) hooks: Arc<Hooks>,
    pub(crate) events: Arc<Events>,
    /// Jobs of kinds this pool has no worker for, waiting (as of the last check).
    pub(crate) unknown_kinds: Arc<AtomicU64>,
    pub(crate) shutdown_timeout: Duration,
}

/// A running worker pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    view: PoolView,
    supervisor: SupervisorHandle,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("worker_id", &self.view.worker_id)
            .field("inflight", &self.view.books.inflight())
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(view: PoolView, supervisor: SupervisorHandle) -> Self {
        Pool { view, supervisor }
    }

    /// Starts building a pool on `store`.
    pub fn builder(store: Arc<dyn Store>) -> PoolBuilder {
        PoolBuilder::new(store)
    }

    /// A client on the pool's store and clock.
    pub fn client(&self) -> Client {
        self.view.client.clone()
    }

    /// The id this pool records as lease owner.
    pub fn worker_id(&self) -> &str {
        &self.view.worker_id
    }

    /// Jobs this pool holds now: running, waiting for a slot, or being written back.
    pub fn busy(&self) -> usize {
        self.view.books.inflight()
    }

    /// Available jobs, on any queue, of kinds this pool has no worker for: they wait for a
    /// process that knows their kind (a rolling deploy that adds a kind), and go to the dead
    /// set only after [`PoolConfig::unknown_kind_ttl`]. Counted once a minute by the pool's
    /// maintenance (0 until the first count, a minute after the pool started), and also exported as the
    /// [`telemetry::JOBS_WAITING_UNKNOWN_KIND`](crate::telemetry::JOBS_WAITING_UNKNOWN_KIND)
    /// gauge. A count that stays above zero means no live process knows those kinds.
    pub fn waiting_unknown_kinds(&self) -> u64 {
        self.view.unknown_kinds.load(Ordering::Relaxed)
    }

    /// The lifecycle events of the jobs this pool runs: started, finished (with the outcome
    /// the store recorded), rescued. Like the supervisor's events, a broadcast: a subscriber
    /// that falls behind by more than 1024 events loses the oldest (`RecvError::Lagged`).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use jobs::{JobArgs, JobContext, JobError, JobEvent, MemoryStore, Outcome, Pool, Worker};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Ping;
    /// # impl JobArgs for Ping { const KIND: &'static str = "ping"; }
    /// # struct Pinger;
    /// # impl Worker for Pinger {
    /// #     type Args = Ping;
    /// #     async fn perform(&self, _: JobContext, _: Ping) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Pool::builder(Arc::new(MemoryStore::new())).register(Pinger).start().await?;
    /// let mut events = pool.subscribe();
    /// let id = pool.client().enqueue(&Ping).await?;
    /// loop {
    ///     if let JobEvent::Finished { id: done, outcome, .. } = events.recv().await? {
    ///         assert_eq!((done, outcome), (id, Outcome::Completed));
    ///         break;
    ///     }
    /// }
    /// # pool.shutdown().await; Ok(()) }
    /// ```
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<JobEvent> {
        self.view.events.subscribe()
    }

    /// The pool's supervision tree (events, children).
    pub fn supervisor(&self) -> &SupervisorHandle {
        &self.supervisor
    }

    /// Stops fetching and resolves when the pool holds no job, without interrupting any:
    /// for autoscalers removing a worker. Shut the pool down afterwards.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; fetching stays stopped.
    pub async fn drain(&self) {
        self.view.stops.stop_fetching.cancel();
        self.view.books.emptied().await;
    }

    /// Shuts down in two phases: stop fetching and tell running jobs (they see
    /// `is_shutting_down()`); give them one shared grace period to finish or checkpoint, with
    /// heartbeats going on; then abort and release the rest (no attempt charged) and stop,
    /// all within `shutdown_timeout`. Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Once polled, the shutdown goes on even if the future is dropped; only the report
    /// (the released jobs, the exhausted hooks still to finish) is lost.
    /// For a pool nested in your own tree ([`PoolSpec::child_spec`]), stop the tree instead:
    /// this stops only the pool's current incarnation, which its parent then restarts (the
    /// child is permanent).
    pub async fn shutdown(&self) -> ShutdownReport {
        let started = Instant::now();
        self.view.stops.shutdown.cancel();
        let bound = self.view.shutdown_timeout;
        let stopped = tokio::time::timeout(bound, self.supervisor.shutdown()).await;
        let not_stopped = match &stopped {
            Ok(report) => report.not_stopped().to_vec(),
            Err(_) => vec![POOL_SUPERVISOR.to_owned()],
        };
        self.report(not_stopped, started).await
    }

    /// What a shutdown that began at `started` did, once the pool's tree has stopped: waits
    /// (within what is left of the bound) for the exhausted hooks still running.
    async fn report(&self, not_stopped: Vec<String>, started: Instant) -> ShutdownReport {
        let bound = self.view.shutdown_timeout;
        let hooks_done = self
            .view
            .hooks
            .finish(bound.saturating_sub(started.elapsed()))
            .await;
        let report = ShutdownReport {
            released: self.view.books.take_released(),
            clean: not_stopped.is_empty() && hooks_done && self.view.books.inflight() == 0,
            not_stopped,
            took: started.elapsed(),
        };
        tracing::info!(released = report.released.len(), clean = report.clean, took = ?report.took, "pool stopped");
        report
    }

    /// Skips the rest of the grace period: running jobs are aborted and released now. Use it
    /// on a second SIGTERM/SIGINT (as [`run_until_signal`](Self::run_until_signal) does).
    pub fn skip_grace(&self) {
        self.view.stops.shutdown.cancel();
        self.view.stops.hard_stop.cancel();
    }

    /// Runs until SIGTERM or SIGINT (or until the pool's tree ends by itself), then shuts
    /// down as [`shutdown`](Self::shutdown) does; a second signal skips the grace period
    /// (running jobs are aborted and released at once). Needs the `signals` feature (on by
    /// default).
    ///
    /// # Errors
    ///
    /// If the signal handlers cannot be installed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe until the first signal; after it, as [`shutdown`](Self::shutdown).
    #[cfg(feature = "signals")]
    pub async fn run_until_signal(&self) -> std::io::Result<ShutdownReport> {
        Ok(self.run_until_signals(supervisor::os_signals()?).await)
    }

    /// Runs until `stop` resolves (or until the pool's tree ends by itself), then shuts down
    /// as [`shutdown`](Self::shutdown) does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), jobs::PoolError> {
    /// let store = std::sync::Arc::new(jobs::MemoryStore::new());
    /// let pool = jobs::Pool::builder(store).start().await?;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let running = tokio::spawn({
    ///     let pool = pool.clone();
    ///     async move { pool.run_until(stopped).await }
    /// });
    /// let _ = stop.send(());
    /// let report = running.await.expect("the pool's task does not panic");
    /// assert!(report.clean);
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe until `stop` resolves; after it, as [`shutdown`](Self::shutdown).
    pub async fn run_until<F: Future>(&self, stop: F) -> ShutdownReport {
        self.run_until_signals(stream::once(stop).map(|_| Signal::Terminate))
            .await
    }

    /// `supervisor::run_until` on the pool's tree: the first signal stops it (its lifecycle
    /// child starts the two-phase shutdown), a second one skips the grace period here rather
    /// than killing the tree, so the completer still writes every release; only the bound
    /// kills.
    async fn run_until_signals(&self, signals: impl Stream<Item = Signal>) -> ShutdownReport {
        let began: OnceLock<Instant> = OnceLock::new();
        let signals = signals.filter(|_| {
            let first = began.set(Instant::now()).is_ok();
            if !first {
                tracing::warn!("second signal: skipping the grace period");
                self.skip_grace();
            }
            std::future::ready(first)
        });
        let bound = self.view.shutdown_timeout;
        let outcome =
            supervisor::run_until(self.supervisor.clone(), bound, Box::pin(signals)).await;
        if outcome.signal.is_none() {
            tracing::error!("the pool's supervision tree ended by itself");
        }
        let started = began.get().copied().unwrap_or_else(Instant::now);
        let mut not_stopped = outcome.report.not_stopped().to_vec();
        if outcome.forced && not_stopped.is_empty() {
            not_stopped.push(POOL_SUPERVISOR.to_owned());
        }
        self.report(not_stopped, started).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobArgs, JobContext, JobError, JobState, MemoryStore};

    struct Stubborn;
    #[derive(serde::Serialize, serde::Deserialize)]
    struct StubbornArgs;
    impl JobArgs for StubbornArgs {
        const KIND: &'static str = "stubborn";
    }
    impl Worker for Stubborn {
        type Args = StubbornArgs;
        async fn perform(&self, _ctx: JobContext, _args: StubbornArgs) -> Result<(), JobError> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_skips_the_grace_and_still_releases_the_running_jobs() {
        let pool = Pool::builder(Arc::new(MemoryStore::new()))
            .clock(Clock::tokio())
            .register(Stubborn)
            .start()
            .await
            .unwrap();
        let client = pool.client();
        let id = client.enqueue(&StubbornArgs).await.unwrap();
        while client.job(id).await.unwrap().map(|job| job.state) != Some(JobState::Running) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let second_after_1s = stream::once(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Signal::Interrupt
        });
        let signals = stream::iter([Signal::Terminate]).chain(second_after_1s);
        let report = pool.run_until_signals(signals).await;
        assert!(
            report.took < Duration::from_secs(3),
            "not the 20 s grace: {report:?}"
        );
        assert_eq!(report.released, vec![id]);
        assert!(report.clean, "released, not killed: {report:?}");
        let job = client.job(id).await.unwrap().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Available, 0));
    }
}
