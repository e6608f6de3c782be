//! The cloneable handle to a running dynamic supervisor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::builder::check_spec;
use super::shared::{Refused, Shared};
use crate::child::{self, Exit, Run, RunKey};
use crate::handle::{ChildCounts, ChildInfo, Core, Reply};
use crate::tree::{self, RawNode, SupervisorTree, TreeKind};
use crate::{ChildContext, ChildId, ChildSpec, Event, ShutdownReport, SupervisorError};

pub(crate) enum DynMsg {
    StartChild(ChildSpec, Reply<Result<ChildId, SupervisorError>>),
    Adopt(u64, ChildSpec, Run),
    TerminateChild(ChildId, Reply<Result<(), SupervisorError>>),
    WhichChildren(Reply<Vec<ChildInfo>>),
    CountChildren(Reply<ChildCounts>),
    Tree(Reply<Vec<RawNode>>),
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

    /// Whether this supervisor issued `id`.
    pub(crate) fn issued(&self, id: ChildId) -> bool {
        self.inner.shared.number(id).is_some()
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

    /// The whole tree under this supervisor, recursively (see
    /// [`SupervisorHandle::tree`](crate::SupervisorHandle::tree)).
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn tree(&self) -> Result<SupervisorTree, SupervisorError> {
        let raw = self.inner.core.call(DynMsg::Tree).await?;
        let id = self.inner.core.id.clone();
        Ok(tree::assemble(id, TreeKind::Dynamic, raw).await)
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
