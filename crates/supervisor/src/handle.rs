//! The cloneable handle to a running (static) supervisor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::end::Ending;
use crate::events::Emitter;
use crate::flags::Flags;
use crate::tree::{self, RawNode, SupervisorTree, TreeKind};
use crate::{ChildKind, ChildSpec, Event, Restart, ShutdownReport, SupervisorError};

/// A child's state as reported by `which_children`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildState {
    /// Running and ready.
    Running,
    /// Spawned, waiting for it to signal readiness.
    Starting,
    /// A (delayed) restart is pending.
    Restarting,
    /// Asked to stop, lingering within its shutdown bound (dynamic supervisors only: a
    /// static supervisor serves no calls while it stops a child).
    Stopping,
    /// Not running; its spec is kept (`restart_child` starts it again).
    Terminated,
}

/// One entry of `which_children`.
#[derive(Clone, Debug)]
pub struct ChildInfo {
    /// The child's id.
    pub id: Arc<str>,
    /// The instance id, under a dynamic supervisor.
    pub instance: Option<crate::ChildId>,
    /// Its state.
    pub state: ChildState,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart type.
    pub restart: Restart,
    /// How many times it has been restarted.
    pub restarts: u32,
}

/// The answer of `count_children` (OTP's `count_children/1`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChildCounts {
    /// All children, running or not.
    pub specs: usize,
    /// Children that are running (ready or starting).
    pub active: usize,
    /// Children of kind supervisor, running or not.
    pub supervisors: usize,
    /// Children of kind worker, running or not.
    pub workers: usize,
}

pub(crate) type Reply<T> = oneshot::Sender<T>;

pub(crate) enum Msg {
    StartChild(ChildSpec, Reply<Result<(), SupervisorError>>),
    TerminateChild(String, Reply<Result<(), SupervisorError>>),
    RestartChild(String, Reply<Result<(), SupervisorError>>),
    DeleteChild(String, Reply<Result<(), SupervisorError>>),
    WhichChildren(Reply<Vec<ChildInfo>>),
    CountChildren(Reply<ChildCounts>),
    Tree(Reply<(TreeKind, Vec<RawNode>)>),
    Shutdown(Reply<ShutdownReport>),
}

/// The supervisor's final state, published once it has ended.
pub(crate) type ExitSlot = Option<ShutdownReport>;

/// What a supervisor's task holds to serve its handles: their calls, its events, its ending,
/// and the kill switch every handle can pull.
pub(crate) struct Serving<M> {
    pub(crate) calls: mpsc::UnboundedReceiver<M>,
    pub(crate) emitter: Emitter,
    pub(crate) ending: Ending,
    pub(crate) kill: CancellationToken,
}

/// Connects a new supervisor's handle side ([`Core`]) to its task's side ([`Serving`]).
pub(crate) fn connect<M>(flags: &Flags) -> (Core<M>, Serving<M>) {
    let id = flags.id.clone();
    let (tx, calls) = mpsc::unbounded_channel();
    let (slot, exit) = watch::channel(None);
    let emitter = Emitter::new(id.clone(), flags.event_capacity);
    let kill = CancellationToken::new();
    let core = Core {
        id: id.clone(),
        tx,
        exit,
        events: emitter.sender().downgrade(),
        kill: kill.clone(),
    };
    let serving = Serving {
        calls,
        emitter,
        ending: Ending::new(id, slot),
        kill,
    };
    (core, serving)
}

/// What both handle kinds share: the command channel, the final report, events, kill.
pub(crate) struct Core<M> {
    pub(crate) id: Arc<str>,
    tx: mpsc::UnboundedSender<M>,
    exit: watch::Receiver<ExitSlot>,
    events: broadcast::WeakSender<Event>,
    kill: CancellationToken,
}

impl<M> Core<M> {
    pub(crate) fn gone(&self) -> SupervisorError {
        SupervisorError::Gone {
            supervisor: self.id.to_string(),
        }
    }

    /// Sends without waiting for an answer; gives the message back if the supervisor is gone.
    pub(crate) fn send(&self, msg: M) -> Result<(), M> {
        self.tx.send(msg).map_err(|e| e.0)
    }

