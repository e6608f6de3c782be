//! The worker pool: a supervision tree that claims, runs, heartbeats, rescues and shuts down.
//!
//! ```text
//! jobs-pool (one_for_one, restart backoff, generous intensity)
//! ├── completer      writes outcomes in batches            stopped last: flushes releases
//! ├── heartbeat      renews leases of claimed jobs         runs through the grace period
//! ├── rescuer        returns expired leases to the queue
//! ├── scheduler      promotes due scheduled jobs, prunes
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
mod executor;
mod fetcher;
mod heartbeat;
mod hooks;
mod maintenance;
mod quarantine;
mod queues;
mod run;
mod stops;
mod tree;

use std::future::Future;

use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

use supervisor::SupervisorHandle;
use tokio::time::Instant;

pub use config::{ConfigError, PoolConfig};

use crate::args::validate_queue_name;
use crate::client::Client;
use crate::error::EnqueueError;
use crate::job::{JobId, JobRecord};
use crate::store::Store;
use crate::time::Clock;
use crate::worker::{Registry, Worker};
use books::Books;
use hooks::{ExhaustedHook, Hooks};
use stops::Stops;
use tree::Parts;

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
    /// The supervision tree could not be built or started.
    #[error("the pool's supervision tree failed to start: {0}")]
    Supervisor(String),
}

/// Builds a [`Pool`]: register workers, declare queues, then `start`.
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

    /// Starts the pool's supervision tree.
    ///
    /// # Errors
    ///
    /// [`PoolError`] for invalid settings or queue names, or if the tree fails to start.
    pub async fn start(mut self) -> Result<Pool, PoolError> {
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
        let client = Client::new(self.store).with_clock(self.clock);
        let store = client.store().name();
        let kinds: Vec<_> = self.registry.kinds().collect();
        let parts = Parts::new(
            client,
            &self.config,
            self.registry,
            worker_id.into(),
            self.queues,
            self.exhausted_hook,
        );
        let supervisor = parts
            .tree(&self.config)?
            .start()
            .await
            .map_err(|e| PoolError::Supervisor(e.to_string()))?;
        tracing::info!(worker_id = %parts.owner, store, ?kinds, "pool started");
        Ok(Pool {
            client: parts.client,
            worker_id: parts.owner,
            books: parts.books,
            stops: parts.stops,
            hooks: parts.hooks,
            shutdown_timeout: self.config.shutdown_timeout,
            supervisor,
        })
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

/// A running worker pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    client: Client,
    worker_id: Arc<str>,
    books: Arc<Books>,
    stops: Stops,
    hooks: Arc<Hooks>,
    shutdown_timeout: Duration,
    supervisor: SupervisorHandle,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("worker_id", &self.worker_id)
            .field("inflight", &self.books.inflight())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts building a pool on `store`.
    pub fn builder(store: Arc<dyn Store>) -> PoolBuilder {
        PoolBuilder::new(store)
    }

    /// A client on the pool's store and clock.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The id this pool records as lease owner.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Jobs this pool holds now: running, waiting for a slot, or being written back.
    pub fn busy(&self) -> usize {
        self.books.inflight()
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
        self.stops.stop_fetching.cancel();
        self.books.emptied().await;
    }

    /// Shuts down in two phases: stop fetching and tell running jobs (they see
    /// `is_shutting_down()`); give them one shared grace period to finish or checkpoint, with
    /// heartbeats going on; then abort and release the rest (no attempt charged) and stop,
    /// all within `shutdown_timeout`. Idempotent.
    pub async fn shutdown(&self) -> ShutdownReport {
        let started = Instant::now();
        self.stops.shutdown.cancel();
        let bound = self.shutdown_timeout;
        let stopped = tokio::time::timeout(bound, self.supervisor.shutdown()).await;
        let not_stopped = match &stopped {
            Ok(report) => report.not_stopped().to_vec(),
            Err(_) => vec!["jobs-pool".to_owned()],
        };
        let hooks_done = self
            .hooks
            .finish(bound.saturating_sub(started.elapsed()))
            .await;
        let report = ShutdownReport {
            released: self.books.take_released(),
            clean: not_stopped.is_empty() && hooks_done && self.books.inflight() == 0,
            not_stopped,
            took: started.elapsed(),
        };
        tracing::info!(released = report.released.len(), clean = report.clean, took = ?report.took, "pool stopped");
        report
    }

    /// Skips the rest of the grace period: running jobs are aborted and released now. Use it
    /// on a second SIGTERM/SIGINT (as [`run_until_signal`](Self::run_until_signal) does).
    pub fn skip_grace(&self) {
        self.stops.shutdown.cancel();
        self.stops.hard_stop.cancel();
    }

    /// Runs until SIGTERM or SIGINT (or until the pool's tree ends by itself), then shuts
    /// down; a second signal skips the grace period.
    ///
    /// # Errors
    ///
    /// If the signal handlers cannot be installed.
    pub async fn run_until_signal(&self) -> std::io::Result<ShutdownReport> {
        let mut signals = supervisor::os_signals()?;
        tokio::select! {
            signal = signals.next() => tracing::info!(?signal, "shutting down the pool"),
            _ = self.supervisor.wait() => tracing::error!("the pool's supervision tree ended by itself"),
        }
        let shutdown = self.shutdown();
        tokio::pin!(shutdown);
        tokio::select! {
            report = &mut shutdown => return Ok(report),
            signal = signals.next() => tracing::warn!(?signal, "second signal: skipping the grace period"),
        }
        self.skip_grace();
        Ok(shutdown.await)
    }
}
