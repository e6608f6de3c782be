//! The pool's parts and its supervision tree: each child is handed the parts it uses, so
//! its struct shows its data flow.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use supervisor::{
    ChildContext, ChildError, ChildSpec, Restart, RestartPolicy, Shutdown, Strategy, Supervisor,
};

use crate::client::Client;
use crate::context::RunEnv;
use crate::pool::books::Books;
use crate::pool::channels::{Outcomes, Runs};
use crate::pool::completer::Completer;
use crate::pool::events::Events;
use crate::pool::executor::{self, Executor};
use crate::pool::fetcher::Fetcher;
use crate::pool::heartbeat::Heartbeat;
use crate::pool::hooks::{ExhaustedHook, Hooks};
use crate::pool::lifecycle::{Announcer, Lifecycle};
use crate::pool::maintenance::{Listener, Pruner, Rescuer, Scheduler};
use crate::pool::quarantine::{Lane, Quarantine};
use crate::pool::queues::{ClaimSettings, Queues};
use crate::pool::run::Runner;
use crate::pool::stops::Stops;
use crate::pool::{PoolConfig, PoolError, PoolView};
use crate::worker::Registry;

/// The id of the pool tree's last child (see [`Lifecycle`]).
pub(super) const LIFECYCLE_CHILD: &str = "lifecycle";

/// A child spec that runs a clone of `child` on each (re)start.
fn child<C, Fut>(
    id: String,
    stop_within: Duration,
    child: C,
    run: fn(C, ChildContext) -> Fut,
) -> ChildSpec
where
    C: Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ChildError>> + Send + 'static,
{
    ChildSpec::new(id, move |ctx| run(child.clone(), ctx))
        .restart(Restart::Permanent)
        .shutdown(Shutdown::Timeout(stop_within))
}

/// The parts of a pool, each handed to the children that use it. They outlive any one child,
/// so a restarted child picks up where the last one stopped.
pub(super) struct Parts {
    pub(super) client: Client,
    pub(super) owner: Arc<str>,
    queues: Arc<Queues>,
    pub(super) books: Arc<Books>,
    pub(super) stops: Stops,
    pub(super) hooks: Arc<Hooks>,
    pub(super) events: Arc<Events>,
    runs: Runs,
    executor: Executor,
    completer: Completer,
    run_env: Arc<RunEnv>,
    /// The kinds this pool has workers for (its claims name them).
    kinds: Arc<[String]>,
    lane: Arc<Lane>,
    /// Jobs of kinds this pool has no worker for, waiting (as of the last check).
    unknown_kinds: Arc<AtomicU64>,
}

impl Parts {
    pub(super) fn new(
        client: Client,
        config: &PoolConfig,
        registry: Registry,
        owner: Arc<str>,
        queues: Vec<(String, usize)>,
        exhausted_hook: Option<ExhaustedHook>,
    ) -> Self {
        let kinds: Vec<_> = registry.kinds().collect();
        let queues = Arc::new(Queues::new(queues, &kinds));
        let stops = Stops::new();
        let books = Arc::new(Books::new(Arc::clone(&queues), stops.shutdown.clone()));
        let hooks = Arc::new(Hooks::new(exhausted_hook));
        let events = Arc::new(Events::new());
        let (runs, runs_inbox) = Runs::channel(Arc::clone(&books));
        let (outcomes, completion_inbox) = Outcomes::channel(Arc::clone(&books));
        let mut kinds: Vec<String> = registry.kinds().map(str::to_owned).collect();
        kinds.sort();
        let lane = Arc::new(Lane::default());
        let runner = Runner {
            registry,
            queues: Arc::clone(&queues),
            outcomes,
            lane: Arc::clone(&lane),
            events: Arc::clone(&events),
        };
        let executor = Executor {
            runs: runs_inbox,
            runner: Arc::new(runner),
            grace: config.grace,
            hard_stop: stops.hard_stop.clone(),
            owner: Arc::clone(&owner),
        };
        let completer = Completer {
            inbox: completion_inbox,
            client: client.clone(),
            owner: Arc::clone(&owner),
            lease_ttl: config.lease_ttl,
            finish_batch: config.finish_batch,
            books: Arc::clone(&books),
            hooks: Arc::clone(&hooks),
            queues: Arc::clone(&queues),
            events: Arc::clone(&events),
        };
        let run_env = Arc::new(RunEnv {
            shutdown: stops.shutdown.clone(),
            hard_stop: stops.hard_stop.clone(),
            client: client.clone(),
            lease_ttl: config.lease_ttl,
            checkpoint_interval: config.checkpoint_interval,
        });
        Parts {
            client,
            owner,
            queues,
            books,
            stops,
            hooks,
            events,
            runs,
            executor,
            completer,
            run_env,
            kinds: kinds.into(),
            lane,
            unknown_kinds: Arc::default(),
        }
    }

