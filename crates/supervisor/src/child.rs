//! Spawning child tasks and reading their exits (shared by both supervisor kinds).

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

/// Spawns the child's task; its factory runs inside the task so a panic there is caught too.
pub(crate) fn spawn(tasks: &mut Tasks, spec: &ChildSpec, ctx: ChildContext, key: u64) -> Run {
    let token = ctx.token().clone();
    let factory = spec.inner().factory.clone();
    let abort = tasks.spawn(async move {
        let fut = factory(ctx);
        drop(factory);
        fut.await
    });
    Run {
        abort,
        token,
        key,
        ready: !spec.inner().wait_ready,
        started_at: Instant::now(),
    }
}

/// The tokio task id of a finished child.
pub(crate) fn joined_id(joined: &Joined) -> Id {
    match joined {
        Ok((id, _)) => *id,
        Err(e) => e.id(),
    }
}

/// The exit reason of a finished child; `stopping` when its supervisor had asked it to stop.
pub(crate) fn exit_reason(joined: Joined, stopping: bool) -> ExitReason {
    match joined {
        Ok((_, result)) => ExitReason::from_result(result, stopping),
        Err(e) if e.is_panic() => ExitReason::Panic(panic_message(&*e.into_panic())),
        Err(_) => ExitReason::Killed,
    }
}

/// If a stopped child was a supervisor that left children running, their paths.
pub(crate) fn nested_not_stopped(joined: &Joined) -> Option<(&[String], &[String])> {
    match joined {
        Ok((_, Err(e))) => e
            .downcast_ref::<NotStopped>()
            .map(|n| (n.children.as_slice(), n.aborted.as_slice())),
        _ => None,
    }
}
