//! The dynamic supervisor (OTP `simple_one_for_one`, Elixir `DynamicSupervisor`).

mod actor;
mod shared;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::child::{self, Exit, Run, RunKey};
use shared::{Refused, Shared};

use crate::handle::{ChildCounts, ChildInfo, Core, Reply};
use crate::{
    ChildContext, ChildId, ChildKind, ChildSpec, Event, Intensity, RestartPolicy, ShutdownReport,
    SpecError, StartError, SupervisorError,
};

/// Entry point: [`DynamicSupervisor::builder`].
///
/// A dynamic supervisor starts with no children and runs many children added at run time
/// through its [`DynamicHandle`], each restarted on its own (one_for_one) under one shared
/// restart intensity. Children are light (one tokio task each, a few hundred bytes of
/// bookkeeping) and are stopped concurrently: shutting down 1,000 children with a 25 s grace
/// takes about 25 s, not 1,000 times that.
///
/// ```
/// use supervisor::{ChildContext, ChildSpec, DynamicSupervisor, Restart};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = DynamicSupervisor::builder("pool").max_children(100).build()?.start().await?;
/// let worker = ChildSpec::new("worker", |ctx: ChildContext| async move {
///     ctx.cancelled().await;
///     Ok(())
/// })
/// .restart(Restart::Temporary);
/// let first = pool.start_child(worker.clone()).await?;
/// pool.start_child(worker).await?;
/// assert_eq!(pool.count_children().await?.active, 2);
/// pool.terminate_child(first).await?;
/// assert!(pool.shutdown().await.is_clean());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DynamicSupervisor;

impl DynamicSupervisor {
    /// Starts declaring a dynamic supervisor with this id.
    pub fn builder(id: impl Into<String>) -> DynamicSupervisorBuilder {
        DynamicSupervisorBuilder {
            spec: DynInner {
                id: Arc::from(id.into()),
                max_children: None,
                intensity: Intensity::default(),
                restart_policy: RestartPolicy::default(),
                event_capacity: 1024,
                abort_grace: Duration::from_millis(100),
                on_start: None,
            },
        }
    }
}

/// Called with the dynamic supervisor's handle every time it starts.
pub type OnDynamicStart = Arc<dyn Fn(&DynamicHandle) + Send + Sync>;

#[derive(Clone)]
pub(crate) struct DynInner {
    pub(crate) id: Arc<str>,
    pub(crate) max_children: Option<usize>,
    pub(crate) intensity: Intensity,
    pub(crate) restart_policy: RestartPolicy,
    pub(crate) event_capacity: usize,
    pub(crate) abort_grace: Duration,
    pub(crate) on_start: Option<OnDynamicStart>,
}

/// Builds a [`DynamicSupervisorSpec`]; see [`DynamicSupervisor::builder`].
pub struct DynamicSupervisorBuilder {
    spec: DynInner,
}

impl DynamicSupervisorBuilder {
    /// Limits the number of children (running or restarting); default: no limit.
    pub fn max_children(mut self, max: usize) -> Self {
        self.spec.max_children = Some(max);
        self
    }

    /// Sets the restart intensity shared by all children (default 1 restart in 5 s).
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.spec.intensity = intensity;
        self
    }

    /// Sets the delay before restarts (default [`RestartPolicy::Immediate`]).
    pub fn restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.spec.restart_policy = policy;
        self
    }

    /// Sets how many events a slow subscriber may fall behind by (default 1024).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.spec.event_capacity = capacity;
        self
    }

    /// Sets how long to wait for an aborted child's task to finish before reporting it as
    /// not stopped (default 100 ms).
    pub fn abort_grace(mut self, grace: Duration) -> Self {
        self.spec.abort_grace = grace;
        self
    }

    /// Registers a callback given the handle each time the supervisor starts.
    pub fn on_start(mut self, f: impl Fn(&DynamicHandle) + Send + Sync + 'static) -> Self {
        self.spec.on_start = Some(Arc::new(f));
        self
    }

    /// Validates the declaration.
    ///
    /// # Errors
    ///
    /// [`SpecError`] for an empty id, a zero intensity period, `max_children(0)` or a zero
    /// event capacity.
    pub fn build(self) -> Result<DynamicSupervisorSpec, SpecError> {
        let s = &self.spec;
        let supervisor = s.id.to_string();
        if s.id.is_empty() {
            return Err(SpecError::EmptyId { supervisor });
        }
        if s.intensity.period().is_zero() {
            return Err(SpecError::ZeroPeriod { supervisor });
        }
        if s.max_children == Some(0) {
            return Err(SpecError::ZeroMaxChildren { supervisor });
        }
        if s.event_capacity == 0 {
            return Err(SpecError::ZeroEventCapacity { supervisor });
        }
        Ok(DynamicSupervisorSpec {
            inner: Arc::new(self.spec),
        })
    }
}

