//! The two hand-offs of a job's path through the pool: fetcher → executor (claimed runs) and
//! run → completer (outcomes). Each receiver outlives the child that reads it, so a
//! restarted child picks up what its previous incarnation left.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::context::RunState;
use crate::pool::books::{lock, Books};
use crate::store::FinishOutcome;

/// A finished run waiting to be written.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) run: Arc<RunState>,
    pub(crate) outcome: FinishOutcome,
}

/// The receiving end of a hand-off, shared by the incarnations of the child that reads it.
pub(crate) type Inbox<T> = Arc<tokio::sync::Mutex<UnboundedReceiver<T>>>;

/// Where fetchers hand claimed runs to the executor.
#[derive(Clone, Debug)]
pub(crate) struct Runs {
    tx: UnboundedSender<Arc<RunState>>,
    books: Arc<Books>,
}

impl Runs {
    /// The sender, and the executor's inbox.
    pub(crate) fn channel(books: Arc<Books>) -> (Self, Inbox<Arc<RunState>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Runs { tx, books }, Arc::new(tokio::sync::Mutex::new(rx)))
    }

    /// Hands a run (already in the books) to the executor.
    pub(crate) fn send(&self, run: Arc<RunState>) {
        if let Err(unsent) = self.tx.send(run) {
            // The executor's inbox lives as long as the pool's tree: unreachable, but never
            // leave a run in the books.
            self.books.retire(&unsent.0);
        }
    }
}

/// Where runs hand their outcome to the completer; a run with none to write is retired.
#[derive(Clone, Debug)]
pub(crate) struct Outcomes {
    tx: UnboundedSender<Completion>,
    books: Arc<Books>,
}

/// The completer's inbox, and a batch whose write failed (retried first by the next
/// completer).
#[derive(Debug)]
pub(crate) struct CompletionInbox {
    pub(crate) completions: Inbox<Completion>,
    pub(crate) unflushed: Mutex<Vec<Completion>>,
}

impl CompletionInbox {
    /// Takes the batch a failed write left.
    pub(crate) fn take_unflushed(&self) -> Vec<Completion> {
        std::mem::take(&mut *lock(&self.unflushed))
    }

    /// Keeps a batch whose write failed for the next completer.
    pub(crate) fn keep_unflushed(&self, batch: Vec<Completion>) {
        lock(&self.unflushed).extend(batch);
    }
}

impl Outcomes {
    /// The sender, and the completer's inbox.
    pub(crate) fn channel(books: Arc<Books>) -> (Self, Arc<CompletionInbox>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let inbox = CompletionInbox {
            completions: Arc::new(tokio::sync::Mutex::new(rx)),
            unflushed: Mutex::new(Vec::new()),
        };
        (Outcomes { tx, books }, Arc::new(inbox))
    }

    /// Queues a finished run for the completer.
    pub(crate) fn complete(&self, run: Arc<RunState>, outcome: FinishOutcome) {
        if let Err(unsent) = self.tx.send(Completion { run, outcome }) {
            // The completer's inbox lives as long as the pool's tree: unreachable, but never
            // leave a run in the books.
            self.books.retire(&unsent.0.run);
        }
    }

    /// Takes a run with nothing to write (its lease was lost) out of the books.
    pub(crate) fn retire(&self, run: &RunState) {
        self.books.retire(run);
    }
}
