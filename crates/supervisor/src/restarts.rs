//! Restart bookkeeping, written once for both supervisor kinds: whether an exit is
//! restarted, each child's restart count and backoff step, the delay before its next
//! restart, and the supervisor's restart intensity.

use std::time::Duration;

use tokio::time::Instant;

use crate::intensity::RestartLog;
use crate::{ChildSpec, ExitReason, Intensity, Restart, RestartPolicy};

impl Restart {
    /// Whether a child of this restart type is restarted after exiting with `reason`.
    pub(crate) fn after(self, reason: &ExitReason) -> bool {
        match self {
            Self::Permanent => true,
            Self::Transient => reason.is_abnormal(),
            Self::Temporary => false,
        }
    }
}

/// One child's restart history.
#[derive(Debug, Default)]
pub(crate) struct ChildRestarts {
    count: u32,
    /// Restarts since the last stable run: the backoff step.
    consecutive: u32,
    last_start: Option<Instant>,
    /// Boxed: most children never exit, and an idle child should stay small.
    last_exit: Option<Box<ExitReason>>,
}

impl ChildRestarts {
    /// Records a start at `now`; true when it is a restart (the child had started before).
    pub(crate) fn started(&mut self, now: Instant) -> bool {
        let restart = self.last_start.replace(now).is_some();
        if restart {
            self.count = self.count.saturating_add(1);
        }
        restart
    }

    /// How many times the child has been restarted.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Records why the child's incarnation exited.
    pub(crate) fn exited(&mut self, reason: &ExitReason) {
        self.last_exit = Some(Box::new(reason.clone()));
    }

    /// Why its last incarnation exited.
    pub(crate) fn last_exit(&self) -> Option<ExitReason> {
        self.last_exit.as_deref().cloned()
    }

    /// Whether the child has ever started.
    pub(crate) fn ever_started(&self) -> bool {
        self.last_start.is_some()
    }
}

/// A supervisor's restart books: its intensity log and its default restart policy.
#[derive(Debug)]
pub(crate) struct Restarts {
    log: RestartLog,
    policy: RestartPolicy,
}

impl Restarts {
    pub(crate) fn new(intensity: Intensity, policy: RestartPolicy) -> Self {
        Self {
            log: RestartLog::new(intensity),
            policy,
        }
    }

    /// Counts a restart now; false when it exceeds the intensity (the supervisor gives up).
    pub(crate) fn allow(&mut self) -> bool {
        self.log.record(Instant::now())
    }

    pub(crate) fn limit(&self) -> Intensity {
        self.log.limit()
    }

    /// The delay before the next restart of a child (by its own policy, else the
    /// supervisor's), advancing its backoff step. A run that lasted the policy's
    /// `reset_after` or longer was stable: the step starts again from 0.
    pub(crate) fn next_delay(&self, spec: &ChildSpec, child: &mut ChildRestarts) -> Duration {
        let policy = spec.inner().restart_policy.as_ref().unwrap_or(&self.policy);
        if child
            .last_start
            .is_some_and(|t| t.elapsed() >= policy.reset_after())
        {
            child.consecutive = 0;
        }
        let delay = policy.delay(child.consecutive);
        child.consecutive = child.consecutive.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backoff, ChildContext};

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn only_the_restart_type_and_the_reason_decide() {
        let crash = ExitReason::Panic("x".into());
        assert!(Restart::Permanent.after(&ExitReason::Normal));
        assert!(Restart::Transient.after(&crash));
        assert!(!Restart::Transient.after(&ExitReason::Shutdown));
        assert!(!Restart::Temporary.after(&crash));
    }

    #[tokio::test(start_paused = true)]
    async fn delays_back_off_and_reset_after_a_stable_run() {
        let backoff = Backoff::exponential(secs(1), secs(8))
            .with_jitter(0.0)
            .unwrap();
        let books = Restarts::new(Intensity::default(), RestartPolicy::Backoff(backoff));
        let spec = ChildSpec::new("c", |_ctx: ChildContext| async { Ok(()) });
        let mut child = ChildRestarts::default();
        assert!(!child.started(Instant::now()));
        let delays: Vec<u64> = (0..3)
            .map(|_| {
                let d = books.next_delay(&spec, &mut child);
                child.started(Instant::now());
                d.as_secs()
            })
            .collect();
        assert_eq!(delays, [1, 2, 4]);
        assert_eq!(child.count(), 3);
        tokio::time::advance(secs(8)).await; // a run as long as reset_after (= max)
        assert_eq!(books.next_delay(&spec, &mut child), secs(1));
    }
}
