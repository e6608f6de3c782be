//! Declaring a supervisor: strategy, limits, children; validated up front.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::flags::Flags;
use crate::{
    ChildContext, ChildError, ChildKind, ChildSpec, Intensity, Restart, RestartPolicy, SpecError,
    StartError, SupervisorHandle,
};

/// Which children a supervisor restarts when one of them exits and must be restarted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that exited. The default.
    #[default]
    OneForOne,
    /// All children: the others are stopped in reverse start order, then all are started
    /// again in start order.
    OneForAll,
    /// The child that exited and every child started after it: those are stopped in reverse
    /// start order, then started again in start order.
    RestForOne,
}

/// When the exit of significant children shuts the supervisor down (OTP's `auto_shutdown`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AutoShutdown {
    /// Never; significant children are not allowed. The default.
    #[default]
    Never,
    /// When any significant child exits by itself and is not restarted.
    AnySignificant,
    /// When all significant children have exited by themselves and are not restarted.
    AllSignificant,
}

/// Called with the supervisor's handle every time it starts (before its children start).
pub type OnStart = Arc<dyn Fn(&SupervisorHandle) + Send + Sync>;

/// Entry point: [`Supervisor::builder`].
#[derive(Debug)]
pub struct Supervisor;

impl Supervisor {
    /// Starts declaring a supervisor with this id.
    pub fn builder(id: impl Into<String>) -> SupervisorBuilder {
        SupervisorBuilder {
            spec: SpecInner {
                flags: Flags::new(id),
                strategy: Strategy::default(),
                auto_shutdown: AutoShutdown::default(),
                children: Vec::new(),
                on_start: None,
            },
        }
    }
}

/// Builds a [`SupervisorSpec`]; see [`Supervisor::builder`].
#[must_use = "a builder does nothing until `build()`"]
pub struct SupervisorBuilder {
    spec: SpecInner,
}

#[derive(Clone)]
pub(crate) struct SpecInner {
    pub(crate) flags: Flags,
    pub(crate) strategy: Strategy,
    pub(crate) auto_shutdown: AutoShutdown,
    pub(crate) children: Vec<ChildSpec>,
    pub(crate) on_start: Option<OnStart>,
}

impl SupervisorBuilder {
    /// Sets the restart strategy (default [`Strategy::OneForOne`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.spec.strategy = strategy;
        self
    }

    /// Sets the restart intensity (default 1 restart in 5 s, as in OTP).
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.spec.flags.intensity = intensity;
        self
    }

    /// Sets the delay before restarts (default [`RestartPolicy::Immediate`]).
    pub fn restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.spec.flags.restart_policy = policy;
        self
    }

    /// Sets auto-shutdown on significant children (default [`AutoShutdown::Never`]).
    pub fn auto_shutdown(mut self, auto_shutdown: AutoShutdown) -> Self {
        self.spec.auto_shutdown = auto_shutdown;
        self
    }

    /// Adds a child; children start in the order they are added.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.spec.children.push(child);
        self
    }

    /// Adds several children, in order.
    pub fn children(mut self, children: impl IntoIterator<Item = ChildSpec>) -> Self {
        self.spec.children.extend(children);
        self
    }

    /// Sets how many events a slow subscriber may fall behind by (default 1024).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.spec.flags.event_capacity = capacity;
        self
    }

    /// Sets how long to wait for an aborted child's task to finish before reporting it as
    /// not stopped (default 100 ms). Only a child blocking its thread ever needs it.
    pub fn abort_grace(mut self, grace: Duration) -> Self {
        self.spec.flags.abort_grace = grace;
        self
    }

    /// Registers a callback given the supervisor's handle each time it starts, before its
    /// children start; use it to reach a nested supervisor.
    pub fn on_start(mut self, f: impl Fn(&SupervisorHandle) + Send + Sync + 'static) -> Self {
        self.spec.on_start = Some(Arc::new(f));
        self
    }

    /// Validates the declaration.
    ///
    /// # Errors
    ///
    /// [`SpecError`] for an empty or duplicate id, a zero intensity period or event capacity,
    /// a significant permanent child, or significant children without auto-shutdown.
    pub fn build(self) -> Result<SupervisorSpec, SpecError> {
        let s = &self.spec;
        s.flags.validate()?;
        let mut seen = HashSet::new();
        for child in &s.children {
            validate_child(&s.flags.id, s.auto_shutdown, child)?;
            if !seen.insert(child.id()) {
                return Err(SpecError::DuplicateChildId {
                    supervisor: s.flags.id.to_string(),
                    child: child.id().to_owned(),
                });
            }
        }
        Ok(SupervisorSpec {
            inner: Arc::new(self.spec),
        })
    }
}

