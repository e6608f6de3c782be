//! What a running child knows about itself.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::child::RunKey;
use crate::tree::{Nested, NestedSlot};
use crate::ChildId;

/// Handed to a child's start factory on every (re)start.
///
/// It tells the child its id and how often it has been restarted, carries the cancellation
/// token the supervisor cancels to ask it to stop, and lets a child declared with
/// [`ChildSpec::wait_for_ready`](crate::ChildSpec::wait_for_ready) signal readiness.
///
/// # Stopping
///
/// When its supervisor stops it, the child's token is cancelled. The child may then linger
/// to release what it holds; when its [`Shutdown`](crate::Shutdown) bound elapses it is
/// aborted. A child that returns (with `Ok` or `Err`) after its token was cancelled by the
/// supervisor has exited with reason `shutdown`.
#[derive(Clone)]
pub struct ChildContext {
    id: Arc<str>,
    instance: Option<ChildId>,
    restarts: u32,
    token: CancellationToken,
    ready: Option<ReadyLink>,
    nested: Option<NestedSlot>,
}

/// Where a child's readiness goes: the supervisor's ready channel plus the run's key.
#[derive(Clone)]
pub(crate) struct ReadyLink {
    pub(crate) tx: mpsc::UnboundedSender<RunKey>,
    pub(crate) key: RunKey,
}

impl ChildContext {
    pub(crate) fn new(
        id: Arc<str>,
        instance: Option<ChildId>,
        restarts: u32,
        token: CancellationToken,
        ready: Option<ReadyLink>,
    ) -> Self {
        Self {
            id,
            instance,
            restarts,
            token,
            ready,
            nested: None,
        }
    }

    /// Gives a supervisor child a slot for its handle, which its parent keeps for the tree.
    pub(crate) fn watch_nested(&mut self) -> NestedSlot {
        self.nested.get_or_insert_with(NestedSlot::default).clone()
    }

    /// Publishes a nested supervisor's handle to its parent (see [`watch_nested`](Self::watch_nested)).
    pub(crate) fn publish_nested(&self, nested: Nested) {
        if let Some(slot) = &self.nested {
            // set once per spawn: a supervisor child's task runs one supervisor
            let _ = slot.set(nested);
        }
    }

    /// The child's id, as given in its [`ChildSpec`](crate::ChildSpec).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The instance id under a dynamic supervisor (`None` under a static one).
    pub fn instance(&self) -> Option<ChildId> {
        self.instance
    }

    /// How many times this child has been restarted (0 on its first start).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The token the supervisor cancels to ask the child to stop.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Resolves when the supervisor asks the child to stop.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future and calling again observes the same token.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// True once the supervisor has asked the child to stop.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Signals that the child is ready; the supervisor then starts the next child.
    ///
    /// Only children declared with [`ChildSpec::wait_for_ready`](crate::ChildSpec::wait_for_ready)
    /// are waited for; for others (and after the first call) this does nothing.
    pub fn ready(&self) {
        if let Some(link) = &self.ready {
            // a closed channel means the supervisor is gone; nobody is waiting any more
            let _ = link.tx.send(link.key);
        }
    }
}

impl fmt::Debug for ChildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildContext")
            .field("id", &self.id)
            .field("instance", &self.instance)
            .field("restarts", &self.restarts)
            .field("cancelled", &self.token.is_cancelled())
            .finish()
    }
}
