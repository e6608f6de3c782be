//! The sending side: a typed address that outlives the child's restarts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::state::State;
use super::{AddressStatus, CallError, SendError, Shared, TrySendError};

/// A typed address of a child declared with [`ChildSpec::with_mailbox`](crate::ChildSpec::with_mailbox).
///
/// The supervisor owns the channel, so the address stays valid across every restart of the
/// child: messages sent while it restarts wait in the bounded buffer for the next
/// incarnation, in order. Cheap to clone, usable from any task.
pub struct Address<M> {
    // one `Arc`: a clone (a registry look-up) is one atomic increment
    shared: Arc<Shared<M>>,
}

impl<M> Clone for Address<M> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<M> Address<M> {
    pub(crate) fn new(shared: Arc<Shared<M>>) -> Self {
        Self { shared }
    }

    fn tx(&self) -> &mpsc::Sender<M> {
        &self.shared.tx
    }

    /// The child's id.
    pub fn child(&self) -> &str {
        &self.state().child
    }

    /// Whether the child runs, is restarting, or has stopped for good.
    pub fn status(&self) -> AddressStatus {
        self.state().status()
    }

    /// True if both are addresses of the same mailbox.
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Identifies the mailbox (equal for addresses of one mailbox, as [`Address::same`]).
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.shared) as *const () as usize
    }

    pub(crate) fn state(&self) -> &State {
        &self.shared.state
    }

    fn stopped(&self, message: M) -> SendError<M> {
        let child = self.child().to_owned();
        SendError::Stopped { child, message }
    }

    /// Sends a message, waiting for room when the buffer is full (backpressure). While the
    /// child restarts the message waits in the buffer for the next incarnation.
    ///
    /// # Errors
    ///
    /// [`SendError::Stopped`] once the child has stopped for good (also while this call
    /// waits for room): it never hangs on a child that will not run again.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped, the message was not sent.
    pub async fn send(&self, message: M) -> Result<(), SendError<M>> {
        if self.state().is_stopped() {
            return Err(self.stopped(message));
        }
        match self.tx().try_send(message) {
            Ok(()) => self.after_send(),
            Err(mpsc::error::TrySendError::Full(m)) => self.send_slow(m).await,
            Err(mpsc::error::TrySendError::Closed(m)) => Err(self.stopped(m)),
        }
    }

    /// Waits for room, or for the child to stop for good.
    async fn send_slow(&self, message: M) -> Result<(), SendError<M>> {
        let stopped = self.state().stopped.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        if self.state().is_stopped() {
            return Err(self.stopped(message));
        }
        tokio::select! {
            permit = self.tx().reserve() => match permit {
                Ok(permit) if !self.state().is_stopped() => {
                    permit.send(message);
                    self.after_send()
                }
                _ => Err(self.stopped(message)),
            },
            () = stopped => Err(self.stopped(message)),
        }
    }

    /// A message sent just as the child stopped for good must not wait there for a revival
    /// (a caller would wait for an answer that never comes): drop what is buffered.
    fn after_send<E>(&self) -> Result<(), E> {
        if self.state().is_stopped() {
            self.shared.drain();
        }
        Ok(())
    }

    /// Sends a message if it can be delivered now; never waits and never queues for a
    /// restart.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`], [`TrySendError::Restarting`] (no incarnation runs now) or
    /// [`TrySendError::Stopped`], each with the message.
    pub fn try_send(&self, message: M) -> Result<(), TrySendError<M>> {
        let child = || self.child().to_owned();
        match self.state().status() {
            AddressStatus::Running => {}
            AddressStatus::Restarting => {
                return Err(TrySendError::Restarting {
                    child: child(),
                    message,
                })
            }
            AddressStatus::Stopped => {
                return Err(TrySendError::Stopped {
                    child: child(),
                    message,
                })
            }
        }
        match self.tx().try_send(message) {
            Ok(()) => self.after_send(),
            Err(mpsc::error::TrySendError::Full(message)) => Err(TrySendError::Full {
                child: child(),
                message,
            }),
            Err(mpsc::error::TrySendError::Closed(message)) => Err(TrySendError::Stopped {
                child: child(),
                message,
            }),
        }
    }

    /// Request/response: builds the request around a [`ReplyTo`], sends it (waiting for room
    /// like `send`) and waits for the answer, all within `timeout`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use supervisor::{Address, CallError, ReplyTo};
    /// enum Msg {
    ///     Get(String, ReplyTo<Option<String>>),
    /// }
    /// async fn get(cache: &Address<Msg>, key: &str) -> Result<Option<String>, CallError> {
    ///     cache.call(|r| Msg::Get(key.to_owned(), r), Duration::from_secs(1)).await
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`CallError::Timeout`] (the request may stay queued; its late answer is dropped),
    /// [`CallError::Stopped`], [`CallError::Dropped`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in the sense of `send`: a dropped call either never sent its request or
    /// left it queued, and its answer is then dropped.
    pub async fn call<R>(
        &self,
        request: impl FnOnce(ReplyTo<R>) -> M,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let (tx, rx) = oneshot::channel();
        let exchange = async {
            if self.send(request(ReplyTo(tx))).await.is_err() {
                return Err(CallError::Stopped {
                    child: self.child().to_owned(),
                });
            }
            rx.await.map_err(|_| self.unanswered())
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(CallError::Timeout {
                child: self.child().to_owned(),
                timeout,
            }),
        }
    }

    /// The request was dropped unanswered: by a stop for good, or by the incarnation.
    fn unanswered(&self) -> CallError {
        let child = self.child().to_owned();
        match self.state().is_stopped() {
            true => CallError::Stopped { child },
            false => CallError::Dropped { child },
        }
    }
}

impl<M> fmt::Debug for Address<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("child", &self.state().child)
            .field("status", &self.state().status())
            .field("queued", &(self.tx().max_capacity() - self.tx().capacity()))
            .finish()
    }
}

/// Where the answer to a [`call`](Address::call) goes; carried inside the request message.
pub struct ReplyTo<R>(oneshot::Sender<R>);

impl<R> ReplyTo<R> {
    /// Answers the call.
    ///
    /// # Errors
    ///
    /// Gives the answer back if the caller is no longer waiting (it timed out).
    pub fn send(self, answer: R) -> Result<(), R> {
        self.0.send(answer)
    }

    /// True if the caller is no longer waiting.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo")
            .field("closed", &self.is_closed())
            .finish()
    }
}