/// Checks one child against its supervisor's settings (ids are checked by the caller).
pub(crate) fn validate_child(
    supervisor: &str,
    auto_shutdown: AutoShutdown,
    child: &ChildSpec,
) -> Result<(), SpecError> {
    let err_child = || child.id().to_owned();
    if child.id().is_empty() {
        return Err(SpecError::EmptyId {
            supervisor: supervisor.to_owned(),
        });
    }
    if !child.is_significant() {
        return Ok(());
    }
    if child.restart_type() == Restart::Permanent {
        return Err(SpecError::SignificantPermanent {
            supervisor: supervisor.to_owned(),
            child: err_child(),
        });
    }
    if auto_shutdown == AutoShutdown::Never {
        return Err(SpecError::SignificantWithoutAutoShutdown {
            supervisor: supervisor.to_owned(),
            child: err_child(),
        });
    }
    Ok(())
}

/// A validated supervisor declaration. Cheap to clone; start it with
/// [`SupervisorSpec::start`] or nest it with [`ChildSpec::supervisor`].
#[derive(Clone)]
#[must_use = "a spec does nothing until started or nested"]
pub struct SupervisorSpec {
    pub(crate) inner: Arc<SpecInner>,
}

impl SupervisorSpec {
    /// The supervisor's id.
    pub fn id(&self) -> &str {
        &self.inner.flags.id
    }

    /// Starts the supervisor on the current tokio runtime: its children start in order, each
    /// after the previous one is ready. Resolves once all are ready.
    ///
    /// # Errors
    ///
    /// [`StartError`] naming the child that failed to start; the children started before it
    /// have been stopped (in reverse order) by then.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future leaves the supervisor running with no handle.
    pub async fn start(&self) -> Result<SupervisorHandle, StartError> {
        crate::runtime::start_top_level(self.clone()).await
    }

    /// Runs this supervisor as the child that `ctx` was given to, exactly as
    /// [`ChildSpec::supervisor`] does on every start: it signals `ctx.ready()` once its own
    /// children have all started, stops them when `ctx` is cancelled, and ends as a nested
    /// supervisor ends (past its intensity: [`ExitReason::Escalated`](crate::ExitReason::Escalated)).
    ///
    /// For a child factory that builds a fresh spec, and fresh state, on every (re)start.
    /// Declare that child as a supervisor that signals readiness:
    ///
    /// ```
    /// use supervisor::{ChildContext, ChildKind, ChildSpec, Supervisor};
    ///
    /// let child = ChildSpec::new("workers", |ctx: ChildContext| async move {
    ///     let worker = ChildSpec::new("worker", |ctx: ChildContext| async move {
    ///         ctx.cancelled().await;
    ///         Ok(())
    ///     });
    ///     let spec = Supervisor::builder("workers").child(worker).build()?;
    ///     spec.run_as_child(ctx).await
    /// })
    /// .kind(ChildKind::Supervisor)
    /// .wait_for_ready();
    /// # let _ = child;
    /// ```
    ///
    /// # Errors
    ///
    /// As a nested supervisor's exit: [`ChildError`] for a start that failed or an escalation.
    pub async fn run_as_child(self, ctx: ChildContext) -> Result<(), ChildError> {
        crate::runtime::run_nested(self, ctx).await
    }
}

impl fmt::Debug for SupervisorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner;
        let ids: Vec<&str> = s.children.iter().map(ChildSpec::id).collect();
        f.debug_struct("SupervisorSpec")
            .field("id", &s.flags.id)
            .field("strategy", &s.strategy)
            .field("intensity", &s.flags.intensity)
            .field("restart_policy", &s.flags.restart_policy)
            .field("auto_shutdown", &s.auto_shutdown)
            .field("children", &ids)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SupervisorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorBuilder")
            .field("id", &self.spec.flags.id)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A nested supervisor as a child: its id is the nested spec's id, its kind
    /// [`ChildKind::Supervisor`], its shutdown `Shutdown::Infinity`, and it is ready once its
    /// own children have all started. When it gives up (restart intensity) its exit is
    /// [`ExitReason::Escalated`](crate::ExitReason::Escalated): a permanent nested supervisor
    /// is restarted, counting toward this supervisor's intensity, so failure climbs the tree.
    pub fn supervisor(spec: SupervisorSpec) -> Self {
        let id = spec.inner.flags.id.clone();
        let factory: crate::spec::Factory = Arc::new(move |ctx: ChildContext| {
            let spec = spec.clone();
            Box::pin(async move { crate::runtime::run_nested(spec, ctx).await })
        });
        Self::from_factory(id, factory, ChildKind::Supervisor)
    }
}
