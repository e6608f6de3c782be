//! Error and exit types shared by every part of the crate.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The error a child's future returns to report an abnormal exit.
///
/// Any `std::error::Error + Send + Sync` converts into it with `?` or `.into()`.
pub type ChildError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a child (or a supervisor) exited.
///
/// `Normal`, `Shutdown` and `Escalated` are normal exits; `Error`, `Panic` and `Killed` are
/// abnormal ([`ExitReason::is_abnormal`]). A transient child is restarted only after an
/// abnormal exit.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ExitReason {
    /// The child's future returned `Ok(())` on its own.
    Normal,
    /// The supervisor asked the child to stop (its token was cancelled) and it returned within
    /// its [`Shutdown`](crate::Shutdown) bound, whatever its result.
    Shutdown,
    /// The child's future returned `Err(_)` on its own.
    Error(Arc<dyn StdError + Send + Sync + 'static>),
    /// The child panicked; the payload is the panic message.
    Panic(String),
    /// The child was aborted (`Shutdown::BrutalKill`, an overrun shutdown timeout), or it is
    /// a supervisor that was killed.
    Killed,
    /// The child is a supervisor that gave up: its restart intensity was exceeded
    /// ([`SupervisorError::IntensityExceeded`]). As OTP's supervisor exiting with `shutdown`,
    /// this is not abnormal: a transient supervisor child stays down, a permanent one is
    /// restarted (and that restart counts toward its parent's intensity, so failure still
    /// escalates up the tree).
    Escalated(Arc<SupervisorError>),
}

impl ExitReason {
    /// True for exits a transient child is restarted after: `Error`, `Panic` and `Killed`.
    pub fn is_abnormal(&self) -> bool {
        matches!(self, Self::Error(_) | Self::Panic(_) | Self::Killed)
    }

    /// Builds the reason from a child's result; `stopping` tells whether the supervisor
    /// had cancelled the child's token before it returned.
    pub(crate) fn from_result(result: Result<(), ChildError>, stopping: bool) -> Self {
        match result {
            _ if stopping => Self::Shutdown,
            Ok(()) => Self::Normal,
            Err(e) => crate::end::reason(e),
        }
    }

    /// Returns the error this reason wraps, if the child returned one (or gave up).
    pub fn error(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match self {
            Self::Error(e) => Some(e.as_ref()),
            Self::Escalated(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::Error(e) => write!(f, "error: {e}"),
            Self::Panic(msg) => write!(f, "panic: {msg}"),
            Self::Killed => f.write_str("killed"),
            Self::Escalated(e) => write!(f, "escalated: {e}"),
        }
    }
}

/// A supervisor or child specification was rejected before anything started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Two children of one supervisor share an id.
    #[error("supervisor `{supervisor}`: duplicate child id `{child}`; child ids must be unique within a supervisor")]
    DuplicateChildId {
        /// The supervisor's id.
        supervisor: String,
        /// The repeated child id.
        child: String,
    },
    /// An id is empty.
    #[error("supervisor `{supervisor}`: empty id; give every supervisor and child a non-empty id")]
    EmptyId {
        /// The supervisor's id (may itself be the empty one).
        supervisor: String,
    },
    /// A significant child is permanent, so it would never exit for good.
    #[error("supervisor `{supervisor}`: child `{child}` is significant and permanent; make it transient or temporary")]
    SignificantPermanent {
        /// The supervisor's id.
        supervisor: String,
        /// The child's id.
        child: String,
    },
    /// A child is significant but the supervisor has `AutoShutdown::Never`.
    #[error("supervisor `{supervisor}`: child `{child}` is significant but auto-shutdown is `Never`; set `auto_shutdown(AutoShutdown::AnySignificant)` or `AllSignificant`, or drop the flag")]
    SignificantWithoutAutoShutdown {
        /// The supervisor's id.
        supervisor: String,
        /// The child's id.
        child: String,
    },
    /// A dynamic supervisor was given a significant child, which it does not support.
    #[error("dynamic supervisor `{supervisor}`: child `{child}` is significant; dynamic supervisors have no auto-shutdown, drop the flag")]
    SignificantDynamicChild {
        /// The supervisor's id.
        supervisor: String,
        /// The child's id.
        child: String,
    },
    /// The restart intensity period is zero.
    #[error("supervisor `{supervisor}`: restart intensity period is zero; use a period of at least one millisecond")]
    ZeroPeriod {
        /// The supervisor's id.
        supervisor: String,
    },
    /// `max_children` is zero, so no child could ever start.
    #[error(
        "dynamic supervisor `{supervisor}`: max_children is 0; use None for no limit or at least 1"
    )]
    ZeroMaxChildren {
        /// The supervisor's id.
        supervisor: String,
    },
    /// A partitioned supervisor has no partitions.
    #[error("partition supervisor `{supervisor}`: 0 partitions; use at least 1")]
    ZeroPartitions {
        /// The supervisor's id.
        supervisor: String,
    },
    /// A mailbox capacity is zero, so no message could ever be sent.
    #[error("child `{child}`: mailbox capacity is 0; use at least 1")]
    ZeroCapacity {
        /// The child's id.
        child: String,
    },
    /// The event channel capacity is zero.
    #[error("supervisor `{supervisor}`: event capacity is 0; use at least 1")]
    ZeroEventCapacity {
        /// The supervisor's id.
        supervisor: String,
    },
}

