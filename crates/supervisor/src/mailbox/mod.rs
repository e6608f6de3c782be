//! Stable addresses: a child declared with a typed mailbox whose channel the supervisor owns,
//! so one [`Address`] reaches every incarnation of the child.

mod address;
mod error;
mod inbox;
mod state;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

use crate::spec::{Factory, Lifecycle};
use crate::{ChildContext, ChildError, ChildKind, ChildSpec, SpecError};

pub use address::{Address, ReplyTo};
pub use error::{CallError, SendError, TrySendError};
pub use inbox::{HandBack, Inbox, Taken};
pub use state::AddressStatus;
pub(crate) use state::OnStop;

use inbox::Queue;
use state::State;

/// One mailbox: its status and its buffer (locked by the incarnation that receives).
pub(crate) struct Shared<M> {
    pub(crate) state: State,
    pub(crate) tx: mpsc::Sender<M>,
    queue: Arc<Mutex<Queue<M>>>,
}

impl<M> Shared<M> {
    /// Drops what is buffered, unless an incarnation holds the inbox.
    pub(crate) fn drain(&self) {
        if let Ok(mut queue) = self.queue.try_lock() {
            queue.clear();
        }
    }
}

/// The supervisor's side of a mailbox, kept in the child's spec: it hears when the child
/// stops for good, and when the last spec goes the child can never run again.
struct Owner<M>(Arc<Shared<M>>);

impl<M: Send> Lifecycle for Owner<M> {
    fn stopped(&self) {
        self.0.state.stop();
        self.0.drain();
    }
}

impl<M> Drop for Owner<M> {
    fn drop(&mut self) {
        self.0.state.stop();
        self.0.drain();
    }
}

impl ChildSpec {
    /// A worker with a typed mailbox of `capacity` messages, and the [`Address`] that
    /// reaches it across every restart. `factory(ctx, inbox)` builds each incarnation; the
    /// next incarnation gets the inbox once the previous one has ended.
    ///
    /// ```
    /// use supervisor::{ChildContext, ChildSpec, Inbox};
    ///
    /// # fn main() -> Result<(), supervisor::SpecError> {
    /// let (spec, address) = ChildSpec::with_mailbox(
    ///     "printer",
    ///     16,
    ///     |_ctx: ChildContext, mut inbox: Inbox<String>| async move {
    ///         while let Some(line) = inbox.recv().await {
    ///             println!("{line}");
    ///         }
    ///         Ok(()) // `recv` ends when the supervisor asks the child to stop
    ///     },
    /// )?;
    /// # drop((spec, address));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SpecError::ZeroCapacity`] for a capacity of 0, [`SpecError::EmptyId`] for an empty id.
    pub fn with_mailbox<M, F, Fut>(
        id: impl Into<String>,
        capacity: usize,
        factory: F,
    ) -> Result<(ChildSpec, Address<M>), SpecError>
    where
        M: Send + 'static,
        F: Fn(ChildContext, Inbox<M>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ChildError>> + Send + 'static,
    {
        let id: Arc<str> = Arc::from(id.into());
        if id.is_empty() {
            return Err(SpecError::EmptyId {
                supervisor: String::new(),
            });
        }
        if capacity == 0 {
            let child = id.to_string();
            return Err(SpecError::ZeroCapacity { child });
        }
        let (tx, rx) = mpsc::channel(capacity);
        let queue = Queue {
            rx,
            handed_back: Default::default(),
        };
        let shared = Arc::new(Shared {
            state: State::new(id.clone()),
            tx,
            queue: Arc::new(Mutex::new(queue)),
        });
        let address = Address::new(shared.clone());
        let factory = Arc::new(factory);
        let addr = address.clone();
        let shared_f = shared.clone();
        let build: Factory = Arc::new(move |ctx: ChildContext| {
            let (factory, shared, address) = (factory.clone(), shared_f.clone(), addr.clone());
            Box::pin(async move {
                // the previous incarnation's inbox is dropped when its task ends, before its
                // exit reaches the supervisor; the lock only orders a detached straggler
                let queue = shared.queue.clone().lock_owned().await;
                let inbox = Inbox::new(queue, shared, address, ctx.token().clone());
                factory(ctx, inbox).await
            })
        });
        let spec = Self::from_factory(id, build, ChildKind::Worker)
            .with_lifecycle(Arc::new(Owner(shared)));
        Ok((spec, address))
    }
}