impl fmt::Debug for DynamicSupervisorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicSupervisorBuilder")
            .field("id", &self.spec.id)
            .finish_non_exhaustive()
    }
}

/// A validated dynamic supervisor declaration; cheap to clone.
#[derive(Clone)]
pub struct DynamicSupervisorSpec {
    pub(crate) inner: Arc<DynInner>,
}

impl DynamicSupervisorSpec {
    /// The supervisor's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Starts the dynamic supervisor (with no children) on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`StartError::Gone`] if its task could not run (the runtime is shutting down).
    pub async fn start(&self) -> Result<DynamicHandle, StartError> {
        actor::start_top_level(self.clone()).await
    }
}

impl fmt::Debug for DynamicSupervisorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner;
        f.debug_struct("DynamicSupervisorSpec")
            .field("id", &s.id)
            .field("max_children", &s.max_children)
            .field("intensity", &s.intensity)
            .field("restart_policy", &s.restart_policy)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A dynamic supervisor as a child of another supervisor: id = the spec's id, kind
    /// supervisor, `Shutdown::Infinity`. Reach its handle with
    /// [`DynamicSupervisorBuilder::on_start`].
    pub fn dynamic(spec: DynamicSupervisorSpec) -> Self {
        let id = spec.inner.id.clone();
        let factory: crate::spec::Factory = Arc::new(move |ctx: ChildContext| {
            let spec = spec.clone();
            Box::pin(async move { actor::run_nested(spec, ctx).await })
        });
        Self::from_factory(id, factory, ChildKind::Supervisor)
    }
}

pub(crate) enum DynMsg {
    StartChild(ChildSpec, Reply<Result<ChildId, SupervisorError>>),
    Adopt(u64, ChildSpec, Run),
    TerminateChild(ChildId, Reply<Result<(), SupervisorError>>),
    WhichChildren(Reply<Vec<ChildInfo>>),
    CountChildren(Reply<ChildCounts>),
    Shutdown(Reply<ShutdownReport>),
}

/// A handle to a running dynamic supervisor: cheap to clone (one `Arc`), usable from any
/// task. Calls on a supervisor that has ended return [`SupervisorError::Gone`].
#[derive(Clone)]
pub struct DynamicHandle {
    inner: Arc<HandleInner>,
}

pub(crate) struct HandleInner {
    core: Core<DynMsg>,
    shared: Arc<Shared>,
    exits: mpsc::UnboundedSender<Exit>,
}