/// A supervisor could not complete its start; children it had started were stopped.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A child exited (or its factory panicked) before it was ready.
    #[error("supervisor `{supervisor}`: child `{child}` failed to start ({reason}); children started before it were stopped")]
    ChildFailed {
        /// The supervisor's id.
        supervisor: String,
        /// The child that failed.
        child: String,
        /// How it exited.
        reason: ExitReason,
    },
    /// A child that waits for readiness did not signal it within its start timeout.
    #[error("supervisor `{supervisor}`: child `{child}` was not ready within its start timeout of {}; call `ChildContext::ready()` sooner or raise `ChildSpec::start_timeout`", humantime::format_duration(*.timeout))]
    ChildStartTimeout {
        /// The supervisor's id.
        supervisor: String,
        /// The child that timed out.
        child: String,
        /// The start timeout that elapsed.
        timeout: Duration,
    },
    /// The supervisor ended (restart intensity, kill, shutdown) before its start completed.
    #[error("supervisor `{supervisor}` ended before its start completed: {reason}")]
    Ended {
        /// The supervisor's id.
        supervisor: String,
        /// Why it ended.
        reason: Box<SupervisorError>,
    },
    /// The supervisor's task vanished (its runtime shut down) before its start completed.
    #[error("supervisor `{supervisor}` vanished before its start completed; is its tokio runtime shutting down?")]
    Gone {
        /// The supervisor's id.
        supervisor: String,
    },
}

/// Why a (re)start failed, before it names its supervisor and child as a [`StartError`].
#[derive(Debug)]
pub(crate) enum StartFailure {
    /// The child exited before it was ready.
    Exit(ExitReason),
    /// It was not ready within its start timeout.
    Timeout(Duration),
}

impl StartFailure {
    pub(crate) fn into_error(self, supervisor: &str, child: &str) -> StartError {
        let (supervisor, child) = (supervisor.to_owned(), child.to_owned());
        match self {
            Self::Exit(reason) => StartError::ChildFailed {
                supervisor,
                child,
                reason,
            },
            Self::Timeout(timeout) => StartError::ChildStartTimeout {
                supervisor,
                child,
                timeout,
            },
        }
    }
}

