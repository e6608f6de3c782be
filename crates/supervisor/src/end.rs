//! How a supervisor ends, for both kinds: its report (published once to every handle), what
//! its exit reads as to its own callers and to its parent.

use std::sync::Arc;

use tokio::sync::watch;

use crate::child::Outcome;
use crate::error::NotStopped;
use crate::handle::{ExitSlot, Reply};
use crate::{ChildError, ExitReason, ShutdownReport, StartError, SupervisorError};

/// How a supervisor ended.
#[derive(Debug)]
pub(crate) enum End {
    /// An orderly shutdown (asked for, or an auto-shutdown) finished.
    Stopped,
    /// A kill aborted its children.
    Killed,
    /// It gave up: its restart intensity was exceeded.
    Escalated(SupervisorError),
    /// Its initial start failed.
    StartFailed(StartError),
}

impl End {
    /// The exit its final report (and `wait()`) gives.
    pub(crate) fn exit(&self, supervisor: &str) -> Result<(), SupervisorError> {
        match self {
            Self::Stopped => Ok(()),
            Self::Killed => Err(SupervisorError::Killed {
                supervisor: supervisor.to_owned(),
            }),
            Self::Escalated(e) => Err(e.clone()),
            Self::StartFailed(e) => Err(SupervisorError::from(e.clone())),
        }
    }

    /// What a nested supervisor's child task returns to its parent, which reads it back with
    /// [`reason`]. Children it could not stop are handed up for the parent's report.
    pub(crate) fn into_child_result(self, report: ShutdownReport) -> Result<(), ChildError> {
        match self {
            Self::Escalated(e) => Err(Box::new(e)),
            Self::StartFailed(e) => Err(Box::new(e)),
            _ if !report.is_clean() => Err(Box::new(NotStopped {
                supervisor: report.supervisor.to_string(),
                children: report.not_stopped,
                aborted: report.aborted,
            })),
            Self::Stopped => Ok(()),
            Self::Killed => Err(Box::new(SupervisorError::Killed {
                supervisor: report.supervisor.to_string(),
            })),
        }
    }
}

/// Why a child that returned `Err(error)` on its own exited. A supervisor that gave up is
/// `Escalated` (OTP's `shutdown`: not abnormal, so a transient one stays down) and one that
/// was killed is `Killed`, whether it ran nested or the child awaited it.
pub(crate) fn reason(error: ChildError) -> ExitReason {
    match error.downcast::<SupervisorError>() {
        Ok(e) if matches!(*e, SupervisorError::IntensityExceeded { .. }) => {
            ExitReason::Escalated(Arc::from(e))
        }
        Ok(e) if matches!(*e, SupervisorError::Killed { .. }) => ExitReason::Killed,
        Ok(e) => ExitReason::Error(Arc::new(*e)),
        Err(e) => ExitReason::Error(Arc::from(e)),
    }
}

/// A supervisor's report in the making, the `shutdown()` callers waiting for it, and the slot
/// every handle watches for it.
pub(crate) struct Ending {
    report: ShutdownReport,
    waiters: Vec<Reply<ShutdownReport>>,
    slot: watch::Sender<ExitSlot>,
}

impl Ending {
    pub(crate) fn new(supervisor: Arc<str>, slot: watch::Sender<ExitSlot>) -> Self {
        Self {
            report: ShutdownReport::new(supervisor),
            waiters: Vec::new(),
            slot,
        }
    }

    /// A `shutdown()` caller, answered with the final report.
    pub(crate) fn wait(&mut self, reply: Reply<ShutdownReport>) {
        self.waiters.push(reply);
    }

    /// A child (at `path`) overran its bound and was aborted.
    pub(crate) fn aborted(&mut self, path: String) {
        self.report.aborted.push(path);
    }

    /// A child (at `path`) could not be stopped and was detached.
    pub(crate) fn not_stopped(&mut self, path: String) {
        self.report.not_stopped.push(path);
    }

    /// If the child at `path` was a supervisor that left children running or aborted some,
    /// lists them (under `path`) too.
    pub(crate) fn absorb(&mut self, path: &str, outcome: &Outcome) {
        if let Some((children, aborted)) = outcome.nested_not_stopped() {
            let under = |c: &String| format!("{path}/{c}");
            self.report.not_stopped.extend(children.iter().map(under));
            self.report.aborted.extend(aborted.iter().map(under));
        }
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.report.is_clean()
    }

    /// Publishes the final report with `end` as its exit, answers every waiter, and returns
    /// both (for a nested supervisor's parent).
    pub(crate) fn publish(&mut self, end: End) -> (End, ShutdownReport) {
        self.report.exit = end.exit(&self.report.supervisor);
        let report = self.report.clone();
        self.slot.send_replace(Some(report.clone()));
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(report.clone());
        }
        (end, report)
    }
}

impl Drop for Ending {
    /// A supervisor dropped before it ended (its task aborted, its runtime gone) is `Gone`.
    fn drop(&mut self) {
        if self.slot.borrow().is_none() {
            let supervisor = self.report.supervisor.clone();
            let mut report = ShutdownReport::new(supervisor.clone());
            report.exit = Err(SupervisorError::Gone {
                supervisor: supervisor.to_string(),
            });
            self.slot.send_replace(Some(report));
        }
    }
}
