//! [`Outcome`]: what a run of a job came to, in the engine's terms.

use serde_json::Value;

use crate::context::RunState;
use crate::store::FinishOutcome;
use crate::time::Timestamp;

/// What a run of a job came to, as the engine recorded it: in the pool's
/// [`JobEvent::Finished`](crate::JobEvent::Finished) events, and in the testing kit's
/// [`run_job`](crate::testing::run_job) and [`Harness::drain`](crate::testing::Harness::drain).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// `perform` succeeded: the job is `completed`.
    Completed,
    /// A failed attempt with attempts left: `scheduled` again at `at` (the worker's backoff).
    Retry {
        /// When the job runs again.
        at: Timestamp,
        /// The recorded error.
        error: String,
    },
    /// The job went to the dead set (attempts exhausted, discarded, bad input).
    Dead {
        /// The recorded error, e.g. `"discarded: <reason>"`.
        reason: String,
    },
    /// Snoozed: `scheduled` at `until`, no attempt charged.
    Snoozed {
        /// When the job runs again.
        until: Timestamp,
    },
    /// Stopped at a safe point on shutdown (or aborted): back to `available`, no attempt
    /// charged, with the checkpoint it saved.
    Released {
        /// The newest checkpoint the run gave (or the one it started from).
        checkpoint: Option<Value>,
    },
}

impl Outcome {
    /// The outcome of `run` from the engine's mapping (`None`: the lease was lost, which a
    /// test run only sees if the test took it away; it counts as released).
    pub(crate) fn of(run: &RunState, finish: Option<&FinishOutcome>) -> Outcome {
        match finish {
            Some(FinishOutcome::Completed) => Outcome::Completed,
            Some(FinishOutcome::Retry { run_at, error }) => Outcome::Retry {
                at: *run_at,
                error: error.message.clone(),
            },
            Some(FinishOutcome::Dead { error }) => Outcome::Dead {
                reason: error.message.clone(),
            },
            Some(FinishOutcome::Snooze { run_at }) => Outcome::Snoozed { until: *run_at },
            Some(FinishOutcome::Release) | None => Outcome::Released {
                checkpoint: run.latest_checkpoint(),
            },
        }
    }

    /// The outcome's name, as the job span's `outcome` field and metric names say it:
    /// `completed`, `retry`, `dead`, `snoozed` or `released`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Retry { .. } => "retry",
            Outcome::Dead { .. } => "dead",
            Outcome::Snoozed { .. } => "snoozed",
            Outcome::Released { .. } => "released",
        }
    }

    /// Whether the job completed.
    pub fn is_completed(&self) -> bool {
        matches!(self, Outcome::Completed)
    }
}