/// A call on a supervisor handle failed, or the reason a supervisor ended abnormally.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// No child has this id.
    #[error(
        "supervisor `{supervisor}`: no child `{child}`; see `which_children()` for the current ids"
    )]
    UnknownChild {
        /// The supervisor's id.
        supervisor: String,
        /// The id asked for.
        child: String,
    },
    /// A child with this id is running, starting or restarting (OTP's `already_started`).
    #[error("supervisor `{supervisor}`: child `{child}` is already started; terminate it first or pick another id")]
    ChildAlreadyStarted {
        /// The supervisor's id.
        supervisor: String,
        /// The id that is taken.
        child: String,
    },
    /// A child with this id is present but not running: it was terminated and its spec kept
    /// (OTP's `already_present`).
    #[error("supervisor `{supervisor}`: child `{child}` is already present (terminated); call `restart_child` to start it, or `delete_child` first")]
    ChildAlreadyPresent {
        /// The supervisor's id.
        supervisor: String,
        /// The id that is taken.
        child: String,
    },
    /// The child is running; terminate it first.
    #[error("supervisor `{supervisor}`: child `{child}` is running; call `terminate_child` first")]
    ChildRunning {
        /// The supervisor's id.
        supervisor: String,
        /// The child's id.
        child: String,
    },
    /// The child has a restart pending; terminate it to cancel the restart.
    #[error("supervisor `{supervisor}`: child `{child}` is restarting (a delayed restart is pending); call `terminate_child` to cancel it")]
    ChildRestarting {
        /// The supervisor's id.
        supervisor: String,
        /// The child's id.
        child: String,
    },
    /// The child ignored its stop request and could not be aborted within its bound
    /// (it blocks its thread); it was detached.
    #[error("supervisor `{supervisor}`: child `{child}` did not stop within its shutdown bound (a blocking task abort cannot reach); it was detached")]
    ChildNotStopped {
        /// The supervisor's id.
        supervisor: String,
        /// The child's id.
        child: String,
    },
    /// The dynamic supervisor already runs `max_children` children.
    #[error("dynamic supervisor `{supervisor}`: max_children ({max}) reached; wait for a child to exit or raise the limit")]
    MaxChildren {
        /// The supervisor's id.
        supervisor: String,
        /// The configured limit.
        max: usize,
    },
    /// The child spec given to `start_child` is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A child started through the handle failed to start.
    #[error(transparent)]
    Start(Box<StartError>),
    /// The supervisor is shutting down and accepts no new children.
    #[error("supervisor `{supervisor}` is shutting down; it accepts no new children")]
    ShuttingDown {
        /// The supervisor's id.
        supervisor: String,
    },
    /// Children restarted more often than the restart intensity allows; the supervisor stopped
    /// all its children and ended. Its parent sees this as an abnormal exit.
    #[error("supervisor `{supervisor}`: restart intensity exceeded (more than {max_restarts} restarts within {}); last failure: child `{child}` exited with {reason}", humantime::format_duration(*.period))]
    IntensityExceeded {
        /// The supervisor's id.
        supervisor: String,
        /// The child whose exit tipped it over.
        child: String,
        /// That child's exit reason.
        reason: ExitReason,
        /// The configured maximum restarts.
        max_restarts: u32,
        /// The configured period.
        period: Duration,
    },
    /// The supervisor was killed (`kill()`, or `shutdown_within` past its bound): its
    /// children were aborted. Its parent sees this as an abnormal exit.
    #[error("supervisor `{supervisor}` was killed; its children were aborted")]
    Killed {
        /// The supervisor's id.
        supervisor: String,
    },
    /// The supervisor has ended (or its runtime shut down); the call cannot be served.
    #[error("supervisor `{supervisor}` is gone (it has ended); start a new one")]
    Gone {
        /// The supervisor's id.
        supervisor: String,
    },
}

impl From<StartError> for SupervisorError {
    fn from(e: StartError) -> Self {
        Self::Start(Box::new(e))
    }
}

/// What a shutdown achieved. Returned by `shutdown()` (every call, idempotently).
#[derive(Clone, Debug)]
#[must_use = "a report tells whether every child stopped; check `is_clean()` or `exit()`"]
pub struct ShutdownReport {
    pub(crate) supervisor: Arc<str>,
    pub(crate) aborted: Vec<String>,
    pub(crate) not_stopped: Vec<String>,
    pub(crate) exit: Result<(), SupervisorError>,
}

