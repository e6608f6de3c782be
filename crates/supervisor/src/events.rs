//! Typed supervision events, also emitted as `tracing` events.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::{ExitReason, Intensity, StartError};

/// The id of one child of a dynamic supervisor; stable across its restarts, never reused.
///
/// An id belongs to the supervisor (the running instance) that issued it: a handle call
/// with an id another supervisor issued answers `UnknownChild`, even if the numbers match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId {
    supervisor: u64,
    number: u64,
}

impl ChildId {
    pub(crate) fn new(supervisor: u64, number: u64) -> Self {
        Self { supervisor, number }
    }

    /// The number behind the id, counting from 1 within the supervisor that issued it.
    pub fn get(self) -> u64 {
        self.number
    }

    /// The issuing supervisor instance's unique number.
    pub(crate) fn supervisor(self) -> u64 {
        self.supervisor
    }
}

impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.number)
    }
}

/// Something a supervisor did or saw. Subscribe with `subscribe()` on a handle.
///
/// Every event is also a `tracing` event (target `supervisor`) with the supervisor and child
/// ids as fields. Events are broadcast: a subscriber that falls behind by more than the
/// supervisor's event capacity (default 1024) sees `RecvError::Lagged` and loses the oldest.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A child was started for the first time.
    Started {
        /// The supervisor's id.
        supervisor: Arc<str>,
        /// The child's id.
        child: Arc<str>,
        /// The instance, under a dynamic supervisor.
        instance: Option<ChildId>,
    },
    /// A child exited (on its own, or stopped by its supervisor).
    Exited {
        /// The supervisor's id.
        supervisor: Arc<str>,
        /// The child's id.
        child: Arc<str>,
        /// The instance, under a dynamic supervisor.
        instance: Option<ChildId>,
        /// Why it exited.
        reason: ExitReason,
    },
    /// A restart was scheduled. Under `OneForAll` / `RestForOne` `child` is the child whose
    /// exit caused the group restart.
    RestartScheduled {
        /// The supervisor's id.
        supervisor: Arc<str>,
        /// The child's id.
        child: Arc<str>,
        /// The instance, under a dynamic supervisor.
        instance: Option<ChildId>,
        /// The delay before the restart.
        delay: Duration,
    },
    /// A child was started again.
    Restarted {
        /// The supervisor's id.
        supervisor: Arc<str>,
        /// The child's id.
        child: Arc<str>,
        /// The instance, under a dynamic supervisor.
        instance: Option<ChildId>,
        /// How many times it has been restarted.
        restarts: u32,
    },
    /// A pending restart was cancelled by `terminate_child`.
    RestartCancelled {
        /// The supervisor's id.
        supervisor: Arc<str>,
        /// The child's id.
        child: Arc<str>,
        /// The instance, under a dynamic supervisor.
        instance: Option<ChildId>,
    },
    /// A (re)start failed: the child exited before it was ready or overran its start timeout.
    StartFailed {
        /// The supervisor's id.
        supervisor: Arc<str>,
        /// The child's id.
        child: Arc<str>,
        /// The instance, under a dynamic supervisor.
        instance: Option<ChildId>,
        /// What went wrong.
        reason: String,
    },
    /// Restart intensity was exceeded; the supervisor stops all children and ends with an error.
    IntensityExceeded {
        /// The supervisor's id.
        supervisor: Arc<str>,
        /// The child whose exit tipped it over.
        child: Arc<str>,
        /// The configured maximum restarts.
        max_restarts: u32,
        /// The configured period.
        period: Duration,
    },
    /// The supervisor began stopping its children.
    ShutdownStarted {
        /// The supervisor's id.
        supervisor: Arc<str>,
    },
    /// The supervisor stopped its children and ended.
    ShutdownFinished {
        /// The supervisor's id.
        supervisor: Arc<str>,
        /// Whether every child stopped.
        clean: bool,
    },
}

impl Event {
    /// The supervisor this event is about.
    pub fn supervisor(&self) -> &str {
        match self {
            Self::Started { supervisor, .. }
            | Self::Exited { supervisor, .. }
            | Self::RestartScheduled { supervisor, .. }
            | Self::Restarted { supervisor, .. }
            | Self::RestartCancelled { supervisor, .. }
            | Self::StartFailed { supervisor, .. }
            | Self::IntensityExceeded { supervisor, .. }
            | Self::ShutdownStarted { supervisor }
            | Self::ShutdownFinished { supervisor, .. } => supervisor,
        }
    }

