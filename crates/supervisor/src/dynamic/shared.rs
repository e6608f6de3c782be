//! The little state a dynamic supervisor shares with its handles, so that a handle can
//! start a child without a round trip to the supervisor's task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::SupervisorError;
use crate::ChildId;

/// Numbers every dynamic supervisor instance, so that the ids it issues are its own.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    count: usize,
    closed: bool,
}

/// Child ids and the live child count, guarded by a mutex held for a few instructions.
#[derive(Debug)]
pub(crate) struct Shared {
    instance: u64,
    state: Mutex<State>,
    max_children: Option<usize>,
}

/// Why no child may be added.
pub(crate) enum Refused {
    Closed,
    Full(usize),
}

impl Refused {
    /// The error a start refused this way gets from a running supervisor.
    pub(crate) fn into_error(self, supervisor: String) -> SupervisorError {
        match self {
            Refused::Full(max) => SupervisorError::MaxChildren { supervisor, max },
            Refused::Closed => SupervisorError::ShuttingDown { supervisor },
        }
    }
}

impl Shared {
    /// For a supervisor of at most `max_children` children (`None`: no limit).
    pub(crate) fn new(max_children: Option<usize>) -> Self {
        Shared {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            state: Mutex::default(),
            max_children,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // the critical sections cannot panic, so a poisoned lock still holds consistent state
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves an id and a slot for a new child.
    pub(crate) fn reserve(&self) -> Result<u64, Refused> {
        let mut s = self.lock();
        if s.closed {
            return Err(Refused::Closed);
        }
        if let Some(max) = self.max_children.filter(|&m| s.count >= m) {
            return Err(Refused::Full(max));
        }
        s.count += 1;
        s.next_id += 1;
        Ok(s.next_id)
    }

    /// The id of this supervisor's child number `n`.
    pub(crate) fn child_id(&self, n: u64) -> ChildId {
        ChildId::new(self.instance, n)
    }

    /// The child number behind `id`, if this supervisor issued it.
    pub(crate) fn number(&self, id: ChildId) -> Option<u64> {
        (id.supervisor() == self.instance).then_some(id.get())
    }

    /// A child is gone for good.
    pub(crate) fn release(&self) {
        let mut s = self.lock();
        s.count = s.count.saturating_sub(1);
    }

    /// No more children: the supervisor is shutting down.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }
}