impl ShutdownReport {
    pub(crate) fn new(supervisor: Arc<str>) -> Self {
        Self {
            supervisor,
            aborted: Vec::new(),
            not_stopped: Vec::new(),
            exit: Ok(()),
        }
    }

    /// The report of a supervisor that was never running to be shut down.
    pub(crate) fn gone(supervisor: Arc<str>, error: SupervisorError) -> Self {
        let mut report = Self::new(supervisor);
        report.exit = Err(error);
        report
    }

    /// True when every child stopped (on its own or by abort).
    pub fn is_clean(&self) -> bool {
        self.not_stopped.is_empty()
    }

    /// The id of the supervisor this report is about.
    pub fn supervisor(&self) -> &str {
        &self.supervisor
    }

    /// Paths (`supervisor/child`, nested supervisors included) of children that could not be
    /// stopped within their bound because abort could not reach them; they were detached.
    pub fn not_stopped(&self) -> &[String] {
        &self.not_stopped
    }

    /// Paths of children that overran their shutdown timeout (or were killed) and were aborted.
    pub fn aborted(&self) -> &[String] {
        &self.aborted
    }

    /// How the supervisor ended: `Ok` after a shutdown or auto-shutdown, `Err` after an
    /// escalation such as [`SupervisorError::IntensityExceeded`] or a kill
    /// ([`SupervisorError::Killed`]).
    pub fn exit(&self) -> &Result<(), SupervisorError> {
        &self.exit
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            write!(f, "supervisor `{}` stopped cleanly", self.supervisor)?;
        } else {
            let list = self.not_stopped.join(", ");
            write!(
                f,
                "supervisor `{}` stopped; children that did not stop: {list}",
                self.supervisor
            )?;
        }
        if !self.aborted.is_empty() {
            write!(f, " (aborted: {})", self.aborted.join(", "))?;
        }
        Ok(())
    }
}

/// The error a nested supervisor child returns when its shutdown left children running,
/// so that the parent's report can list them.
#[derive(Debug, thiserror::Error)]
#[error("supervisor `{supervisor}`: children did not stop: {}", .children.join(", "))]
pub(crate) struct NotStopped {
    pub(crate) supervisor: String,
    pub(crate) children: Vec<String>,
    pub(crate) aborted: Vec<String>,
}

/// Extracts a panic payload's message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abnormal_reasons() {
        assert!(!ExitReason::Normal.is_abnormal());
        assert!(!ExitReason::Shutdown.is_abnormal());
        assert!(ExitReason::Killed.is_abnormal());
        assert!(ExitReason::Panic("x".into()).is_abnormal());
        let e = ExitReason::from_result(Err("boom".into()), false);
        assert!(e.is_abnormal());
        assert_eq!(e.to_string(), "error: boom");
        assert!(matches!(
            ExitReason::from_result(Err("x".into()), true),
            ExitReason::Shutdown
        ));
        assert!(matches!(
            ExitReason::from_result(Ok(()), false),
            ExitReason::Normal
        ));
    }

    #[test]
    fn panic_messages_are_extracted() {
        let s: Box<dyn std::any::Any + Send> = Box::new("static");
        assert_eq!(panic_message(&*s), "static");
        let s: Box<dyn std::any::Any + Send> = Box::new(String::from("owned"));
        assert_eq!(panic_message(&*s), "owned");
        let s: Box<dyn std::any::Any + Send> = Box::new(7_u8);
        assert_eq!(panic_message(&*s), "non-string panic payload");
    }

    #[test]
    fn reports_display_what_did_not_stop() {
        let mut r = ShutdownReport::new(Arc::from("root"));
        assert_eq!(r.to_string(), "supervisor `root` stopped cleanly");
        r.not_stopped.push("root/x".into());
        assert!(!r.is_clean());
        assert!(r.to_string().contains("root/x"));
    }
}
