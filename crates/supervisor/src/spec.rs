//! Child specifications: what to start, and how to restart and stop it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::{ChildContext, ChildError, RestartPolicy};

/// When a child is restarted after it exits (Erlang/OTP meaning).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Restart {
    /// Always restarted. The default.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (error, panic, kill); a normal or shutdown exit
    /// leaves it terminated (its spec is kept).
    Transient,
    /// Never restarted; removed from the supervisor when it exits.
    Temporary,
}

/// How a child is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Abort at once, without cancelling its token first.
    BrutalKill,
    /// Cancel its token, let it linger up to this long, then abort it.
    Timeout(Duration),
    /// Cancel its token and wait as long as it takes (the default for supervisor children).
    Infinity,
}

impl Default for Shutdown {
    /// 5 seconds, as in Erlang/OTP for workers.
    fn default() -> Self {
        Self::Timeout(Duration::from_secs(5))
    }
}

/// Whether a child is a worker or a supervisor (informational, as in OTP; it sets the
/// default shutdown and appears in `count_children`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChildKind {
    /// A worker. The default.
    #[default]
    Worker,
    /// A supervisor.
    Supervisor,
}

pub(crate) type Factory =
    Arc<dyn Fn(ChildContext) -> BoxFuture<'static, Result<(), ChildError>> + Send + Sync>;

/// A child specification: an id plus a start factory, called on every (re)start.
///
/// Cheap to clone (one `Arc`). Defaults: [`Restart::Permanent`], `Shutdown::Timeout(5 s)`
/// (`Shutdown::Infinity` for supervisors), [`ChildKind::Worker`], not significant, ready as
/// soon as spawned, the supervisor's restart policy.
///
/// ```
/// use std::time::Duration;
/// use supervisor::{ChildContext, ChildSpec, Restart, Shutdown};
///
/// let spec = ChildSpec::new("ticker", |ctx: ChildContext| async move {
///     ctx.cancelled().await; // work until asked to stop
///     Ok(())
/// })
/// .restart(Restart::Transient)
/// .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
/// assert_eq!(spec.id(), "ticker");
/// ```
#[derive(Clone)]
#[must_use = "a child spec does nothing until a supervisor starts it"]
pub struct ChildSpec {
    inner: Arc<SpecInner>,
    /// `None` once a temporary child has started: it never starts again, so its supervisor
    /// drops what the factory captured (as OTP drops a temporary child's start arguments).
    factory: Option<Factory>,
}

#[derive(Clone)]
pub(crate) struct SpecInner {
    pub(crate) id: Arc<str>,
    pub(crate) restart: Restart,
    /// `None`: the default for `kind` (see [`ChildSpec::shutdown_policy`]).
    shutdown: Option<Shutdown>,
    pub(crate) kind: ChildKind,
    pub(crate) significant: bool,
    pub(crate) wait_ready: bool,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) restart_policy: Option<RestartPolicy>,
    pub(crate) lifecycle: Option<Arc<dyn Lifecycle>>,
}

/// Told when a child stops for good (its mailbox, to fail senders and drop what is buffered).
pub(crate) trait Lifecycle: Send + Sync {
    /// The child will not run again unless restarted by hand: it was terminated, a
    /// temporary or transient child ended for good, or its supervisor ended.
    fn stopped(&self);
}

