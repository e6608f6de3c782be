//! The receiving side, held by one incarnation of the child at a time.

use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use tokio::sync::{mpsc, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;

use super::{Address, Shared};

/// The buffer behind a mailbox: the channel, and messages handed back by a crashed
/// incarnation, delivered first.
pub(crate) struct Queue<M> {
    pub(crate) rx: mpsc::Receiver<M>,
    pub(crate) handed_back: VecDeque<M>,
}

impl<M> Queue<M> {
    /// Drops everything buffered.
    pub(crate) fn clear(&mut self) {
        self.handed_back.clear();
        while self.rx.try_recv().is_ok() {}
    }
}

/// Opt-in for a message type whose unfinished messages are handed back to the next
/// incarnation when the one that took them crashes (with [`Inbox::take`]).
///
/// Implement it when handling a message twice is safe (idempotent work, or a request whose
/// reply channel travels with it); without it an incarnation that crashes loses the message
/// it had taken, as a process's mailbox dies with it in Erlang.
pub trait HandBack: Send + 'static {}

/// A child's mailbox as one incarnation sees it; given to the child's factory on every
/// (re)start. Messages not received when the incarnation ends stay for the next one.
pub struct Inbox<M> {
    queue: OwnedMutexGuard<Queue<M>>,
    shared: Arc<Shared<M>>,
    address: Address<M>,
    token: CancellationToken,
}

impl<M> Inbox<M> {
    pub(crate) fn new(
        queue: OwnedMutexGuard<Queue<M>>,
        shared: Arc<Shared<M>>,
        address: Address<M>,
        token: CancellationToken,
    ) -> Self {
        shared.state.running();
        Self {
            queue,
            shared,
            address,
            token,
        }
    }

    /// The next message (messages handed back first, then in sending order); `None` once
    /// the supervisor has asked the child to stop and no message is ready, so a stopping
    /// child drains what is buffered within its linger bound (check
    /// [`ChildContext::is_cancelled`](crate::ChildContext::is_cancelled) to stop at once).
    /// Unreceived messages stay for the next incarnation, or are dropped when the child
    /// stops for good.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is never lost by dropping this future.
    pub async fn recv(&mut self) -> Option<M> {
        if let Some(m) = self.try_recv() {
            return Some(m);
        }
        tokio::select! {
            biased;
            m = self.queue.rx.recv() => m,
            () = self.token.cancelled() => None,
        }
    }

    /// The next message if one is buffered now.
    pub fn try_recv(&mut self) -> Option<M> {
        if let Some(m) = self.queue.handed_back.pop_front() {
            return Some(m);
        }
        self.queue.rx.try_recv().ok()
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.queue.handed_back.len() + self.queue.rx.len()
    }

    /// True when no message waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The child's own address (to register it, or to give to others).
    pub fn address(&self) -> &Address<M> {
        &self.address
    }
}

impl<M: HandBack> Inbox<M> {
    /// Like [`recv`](Self::recv), but the message is handed back (to the front of the
    /// mailbox, for the next incarnation) unless [`Taken::done`] is called: when the child
    /// panics, returns an error or is aborted while holding it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as `recv`.
    pub async fn take(&mut self) -> Option<Taken<'_, M>> {
        let message = self.recv().await?;
        Some(Taken {
            message: Some(message),
            back: &mut self.queue.handed_back,
        })
    }
}

impl<M> Drop for Inbox<M> {
    fn drop(&mut self) {
        self.shared.state.down();
    }
}

impl<M> fmt::Debug for Inbox<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("child", &self.shared.state.child)
            .field("queued", &self.len())
            .finish()
    }
}

/// A message taken with [`Inbox::take`]: handed back on drop unless [`done`](Self::done).
pub struct Taken<'a, M> {
    message: Option<M>,
    back: &'a mut VecDeque<M>,
}

impl<M> Taken<'_, M> {
    /// The message is handled: it will not be handed back.
    pub fn done(mut self) -> M {
        match self.message.take() {
            Some(m) => m,
            // `message` is only emptied here and in `drop`, each of which consumes `self`
            None => unreachable!("a Taken holds its message until done or dropped"),
        }
    }
}

impl<M> Deref for Taken<'_, M> {
    type Target = M;

    fn deref(&self) -> &M {
        match &self.message {
            Some(m) => m,
            None => unreachable!("a Taken holds its message until done or dropped"),
        }
    }
}

impl<M> DerefMut for Taken<'_, M> {
    fn deref_mut(&mut self) -> &mut M {
        match &mut self.message {
            Some(m) => m,
            None => unreachable!("a Taken holds its message until done or dropped"),
        }
    }
}

impl<M> Drop for Taken<'_, M> {
    fn drop(&mut self) {
        if let Some(m) = self.message.take() {
            tracing::debug!(target: "supervisor", "unfinished message handed back to the mailbox");
            self.back.push_front(m);
        }
    }
}

impl<M> fmt::Debug for Taken<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Taken").finish_non_exhaustive()
    }
}