    /// The child this event is about, if any.
    pub fn child(&self) -> Option<&str> {
        match self {
            Self::Started { child, .. }
            | Self::Exited { child, .. }
            | Self::RestartScheduled { child, .. }
            | Self::Restarted { child, .. }
            | Self::RestartCancelled { child, .. }
            | Self::StartFailed { child, .. }
            | Self::IntensityExceeded { child, .. } => Some(child),
            Self::ShutdownStarted { .. } | Self::ShutdownFinished { .. } => None,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sup = self.supervisor();
        let child = self.child().unwrap_or("");
        match self {
            Self::Started { .. } => write!(f, "{sup}: {child} started"),
            Self::Exited { reason, .. } => write!(f, "{sup}: {child} exited ({reason})"),
            Self::RestartScheduled { delay, .. } => write!(
                f,
                "{sup}: restart of {child} scheduled in {}",
                humantime::format_duration(whole_millis(*delay))
            ),
            Self::Restarted { restarts, .. } => {
                write!(f, "{sup}: {child} restarted (restart #{restarts})")
            }
            Self::RestartCancelled { .. } => {
                write!(f, "{sup}: pending restart of {child} cancelled")
            }
            Self::StartFailed { reason, .. } => {
                write!(f, "{sup}: {child} failed to start: {reason}")
            }
            Self::IntensityExceeded {
                max_restarts,
                period,
                ..
            } => write!(
                f,
                "{sup}: restart intensity exceeded (> {max_restarts} in {}) after {child} exited",
                humantime::format_duration(*period)
            ),
            Self::ShutdownStarted { .. } => write!(f, "{sup}: shutdown started"),
            Self::ShutdownFinished { clean, .. } => {
                write!(
                    f,
                    "{sup}: shutdown finished ({})",
                    if *clean { "clean" } else { "unclean" }
                )
            }
        }
    }
}

/// The counter of child restarts, labelled `supervisor` and `child`, recorded through the
/// `metrics` facade with the `metrics` feature.
#[cfg(feature = "metrics")]
pub const RESTARTS_METRIC: &str = "supervisor_restarts_total";

/// Publishes events to subscribers and to `tracing`.
#[derive(Debug, Clone)]
pub(crate) struct Emitter {
    pub(crate) supervisor: Arc<str>,
    tx: broadcast::Sender<Event>,
}

impl Emitter {
    pub(crate) fn new(supervisor: Arc<str>, capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self { supervisor, tx }
    }

    pub(crate) fn sender(&self) -> &broadcast::Sender<Event> {
        &self.tx
    }

    /// A child started (`restarts` 0) or was restarted.
    pub(crate) fn started(&self, child: &Arc<str>, instance: Option<ChildId>, restarts: u32) {
        #[cfg(feature = "metrics")]
        if restarts > 0 {
            self.count_restart(child);
        }
        let child = child.clone();
        self.emit(|supervisor| match restarts {
            0 => Event::Started {
                supervisor,
                child,
                instance,
            },
            restarts => Event::Restarted {
                supervisor,
                child,
                instance,
                restarts,
            },
        });
    }

    pub(crate) fn exited(&self, child: &Arc<str>, instance: Option<ChildId>, reason: &ExitReason) {
        self.emit(|supervisor| Event::Exited {
            supervisor,
            child: child.clone(),
            instance,
            reason: reason.clone(),
        });
    }

    pub(crate) fn restart_scheduled(
        &self,
        child: &Arc<str>,
        instance: Option<ChildId>,
        delay: Duration,
    ) {
        self.emit(|supervisor| Event::RestartScheduled {
            supervisor,
            child: child.clone(),
            instance,
            delay,
        });
    }

    pub(crate) fn restart_cancelled(&self, child: &Arc<str>, instance: Option<ChildId>) {
        self.emit(|supervisor| Event::RestartCancelled {
            supervisor,
            child: child.clone(),
            instance,
        });
    }

    pub(crate) fn start_failed(
        &self,
        child: &Arc<str>,
        instance: Option<ChildId>,
        err: &StartError,
    ) {
        self.emit(|supervisor| Event::StartFailed {
            supervisor,
            child: child.clone(),
            instance,
            reason: err.to_string(),
        });
    }

    pub(crate) fn intensity_exceeded(&self, child: &Arc<str>, limit: Intensity) {
        self.emit(|supervisor| Event::IntensityExceeded {
            supervisor,
            child: child.clone(),
            max_restarts: limit.max_restarts(),
            period: limit.period(),
        });
    }

    pub(crate) fn shutdown_started(&self) {
        self.emit(|supervisor| Event::ShutdownStarted { supervisor });
    }

    pub(crate) fn shutdown_finished(&self, clean: bool) {
        self.emit(|supervisor| Event::ShutdownFinished { supervisor, clean });
    }

    /// Counts a restart in [`RESTARTS_METRIC`].
    #[cfg(feature = "metrics")]
    fn count_restart(&self, child: &Arc<str>) {
        let labels = [
            ("supervisor", self.supervisor.to_string()),
            ("child", child.to_string()),
        ];
        metrics::counter!(RESTARTS_METRIC, &labels).increment(1);
    }

    /// Traces the event and broadcasts it if anyone listens; `make` runs only if needed.
    fn emit(&self, make: impl FnOnce(Arc<str>) -> Event) {
        let listening = self.tx.receiver_count() > 0;
        if !listening && !tracing::enabled!(target: "supervisor", tracing::Level::ERROR) {
            return;
        }
        let event = make(self.supervisor.clone());
        trace_event(&event);
        if listening {
            // no receiver left between the check and the send is fine: nobody to tell
            let _ = self.tx.send(event);
        }
    }
}

fn trace_event(e: &Event) {
    let sup = e.supervisor();
    let child = e.child().unwrap_or("");
    match e {
        Event::Exited { reason, .. }
            if reason.is_abnormal() || matches!(reason, ExitReason::Escalated(_)) =>
        {
            tracing::warn!(target: "supervisor", supervisor = sup, child, %reason, "child exited")
        }
        Event::Exited { reason, .. } => {
            tracing::info!(target: "supervisor", supervisor = sup, child, %reason, "child exited")
        }
        Event::IntensityExceeded { .. } | Event::StartFailed { .. } => {
            tracing::error!(target: "supervisor", supervisor = sup, child, "{e}")
        }
        Event::RestartScheduled { delay, .. } => {
            tracing::info!(target: "supervisor", supervisor = sup, child, delay = %humantime::format_duration(whole_millis(*delay)), "restart scheduled")
        }
        _ => tracing::info!(target: "supervisor", supervisor = sup, child, "{e}"),
    }
}

/// Drops sub-millisecond digits for display.
fn whole_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