impl ChildSpec {
    /// A worker with this id whose future `factory(ctx)` builds. The factory runs inside the
    /// child's task, so a panic in it is caught like a panic in the future.
    pub fn new<F, Fut>(id: impl Into<String>, factory: F) -> Self
    where
        F: Fn(ChildContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ChildError>> + Send + 'static,
    {
        let factory: Factory = Arc::new(move |ctx| Box::pin(factory(ctx)));
        Self::from_factory(Arc::from(id.into()), factory, ChildKind::Worker)
    }

    pub(crate) fn from_factory(id: Arc<str>, factory: Factory, kind: ChildKind) -> Self {
        let inner = SpecInner {
            id,
            restart: Restart::Permanent,
            shutdown: None,
            kind,
            significant: false,
            wait_ready: kind == ChildKind::Supervisor,
            start_timeout: None,
            restart_policy: None,
            lifecycle: None,
        };
        Self {
            inner: Arc::new(inner),
            factory: Some(factory),
        }
    }

    /// The child stopped for good: tell its mailbox (a supervisor's record of a child calls
    /// this when the child is terminated for good and when the record is dropped).
    pub(crate) fn stopped_for_good(&self) {
        if let Some(l) = &self.inner.lifecycle {
            l.stopped();
        }
    }

    pub(crate) fn with_lifecycle(self, lifecycle: Arc<dyn Lifecycle>) -> Self {
        self.edit(|s| s.lifecycle = Some(lifecycle))
    }

    fn edit(mut self, f: impl FnOnce(&mut SpecInner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Sets when the child is restarted (default [`Restart::Permanent`]).
    pub fn restart(self, restart: Restart) -> Self {
        self.edit(|s| s.restart = restart)
    }

    /// Sets how the child is stopped (default 5 s for workers, infinity for supervisors).
    pub fn shutdown(self, shutdown: Shutdown) -> Self {
        self.edit(|s| s.shutdown = Some(shutdown))
    }

    /// Sets the kind (set for you by [`ChildSpec::supervisor`]). Unless a shutdown was set
    /// explicitly, the kind's default follows: `Shutdown::Infinity` for supervisors.
    pub fn kind(self, kind: ChildKind) -> Self {
        self.edit(|s| s.kind = kind)
    }

    /// Marks the child significant: its exit (when not restarted) can trigger the
    /// supervisor's auto-shutdown. Only transient and temporary children may be significant.
    pub fn significant(self, significant: bool) -> Self {
        self.edit(|s| s.significant = significant)
    }

    /// Declares that the child signals readiness with [`ChildContext::ready`]; the supervisor
    /// starts the next child only then. Without it a child is ready once spawned.
    pub fn wait_for_ready(self) -> Self {
        self.edit(|s| s.wait_ready = true)
    }

    /// Fails the start if a child declared with [`ChildSpec::wait_for_ready`] is not ready
    /// within `timeout` (default: no limit).
    pub fn start_timeout(self, timeout: Duration) -> Self {
        self.edit(|s| s.start_timeout = Some(timeout))
    }

    /// Overrides the supervisor's restart policy (delay / backoff) for this child.
    pub fn restart_policy(self, policy: RestartPolicy) -> Self {
        self.edit(|s| s.restart_policy = Some(policy))
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The restart type.
    pub fn restart_type(&self) -> Restart {
        self.inner.restart
    }

    /// The shutdown policy: the one set, or the kind's default.
    pub fn shutdown_policy(&self) -> Shutdown {
        self.inner.shutdown.unwrap_or(match self.inner.kind {
            ChildKind::Worker => Shutdown::default(),
            ChildKind::Supervisor => Shutdown::Infinity,
        })
    }

    /// The kind.
    pub fn child_kind(&self) -> ChildKind {
        self.inner.kind
    }

    /// Whether the child is significant.
    pub fn is_significant(&self) -> bool {
        self.inner.significant
    }

    pub(crate) fn inner(&self) -> &SpecInner {
        &self.inner
    }

    /// What builds the child's future; `None` after [`ChildSpec::started`] on a temporary
    /// child.
    pub(crate) fn factory(&self) -> Option<Factory> {
        self.factory.clone()
    }

    /// The child has started: a temporary one never starts again, so its factory goes.
    pub(crate) fn started(&mut self) {
        if self.inner.restart == Restart::Temporary {
            self.factory = None;
        }
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner;
        f.debug_struct("ChildSpec")
            .field("id", &s.id)
            .field("restart", &s.restart)
            .field("shutdown", &self.shutdown_policy())
            .field("kind", &s.kind)
            .field("significant", &s.significant)
            .field("wait_ready", &s.wait_ready)
            .field("start_timeout", &s.start_timeout)
            .field("restart_policy", &s.restart_policy)
            .finish_non_exhaustive()
    }
}
