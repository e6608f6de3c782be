//! Spawning child tasks and reading their exits (shared by both supervisor kinds).

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{panic_message, NotStopped};
use crate::{ChildContext, ChildError, ChildSpec, ExitReason};

/// The set of a supervisor's child tasks.
pub(crate) type Tasks = JoinSet<Result<(), ChildError>>;

/// One finished child task, as `JoinSet::join_next_with_id` yields it.
pub(crate) type Joined = Result<(Id, Result<(), ChildError>), JoinError>;

/// A running child's task.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) abort: AbortHandle,
    pub(crate) token: CancellationToken,
    /// Unique per spawn; readiness messages carry it.
    pub(crate) key: u64,
    pub(crate) ready: bool,
    pub(crate) started_at: Instant,
}

impl Run {
    fn new(abort: AbortHandle, token: CancellationToken, key: u64, spec: &ChildSpec) -> Self {
        Run {
            abort,
            token,
            key,
            ready: !spec.inner().wait_ready,
            started_at: Instant::now(),
        }
    }
}

/// Spawns the child's task into `tasks`; its factory runs inside the task so a panic there is
/// caught too.
pub(crate) fn spawn(tasks: &mut Tasks, spec: &ChildSpec, ctx: ChildContext, key: u64) -> Run {
    let token = ctx.token().clone();
    let factory = spec.inner().factory.clone();
    let abort = tasks.spawn(async move {
        let fut = factory(ctx);
        drop(factory);
        fut.await
    });
    Run::new(abort, token, key, spec)
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
            Ok((_, result)) => Outcome::Returned(result),
            Err(e) if e.is_panic() => Outcome::Panicked(panic_message(&*e.into_panic())),
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
    ctx: ChildContext,
    id: u64,
    tx: mpsc::UnboundedSender<Exit>,
) -> Run {
    let token = ctx.token().clone();
    let factory = spec.inner().factory.clone();
    let guard = ExitGuard {
        tx,
        id,
        outcome: None,
    };
    // The body is built inside the task (not passed in built): the task's state then holds
    // one future, not two side by side, which keeps an idle child under 800 bytes.
    let task = tokio::spawn(async move {
        let body = AssertUnwindSafe(async move {
            let fut = factory(ctx);
            drop(factory);
            fut.await
        });
        guard.finish(match body.catch_unwind().await {
            Ok(result) => Outcome::Returned(result),
            Err(payload) => Outcome::Panicked(panic_message(&*payload)),
        });
    });
    Run::new(task.abort_handle(), token, id, spec)
}