    pub(crate) async fn call<T>(
        &self,
        msg: impl FnOnce(Reply<T>) -> M,
    ) -> Result<T, SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(msg(tx)).map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        match self.events.upgrade() {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    pub(crate) fn kill(&self) {
        self.kill.cancel();
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.tx.is_closed()
    }

    pub(crate) async fn final_report(&self) -> ShutdownReport {
        let mut rx = self.exit.clone();
        let result = rx.wait_for(Option::is_some).await;
        match result.as_deref() {
            Ok(Some(report)) => report.clone(),
            _ => {
                let mut report = ShutdownReport::new(self.id.clone());
                report.exit = Err(self.gone());
                report
            }
        }
    }

    /// Orderly shutdown through `msg`, escalating to a kill after `bound` if given.
    pub(crate) async fn shutdown(
        &self,
        msg: impl FnOnce(Reply<ShutdownReport>) -> M,
        bound: Option<Duration>,
    ) -> ShutdownReport {
        let orderly = async {
            match self.call(msg).await {
                Ok(report) => report,
                Err(_) => self.final_report().await,
            }
        };
        tokio::pin!(orderly);
        let Some(bound) = bound else {
            return orderly.await;
        };
        tokio::select! {
            report = &mut orderly => report,
            () = tokio::time::sleep(bound) => {
                self.kill();
                orderly.await
            }
        }
    }
}

/// A handle to a running supervisor: cheap to clone, usable from any task.
///
/// Every call is a message to the supervisor's task. Calls on a supervisor that has ended
/// return [`SupervisorError::Gone`] (they never hang); `shutdown` and `wait` return its
/// final outcome. Dropping every handle does not stop the supervisor.
#[derive(Clone)]
pub struct SupervisorHandle {
    inner: Arc<Core<Msg>>,
}

impl SupervisorHandle {
    pub(crate) fn new(core: Core<Msg>) -> Self {
        Self {
            inner: Arc::new(core),
        }
    }

    /// The supervisor's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    async fn call<T>(&self, msg: impl FnOnce(Reply<T>) -> Msg) -> Result<T, SupervisorError> {
        self.inner.call(msg).await
    }

    /// Adds a child at the end of the start order and starts it; resolves once it is ready.
    ///
    /// # Errors
    ///
    /// `ChildAlreadyStarted` (a child with this id runs, starts or restarts),
    /// `ChildAlreadyPresent` (one is terminated, its spec kept), `Spec` (invalid spec),
    /// `Start` (it failed to start; it is not kept), `ShuttingDown`, `Gone`.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<(), SupervisorError> {
        self.call(|r| Msg::StartChild(spec, r)).await?
    }

    /// Stops a child with its shutdown policy, or cancels its pending restart. Its spec is
    /// kept (except for temporary children), so `restart_child` can start it again.
    ///
    /// # Errors
    ///
    /// `UnknownChild`, `ChildNotStopped` (it could not be stopped and was detached), `Gone`.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.call(|r| Msg::TerminateChild(id.to_owned(), r)).await?
    }

    /// Starts a terminated child again; resolves once it is ready.
    ///
    /// # Errors
    ///
    /// `UnknownChild`, `ChildRunning`, `ChildRestarting`, `Start`, `ShuttingDown`, `Gone`.
    pub async fn restart_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.call(|r| Msg::RestartChild(id.to_owned(), r)).await?
    }

    /// Removes a terminated child's spec.
    ///
    /// # Errors
    ///
    /// `UnknownChild`, `ChildRunning`, `ChildRestarting`, `Gone`.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.call(|r| Msg::DeleteChild(id.to_owned(), r)).await?
    }

    /// Lists the children in start order with their states.
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.call(Msg::WhichChildren).await
    }

    /// Counts the children.
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        self.call(Msg::CountChildren).await
    }

    /// The whole tree under this supervisor, recursively: every supervisor and child with
    /// its state, restarts, last exit reason, uptime and pending restart delay. `Display`
    /// renders it as an indented tree. A nested supervisor that has ended meanwhile shows
    /// without children.
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn tree(&self) -> Result<SupervisorTree, SupervisorError> {
        let (kind, raw) = self.call(Msg::Tree).await?;
        Ok(tree::assemble(self.inner.id.clone(), kind, raw).await)
    }

    /// Subscribes to the supervisor's events. On a supervisor that has ended the receiver
    /// reports `Closed` at once.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.subscribe()
    }

    /// Stops every child in reverse start order, each with its shutdown policy (pending
    /// restarts are cancelled at once), ends the supervisor, and reports what happened.
    ///
    /// Idempotent: every call, including calls after the supervisor ended for another
    /// reason, returns the same final report.
    ///
    /// A child must not await the shutdown of its own supervisor (or of an ancestor): the
    /// supervisor waits for that child to stop while the child waits for the supervisor.
    /// Spawn the call on another task instead, or return from the child.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the shutdown proceeds even if this future is dropped.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.inner.shutdown(Msg::Shutdown, None).await
    }

    /// Like [`shutdown`](Self::shutdown), but if the orderly shutdown has not finished within
    /// `bound`, kills: aborts every remaining child at once.
    pub async fn shutdown_within(&self, bound: Duration) -> ShutdownReport {
        self.inner.shutdown(Msg::Shutdown, Some(bound)).await
    }

    /// Hard stop: aborts every child at once (a shutdown in progress switches to aborting)
    /// and ends the supervisor. Use `shutdown` or `wait` for the report.
    pub fn kill(&self) {
        self.inner.kill();
    }

    /// Waits until the supervisor has ended for any reason and returns how: `Ok` after a
    /// shutdown or auto-shutdown, `Err` after an escalation such as restart intensity.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait(&self) -> Result<(), SupervisorError> {
        self.inner.final_report().await.exit
    }

    /// True once the supervisor has ended.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl fmt::Debug for SupervisorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorHandle")
            .field("id", &self.inner.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}
