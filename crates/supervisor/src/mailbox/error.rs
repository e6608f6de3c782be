//! What can go wrong sending to an address.

use std::fmt;
use std::time::Duration;

/// `send` failed: the child has stopped for good. The message is given back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The child stopped for good (temporary and ended, terminated, or its supervisor ended).
    #[error("child `{child}` has stopped; its address takes no messages until it is restarted")]
    Stopped {
        /// The child's id.
        child: String,
        /// The message, not sent.
        message: M,
    },
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_message(self) -> M {
        match self {
            Self::Stopped { message, .. } => message,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopped { child, .. } => f
                .debug_struct("Stopped")
                .field("child", child)
                .finish_non_exhaustive(),
        }
    }
}

/// `try_send` could not deliver at once. The message is given back, never queued.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<M> {
    /// The buffer is full; `send` waits for room.
    #[error("child `{child}`: mailbox full; `send` waits for room")]
    Full {
        /// The child's id.
        child: String,
        /// The message, not sent.
        message: M,
    },
    /// No incarnation runs now (first start or a restart pending); `send` would queue the
    /// message for the next one.
    #[error("child `{child}` is restarting; `send` queues the message for its next start")]
    Restarting {
        /// The child's id.
        child: String,
        /// The message, not sent.
        message: M,
    },
    /// The child stopped for good.
    #[error("child `{child}` has stopped; its address takes no messages until it is restarted")]
    Stopped {
        /// The child's id.
        child: String,
        /// The message, not sent.
        message: M,
    },
}

impl<M> TrySendError<M> {
    /// The message that was not sent.
    pub fn into_message(self) -> M {
        match self {
            Self::Full { message, .. }
            | Self::Restarting { message, .. }
            | Self::Stopped { message, .. } => message,
        }
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, child) = match self {
            Self::Full { child, .. } => ("Full", child),
            Self::Restarting { child, .. } => ("Restarting", child),
            Self::Stopped { child, .. } => ("Stopped", child),
        };
        f.debug_struct(name)
            .field("child", child)
            .finish_non_exhaustive()
    }
}

/// A `call` got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No answer within the timeout (the child may be restarting past it). The request may
    /// still be in the buffer; its late answer is dropped.
    #[error("child `{child}`: no answer within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// The child's id.
        child: String,
        /// The timeout given.
        timeout: Duration,
    },
    /// The child stopped for good before it answered.
    #[error("child `{child}` has stopped; the call was not answered")]
    Stopped {
        /// The child's id.
        child: String,
    },
    /// The incarnation that took the request dropped it unanswered (it crashed, and the
    /// message type does not opt in to be handed back).
    #[error("child `{child}` dropped the request without answering (it may have crashed)")]
    Dropped {
        /// The child's id.
        child: String,
    },
}
