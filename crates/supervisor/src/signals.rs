//! Running a tree until SIGTERM / SIGINT (or any stream of signals), then shutting it down
//! within a bound. The process-signal parts need the `signals` feature (on by default).

use std::fmt;
#[cfg(feature = "signals")]
use std::io;
use std::process::ExitCode;
use std::time::Duration;

#[cfg(feature = "signals")]
use futures::stream::{self, BoxStream};
use futures::stream::{Stream, StreamExt};

use crate::{DynamicHandle, ShutdownReport, SupervisorHandle};

/// A process signal that asks for shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// SIGTERM.
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
}

/// The root of a tree `run_until_signal` can stop: a static or a dynamic supervisor.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TreeHandle {
    /// A static supervisor.
    Static(SupervisorHandle),
    /// A dynamic supervisor.
    Dynamic(DynamicHandle),
}

impl From<SupervisorHandle> for TreeHandle {
    fn from(h: SupervisorHandle) -> Self {
        Self::Static(h)
    }
}

impl From<DynamicHandle> for TreeHandle {
    fn from(h: DynamicHandle) -> Self {
        Self::Dynamic(h)
    }
}

impl TreeHandle {
    async fn shutdown(&self) -> ShutdownReport {
        match self {
            Self::Static(h) => h.shutdown().await,
            Self::Dynamic(h) => h.shutdown().await,
        }
    }

    async fn wait(&self) {
        let _ = match self {
            Self::Static(h) => h.wait().await,
            Self::Dynamic(h) => h.wait().await,
        };
    }

    fn kill(&self) {
        match self {
            Self::Static(h) => h.kill(),
            Self::Dynamic(h) => h.kill(),
        }
    }
}

/// How [`run_until_signal`] ended.
#[derive(Clone, Debug)]
#[must_use = "an outcome tells whether the shutdown was clean; return its `exit_code()`"]
pub struct SignalOutcome {
    /// The signal that started the shutdown; `None` if the tree ended by itself.
    pub signal: Option<Signal>,
    /// True when the orderly shutdown was cut short (a second signal, or the bound elapsed)
    /// and the remaining children were aborted.
    pub forced: bool,
    /// The root supervisor's final report.
    pub report: ShutdownReport,
}

impl SignalOutcome {
    /// True when every child stopped, nothing had to be forced, and the tree did not end
    /// with an error.
    pub fn is_clean(&self) -> bool {
        !self.forced && self.report.is_clean() && self.report.exit().is_ok()
    }

    /// `ExitCode::SUCCESS` when clean, `ExitCode::FAILURE` otherwise; return it from `main`.
    pub fn exit_code(&self) -> ExitCode {
        if self.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

impl fmt::Display for SignalOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.signal {
            Some(s) => write!(f, "{s:?} received; ")?,
            None => f.write_str("tree ended by itself; ")?,
        }
        if self.forced {
            f.write_str("shutdown forced; ")?;
        }
        write!(f, "{}", self.report)
    }
}

/// Runs the tree until SIGTERM or SIGINT, then shuts it down in order; if that takes longer
/// than `bound`, or a second signal arrives, the remaining children are aborted (brutal kill).
/// Returns at once if the tree ends by itself.
///
/// ```no_run
/// # async fn demo(spec: supervisor::SupervisorSpec) -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let handle = spec.start().await?;
/// let outcome = supervisor::run_until_signal(handle, Duration::from_secs(30)).await?;
/// eprintln!("{outcome}");
/// Ok(outcome.exit_code())
/// # }
/// ```
///
/// # Errors
///
/// An I/O error if the signal handlers cannot be installed.
#[cfg(feature = "signals")]
pub async fn run_until_signal(
    handle: impl Into<TreeHandle>,
    bound: Duration,
) -> io::Result<SignalOutcome> {
    let signals = os_signals()?;
    Ok(run_until(handle, bound, signals).await)
}

/// [`run_until_signal`] with the signals taken from any stream (for tests, or to add your
/// own triggers).
pub async fn run_until<S>(
    handle: impl Into<TreeHandle>,
    bound: Duration,
    signals: S,
) -> SignalOutcome
where
    S: Stream<Item = Signal> + Unpin,
{
    let handle = handle.into();
    let mut signals = signals.fuse();
    let signal = tokio::select! {
        Some(s) = signals.next() => s,
        () = handle.wait() => {
            let report = handle.shutdown().await;
            return SignalOutcome { signal: None, forced: false, report };
        }
    };
    tracing::info!(target: "supervisor", ?signal, "signal received; shutting down");
    let shutdown = handle.shutdown();
    let deadline = tokio::time::sleep(bound);
    tokio::pin!(shutdown, deadline);
    let mut forced = false;
    loop {
        tokio::select! {
            report = &mut shutdown => return SignalOutcome { signal: Some(signal), forced, report },
            () = &mut deadline, if !forced => {
                tracing::warn!(target: "supervisor", bound = %humantime::format_duration(bound), "shutdown bound elapsed; killing");
                forced = true;
                handle.kill();
            }
            Some(_) = signals.next(), if !forced => {
                tracing::warn!(target: "supervisor", "second signal; killing");
                forced = true;
                handle.kill();
            }
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C) as one stream, for callers that drive their own shutdown
/// (the `jobs` pool uses it for its two-phase shutdown).
///
/// # Errors
///
/// An I/O error if the signal handlers cannot be installed.
#[cfg(all(unix, feature = "signals"))]
pub fn os_signals() -> io::Result<BoxStream<'static, Signal>> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate())?;
    let int = signal(SignalKind::interrupt())?;
    let term = stream::unfold(term, |mut s| async move {
        s.recv().await.map(|()| (Signal::Terminate, s))
    });
    let int = stream::unfold(int, |mut s| async move {
        s.recv().await.map(|()| (Signal::Interrupt, s))
    });
    Ok(stream::select(term, int).boxed())
}

/// Ctrl-C as a stream (SIGTERM does not exist here).
///
/// # Errors
///
/// An I/O error if the handler cannot be installed.
#[cfg(all(not(unix), feature = "signals"))]
pub fn os_signals() -> io::Result<BoxStream<'static, Signal>> {
    let int = stream::unfold((), |()| async move {
        tokio::signal::ctrl_c()
            .await
            .ok()
            .map(|()| (Signal::Interrupt, ()))
    });
    Ok(int.boxed())
}