    /// The quarantine child: suspects, one at a time, alone.
    fn quarantine(&self, config: &PoolConfig) -> Quarantine {
        Quarantine {
            client: self.client.clone(),
            owner: Arc::clone(&self.owner),
            kinds: Arc::clone(&self.kinds),
            queues: Arc::clone(&self.queues),
            poll_interval: config.poll_interval,
            stop_fetching: self.stops.stop_fetching.clone(),
            run_env: Arc::clone(&self.run_env),
            books: Arc::clone(&self.books),
            runner: Arc::clone(&self.executor.runner),
        }
    }

    /// What a [`Pool`](super::Pool) handle of this incarnation holds besides its supervisor.
    pub(super) fn view(&self, config: &PoolConfig) -> PoolView {
        PoolView {
            client: self.client.clone(),
            worker_id: Arc::clone(&self.owner),
            books: Arc::clone(&self.books),
            stops: self.stops.clone(),
            hooks: Arc::clone(&self.hooks),
            events: Arc::clone(&self.events),
            unknown_kinds: Arc::clone(&self.unknown_kinds),
            shutdown_timeout: config.shutdown_timeout,
        }
    }

    /// The pool's supervision tree (see the module docs), each child given its parts.
    ///
    /// Its last child, the [`Lifecycle`], announces each start to `announce` (for a pool
    /// nested in an application's tree) and starts the shutdown when the tree stops.
    pub(super) fn tree(
        &self,
        config: &PoolConfig,
        announce: Option<Announcer>,
    ) -> Result<supervisor::SupervisorSpec, PoolError> {
        let quick = Duration::from_secs(1);
        let flush_bound = config
            .shutdown_timeout
            .saturating_sub(config.grace)
            .max(quick);
        let heartbeat = Heartbeat {
            books: Arc::clone(&self.books),
            client: self.client.clone(),
            owner: Arc::clone(&self.owner),
            lease_ttl: config.lease_ttl,
            interval: config.heartbeat_interval,
        };
        let rescuer = Rescuer {
            client: self.client.clone(),
            max_rescues: config.max_rescues,
            interval: config.rescue_interval,
            queues: Arc::clone(&self.queues),
            hooks: Arc::clone(&self.hooks),
            events: Arc::clone(&self.events),
        };
        let scheduler = Scheduler {
            client: self.client.clone(),
            promote_interval: config.promote_interval,
            queue_depth_interval: config.queue_depth_interval,
            queues: Arc::clone(&self.queues),
            kinds: Arc::clone(&self.kinds),
            unknown_kind_ttl: config.unknown_kind_ttl,
            unknown_kinds: Arc::clone(&self.unknown_kinds),
            hooks: Arc::clone(&self.hooks),
        };
        let pruner = Pruner {
            client: self.client.clone(),
            retention: config.retention,
        };
        let listener = Listener {
            client: self.client.clone(),
            queues: Arc::clone(&self.queues),
        };
        let executor_bound = config.grace + executor::ABORT_DRAIN + quick;
        let mut builder = Supervisor::builder(crate::pool::POOL_SUPERVISOR)
            .strategy(Strategy::OneForOne)
            .intensity(config.intensity)
            .restart_policy(RestartPolicy::Backoff(config.restart_backoff.clone()))
            .child(child(
                "completer".into(),
                flush_bound,
                self.completer.clone(),
                Completer::run,
            ))
            .child(child("heartbeat".into(), quick, heartbeat, Heartbeat::run))
            .child(child("rescuer".into(), quick, rescuer, Rescuer::run))
            .child(child("scheduler".into(), quick, scheduler, Scheduler::run))
            .child(child("pruner".into(), quick, pruner, Pruner::run))
            .child(child("listener".into(), quick, listener, Listener::run))
            .child(child(
                "executor".into(),
                executor_bound,
                self.executor.clone(),
                Executor::run,
            ))
            .child(child(
                "quarantine".into(),
                executor_bound,
                self.quarantine(config),
                Quarantine::run,
            ));
        for queue in self.queues.all() {
            let fetcher = Fetcher {
                queue: Arc::clone(queue),
                client: self.client.clone(),
                owner: Arc::clone(&self.owner),
                claim: ClaimSettings {
                    claim_batch: config.claim_batch,
                    prefetch: config.prefetch,
                    prefetch_max_job_time: config.prefetch_max_job_time,
                },
                kinds: Arc::clone(&self.kinds),
                lane: Arc::clone(&self.lane),
                poll_interval: config.poll_interval,
                stop_fetching: self.stops.stop_fetching.clone(),
                run_env: Arc::clone(&self.run_env),
                books: Arc::clone(&self.books),
                runs: self.runs.clone(),
            };
            let id = format!("fetcher:{}", queue.name);
            builder = builder.child(child(id, quick, fetcher, Fetcher::run));
        }
        let supervisor = Arc::new(OnceLock::new());
        let lifecycle = Lifecycle {
            view: self.view(config),
            supervisor: Arc::clone(&supervisor),
            announce,
        };
        builder
            .on_start(move |handle| {
                // one tree per incarnation (see `PoolSpec::child_spec`), so this runs once
                let _ = supervisor.set(handle.clone());
            })
            .child(child(
                LIFECYCLE_CHILD.into(),
                quick,
                lifecycle,
                Lifecycle::run,
            ))
            .build()
            .map_err(PoolError::Spec)
    }
}