impl DynamicHandle {
    pub(crate) fn new(
        core: Core<DynMsg>,
        shared: Arc<Shared>,
        exits: mpsc::UnboundedSender<Exit>,
    ) -> Self {
        let inner = HandleInner {
            core,
            shared,
            exits,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The supervisor's id.
    pub fn id(&self) -> &str {
        &self.inner.core.id
    }

    /// Starts a child and returns its instance id. Its restart type, shutdown and readiness
    /// come from `spec`; the spec's id need not be unique.
    ///
    /// A child that is ready once spawned (the default) is spawned by this call itself, on
    /// the caller's task, without waiting for the supervisor's task; one declared with
    /// [`ChildSpec::wait_for_ready`] is started by the supervisor, and the call resolves
    /// once it is ready.
    ///
    /// # Errors
    ///
    /// `MaxChildren`, `Spec` (an empty id or a significant child), `Start` (it failed to
    /// start), `ShuttingDown`, `Gone`.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<ChildId, SupervisorError> {
        if spec.inner().wait_ready {
            return self
                .inner
                .core
                .call(|r| DynMsg::StartChild(spec, r))
                .await?;
        }
        self.spawn_child(spec)
    }

    fn spawn_child(&self, mut spec: ChildSpec) -> Result<ChildId, SupervisorError> {
        let inner = &self.inner;
        check_spec(&inner.core.id, &spec)?;
        let factory = spec
            .factory()
            .expect("a caller's spec has its factory: only a supervisor's record loses it");
        let id = inner.shared.reserve().map_err(|r| self.refused(r))?;
        let token = CancellationToken::new();
        let child_id = inner.shared.child_id(id);
        let ctx = ChildContext::new(spec.inner().id.clone(), Some(child_id), 0, token, None);
        let key = RunKey {
            child: id,
            spawn: 0,
        };
        let run = child::spawn_reporting(&spec, factory, ctx, key, inner.exits.clone());
        spec.started();
        if inner.core.send(DynMsg::Adopt(id, spec, run)).is_err() {
            return Err(inner.core.gone()); // the returned message drops the run: aborted
        }
        Ok(child_id)
    }

    fn refused(&self, refused: Refused) -> SupervisorError {
        match refused {
            Refused::Closed if self.inner.core.is_finished() => self.inner.core.gone(),
            refused => refused.into_error(self.inner.core.id.to_string()),
        }
    }

    /// Stops a child with its shutdown policy (or cancels its pending restart) and removes it.
    /// Other calls are served while it lingers. A child of this supervisor that has already
    /// ended (terminated, or a temporary child that exited) answers `Ok`, as in OTP.
    ///
    /// # Errors
    ///
    /// `UnknownChild` (an id this supervisor did not issue), `ChildNotStopped`, `Gone`.
    pub async fn terminate_child(&self, id: ChildId) -> Result<(), SupervisorError> {
        self.inner
            .core
            .call(|r| DynMsg::TerminateChild(id, r))
            .await?
    }

    /// Lists the children (in no particular order).
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.inner.core.call(DynMsg::WhichChildren).await
    }

    /// Counts the children.
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        self.inner.core.call(DynMsg::CountChildren).await
    }

    /// Subscribes to the supervisor's events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.core.subscribe()
    }

    /// Stops all children concurrently, each within its shutdown bound, and ends the
    /// supervisor. Idempotent: every call returns the same final report.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the shutdown proceeds even if this future is dropped.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.inner.core.shutdown(DynMsg::Shutdown, None).await
    }

    /// Like [`shutdown`](Self::shutdown), escalating to a kill after `bound`.
    pub async fn shutdown_within(&self, bound: Duration) -> ShutdownReport {
        self.inner
            .core
            .shutdown(DynMsg::Shutdown, Some(bound))
            .await
    }

    /// Hard stop: aborts every child at once and ends the supervisor.
    pub fn kill(&self) {
        self.inner.core.kill();
    }

    /// Waits until the supervisor has ended and returns how.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait(&self) -> Result<(), SupervisorError> {
        self.inner.core.final_report().await.exit
    }

    /// True once the supervisor has ended.
    pub fn is_finished(&self) -> bool {
        self.inner.core.is_finished()
    }
}

impl fmt::Debug for DynamicHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicHandle")
            .field("id", &self.inner.core.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Rejects child specs a dynamic supervisor cannot run.
pub(crate) fn check_spec(supervisor: &str, spec: &ChildSpec) -> Result<(), SpecError> {
    let supervisor = supervisor.to_owned();
    if spec.id().is_empty() {
        return Err(SpecError::EmptyId { supervisor });
    }
    if spec.is_significant() {
        let child = spec.id().to_owned();
        return Err(SpecError::SignificantDynamicChild { supervisor, child });
    }
    Ok(())
}
