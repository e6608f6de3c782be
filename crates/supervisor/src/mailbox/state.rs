//! What an address and its child's incarnations share: whether a child is running, and who
//! must hear when it stops for good.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Whether the child behind an [`Address`](crate::Address) can take messages now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressStatus {
    /// An incarnation holds the inbox and receives.
    Running,
    /// No incarnation runs now, one is expected: before the first start, or while a
    /// (delayed) restart is pending. `send` waits in the buffer for it.
    Restarting,
    /// The child has stopped for good (a temporary child ended, it was terminated, its
    /// supervisor ended); senders get an error until a restart by hand revives it.
    Stopped,
}

const RUNNING: u8 = 0;
const RESTARTING: u8 = 1;
const STOPPED: u8 = 2;

/// Run once when the child stops for good (a registry entry removing itself).
pub(crate) type OnStop = Box<dyn FnOnce() + Send>;

/// The status of one child's mailbox, shared by its addresses, its inbox and its spec.
pub(crate) struct State {
    pub(crate) child: Arc<str>,
    status: AtomicU8,
    /// Wakes senders blocked on a full buffer when the child stops for good.
    pub(crate) stopped: Notify,
    on_stop: Mutex<Vec<OnStop>>,
}

impl State {
    pub(crate) fn new(child: Arc<str>) -> Self {
        Self {
            child,
            status: AtomicU8::new(RESTARTING),
            stopped: Notify::new(),
            on_stop: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn status(&self) -> AddressStatus {
        match self.status.load(Ordering::Acquire) {
            RUNNING => AddressStatus::Running,
            RESTARTING => AddressStatus::Restarting,
            _ => AddressStatus::Stopped,
        }
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.status.load(Ordering::Acquire) == STOPPED
    }

    /// An incarnation took the inbox (also a child revived by `restart_child`).
    pub(crate) fn running(&self) {
        self.status.store(RUNNING, Ordering::Release);
    }

    /// The incarnation that held the inbox ended; unless the child already stopped for good,
    /// a restart is expected.
    pub(crate) fn down(&self) {
        let _ =
            self.status
                .compare_exchange(RUNNING, RESTARTING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The child stopped for good: wake blocked senders, run the stop hooks (once).
    pub(crate) fn stop(&self) {
        if self.status.swap(STOPPED, Ordering::AcqRel) == STOPPED {
            return;
        }
        self.stopped.notify_waiters();
        let hooks = std::mem::take(&mut *self.hooks());
        for hook in hooks {
            hook();
        }
    }

    fn hooks(&self) -> MutexGuard<'_, Vec<OnStop>> {
        // the critical sections only push or take the vector: a poisoned lock is consistent
        self.on_stop.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `register` and keeps the hook it returns for the stop, unless the child has
    /// already stopped for good (then `None`, and nothing ran). Atomic with [`State::stop`]:
    /// a hook is either run by the stop or never registered.
    pub(crate) fn on_stop<T>(&self, register: impl FnOnce() -> (T, Option<OnStop>)) -> Option<T> {
        let mut hooks = self.hooks();
        if self.is_stopped() {
            return None;
        }
        let (value, hook) = register();
        hooks.extend(hook);
        Some(value)
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("child", &self.child)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn a_stopped_mailbox_stays_stopped_until_an_incarnation_runs() {
        let state = State::new(Arc::from("c"));
        assert_eq!(state.status(), AddressStatus::Restarting);
        state.running();
        state.down();
        assert_eq!(state.status(), AddressStatus::Restarting);
        state.stop();
        state.down(); // a straggler's inbox dropped late does not revive it
        assert_eq!(state.status(), AddressStatus::Stopped);
        state.running(); // restart_child
        assert_eq!(state.status(), AddressStatus::Running);
    }

    #[test]
    fn stop_hooks_run_once_and_none_is_kept_after_the_stop() {
        let state = State::new(Arc::from("c"));
        let runs = Arc::new(AtomicUsize::new(0));
        let hook = |runs: &Arc<AtomicUsize>| -> OnStop {
            let runs = runs.clone();
            Box::new(move || {
                runs.fetch_add(1, Ordering::SeqCst);
            })
        };
        assert_eq!(state.on_stop(|| (1, Some(hook(&runs)))), Some(1));
        state.stop();
        state.stop();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(state.on_stop(|| (2, Some(hook(&runs)))), None);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
