//! Spawning child tasks and reading their exits (shared by both supervisor kinds).

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{panic_message, NotStopped};
use crate::spec::Factory;
use crate::tree::{Nested, NestedSlot};
use crate::{ChildContext, ChildError, ChildKind, ChildSpec, ExitReason};

/// The set of a static supervisor's child tasks; each reports which spawn it was.
pub(crate) type Tasks = JoinSet<(RunKey, Outcome)>;

/// One finished child task, as `JoinSet::join_next_with_id` yields it. A child's panic is
/// caught inside its task, so an `Err` is always an abort.
pub(crate) type Joined = Result<(Id, (RunKey, Outcome)), JoinError>;

/// One spawn of one child: the child (a static supervisor's serial, a dynamic supervisor's
/// child number) and a number unique to this spawn, so that a late readiness signal or exit
/// of an earlier incarnation is never taken for the current one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunKey {
    pub(crate) child: u64,
    pub(crate) spawn: u64,
}

/// A running child's task, owned: dropping the `Run` aborts the task, so a child never
/// outlives the supervisor that holds it (a dynamic child is a detached tokio task).
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) abort: AbortHandle,
    pub(crate) token: CancellationToken,
    pub(crate) key: RunKey,
    pub(crate) ready: bool,
    pub(crate) started_at: Instant,
    /// A supervisor child's handle, once it has started (for the tree).
    pub(crate) nested: Option<NestedSlot>,
}

impl Run {
    fn new(
        abort: AbortHandle,
        token: CancellationToken,
        key: RunKey,
        spec: &ChildSpec,
        nested: Option<NestedSlot>,
    ) -> Self {
        Run {
            abort,
            token,
            key,
            ready: !spec.inner().wait_ready,
            started_at: Instant::now(),
            nested,
        }
    }

    /// The nested supervisor's handle, if this run is a supervisor that has started.
    pub(crate) fn nested(&self) -> Option<Nested> {
        self.nested.as_ref().and_then(|s| s.get().cloned())
    }
}

/// A slot for a supervisor child's handle; `None` for workers.
fn nested_slot(spec: &ChildSpec, ctx: &mut ChildContext) -> Option<NestedSlot> {
    (spec.child_kind() == ChildKind::Supervisor).then(|| ctx.watch_nested())
}

impl Drop for Run {
    fn drop(&mut self) {
        // a no-op when the task has finished, or was aborted and detached
        self.abort.abort();
    }
}

/// The child's body: the factory runs inside it, so a panic there is caught with the rest.
/// Combinators, not an `async` block, wrap it: the task's state then holds the factory and
/// context once, which keeps an idle child small.
fn body(factory: Factory, ctx: ChildContext) -> impl Future<Output = Outcome> + Send {
    let run = AssertUnwindSafe(async move {
        let fut = factory(ctx);
        drop(factory);
        fut.await
    });
    run.catch_unwind().map(|caught| match caught {
        Ok(result) => Outcome::Returned(result),
        Err(payload) => Outcome::Panicked(panic_message(&*payload)),
    })
}

/// Spawns the child's task, built by `factory`, into `tasks`.
pub(crate) fn spawn(
    tasks: &mut Tasks,
    spec: &ChildSpec,
    factory: Factory,
    mut ctx: ChildContext,
    key: RunKey,
) -> Run {
    let token = ctx.token().clone();
    let nested = nested_slot(spec, &mut ctx);
    let abort = tasks.spawn(body(factory, ctx).map(move |outcome| (key, outcome)));
    Run::new(abort, token, key, spec, nested)
}

/// The tokio task id of a finished child.
pub(crate) fn joined_id(joined: &Joined) -> Id {
    match joined {
        Ok((id, _)) => *id,
        Err(e) => e.id(),
    }
}

/// How a child task ended: from a [`JoinSet`] ([`Joined`]), or reported by the task itself
/// ([`Exit`]).
#[derive(Debug)]
pub(crate) enum Outcome {
    Returned(Result<(), ChildError>),
    Panicked(String),
    Aborted,
}

impl From<Joined> for Outcome {
    fn from(joined: Joined) -> Self {
        match joined {
            Ok((_, (_, outcome))) => outcome,
            Err(_) => Outcome::Aborted,
        }
    }
}

impl Outcome {
    /// The exit reason; `stopping` when the supervisor had asked the child to stop.
    pub(crate) fn reason(self, stopping: bool) -> ExitReason {
        match self {
            Self::Returned(result) => ExitReason::from_result(result, stopping),
            Self::Panicked(msg) => ExitReason::Panic(msg),
            Self::Aborted => ExitReason::Killed,
        }
    }

    /// If the child was a supervisor that left children running, their paths.
    pub(crate) fn nested_not_stopped(&self) -> Option<(&[String], &[String])> {
        match self {
            Self::Returned(Err(e)) => e
                .downcast_ref::<NotStopped>()
                .map(|n| (n.children.as_slice(), n.aborted.as_slice())),
            _ => None,
        }
    }
}

/// A child's exit, sent by its own task (dynamic supervisors).
#[derive(Debug)]
pub(crate) struct Exit {
    pub(crate) id: u64,
    pub(crate) outcome: Outcome,
}

/// Sends the exit when the child's task ends, including when it is aborted (dropped).
struct ExitGuard {
    tx: mpsc::UnboundedSender<Exit>,
    id: u64,
    outcome: Option<Outcome>,
}

impl ExitGuard {
    /// Records how the child ended; the drop that follows sends it.
    fn finish(mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or(Outcome::Aborted);
        // a closed channel means the supervisor is gone; nobody is waiting for this exit
        let _ = self.tx.send(Exit {
            id: self.id,
            outcome,
        });
    }
}

/// Spawns a detached child task that catches its own panics and reports its exit (also when
/// aborted) on `tx`. Used by the dynamic supervisor, whose handles spawn children directly.
pub(crate) fn spawn_reporting(
    spec: &ChildSpec,
    factory: Factory,
    mut ctx: ChildContext,
    key: RunKey,
    tx: mpsc::UnboundedSender<Exit>,
) -> Run {
    let token = ctx.token().clone();
    let nested = nested_slot(spec, &mut ctx);
    let guard = ExitGuard {
        tx,
        id: key.child,
        outcome: None,
    };
    let task = tokio::spawn(body(factory, ctx).map(move |outcome| guard.finish(outcome)));
    Run::new(task.abort_handle(), token, key, spec, nested)
}
