//! How a supervisor ended, as its own report tells it and as its parent reads it: one
//! mapping for both supervisor kinds.

use std::sync::Arc;

use crate::error::NotStopped;
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
