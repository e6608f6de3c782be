//! The pool's stop signals, from the gentlest to the hardest.

use tokio_util::sync::CancellationToken;

/// Cancellation tokens every part that must stop watches. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Stops {
    /// Cancelled when shutdown starts: jobs see `is_shutting_down()`.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled by shutdown or drain: fetchers stop claiming.
    pub(crate) stop_fetching: CancellationToken,
    /// Cancelled to skip the grace period: running jobs are aborted and released at once.
    pub(crate) hard_stop: CancellationToken,
}

impl Stops {
    pub(crate) fn new() -> Self {
        let shutdown = CancellationToken::new();
        Stops {
            stop_fetching: shutdown.child_token(),
            shutdown,
            hard_stop: CancellationToken::new(),
        }
    }
}
