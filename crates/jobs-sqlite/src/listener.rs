//! Wake-ups: a broadcast of the queue names that got available jobs from this store
//! (insert, release, retry or rescue to available, promotion), and, for a file, a poll of
//! `data_version` that hears other processes' writes ([`ANY_QUEUE`]: the engine wakes every
//! queue).

use std::sync::Mutex;

use futures::future::BoxFuture;
use jobs::store::{JobListener, ANY_QUEUE};
use jobs::StoreError;
use tokio::sync::broadcast;

use crate::data_version::DataVersionPoll;

/// Wake-ups buffered per listener before the oldest are dropped (a lagging listener still
/// wakes: the newest names stay).
const CAPACITY: usize = 256;

/// The sending side, owned by the store; taken away on close, which ends every listener.
#[derive(Debug)]
pub(crate) struct Notifier {
    sender: Mutex<Option<broadcast::Sender<String>>>,
}

impl Notifier {
    pub(crate) fn new() -> Self {
        Notifier {
            sender: Mutex::new(Some(broadcast::channel(CAPACITY).0)),
        }
    }

    /// Announces that `queues` got available jobs.
    pub(crate) fn notify(&self, queues: Vec<String>) {
        if queues.is_empty() {
            return;
        }
        let guard = self
            .sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = guard.as_ref().filter(|s| s.receiver_count() > 0) {
            for queue in queues {
                // An error only means every listener went away meanwhile.
                let _ = sender.send(queue);
            }
        }
    }

    /// A new listener (hearing other processes through `poll`, if given), or `None` once
    /// closed.
    pub(crate) fn subscribe(&self, poll: Option<DataVersionPoll>) -> Option<SqliteListener> {
        let guard = self
            .sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.as_ref().map(|sender| SqliteListener {
            receiver: sender.subscribe(),
            poll,
        })
    }

    /// Ends every listener: their `next` returns [`StoreError::Closed`].
    pub(crate) fn close(&self) {
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }
}

/// A [`JobListener`] for one [`SqliteStore`](crate::SqliteStore), from
/// [`Store::listen`](jobs::store::Store::listen).
#[derive(Debug)]
pub(crate) struct SqliteListener {
    receiver: broadcast::Receiver<String>,
    /// Other processes' writes (files only).
    poll: Option<DataVersionPoll>,
}

impl JobListener for SqliteListener {
    /// The next queue that got available jobs from this process, or [`ANY_QUEUE`] when
    /// another process wrote and some job is available.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a wake-up not yet returned stays buffered.
    fn next(&mut self) -> BoxFuture<'_, Result<String, StoreError>> {
        Box::pin(async move {
            loop {
                let received = tokio::select! {
                    received = self.receiver.recv() => received,
                    changed = other_writes(self.poll.as_mut()) => {
                        changed?;
                        return Ok(ANY_QUEUE.to_owned());
                    }
                };
                match received {
                    Ok(queue) => return Ok(queue),
                    // Missed wake-ups: the buffer still holds the newest, read on.
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "sqlite job listener lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
                }
            }
        })
    }
}

/// Resolves when another process wrote (never without a poll).
async fn other_writes(poll: Option<&mut DataVersionPoll>) -> Result<(), StoreError> {
    match poll {
        Some(poll) => poll.changed().await,
        None => std::future::pending().await,
    }
}
