//! A queue's executor slots, handed out by job priority: a claimed job waiting for a slot
//! starts before every waiting job of lower priority, whatever order they were claimed in,
//! and in claim order among equals. (A FIFO semaphore would start a newly claimed urgent job
//! only after every job prefetched before it.)

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// A queue's slots.
#[derive(Debug)]
pub(crate) struct Slots {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Slots nobody holds (only while nobody waits).
    free: usize,
    waiting: BinaryHeap<Waiter>,
    /// Arrival order, to keep claim order among jobs of one priority.
    arrivals: u64,
}

/// A job waiting for a slot; the slot is handed over through `grant`.
#[derive(Debug)]
struct Waiter {
    priority: i16,
    arrival: u64,
    grant: oneshot::Sender<()>,
}

impl Ord for Waiter {
    /// Higher priority first, then earlier arrival (a max-heap pops the greatest).
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.arrival.cmp(&self.arrival))
    }
}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Waiter {}

/// A held slot; dropping it hands the slot to the highest-priority waiter.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    slots: &'a Slots,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.slots.release();
    }
}

/// A wait for a slot; if dropped after the slot was handed over, it hands it on.
struct Pending<'a> {
    slots: &'a Slots,
    grant: oneshot::Receiver<()>,
    taken: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        self.grant.close();
        if self.grant.try_recv().is_ok() {
            self.slots.release();
        }
    }
}

impl Slots {
    /// `count` free slots.
    pub(crate) fn new(count: usize) -> Self {
        Slots {
            state: Mutex::new(State {
                free: count,
                waiting: BinaryHeap::new(),
                arrivals: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a counter update or one heap operation: a panic cannot
        // leave the state inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Slots nobody holds now.
    pub(crate) fn available(&self) -> usize {
        self.state().free
    }

    /// A slot at once if one is free (nobody waits while one is), without queueing.
    pub(crate) fn try_acquire(&self) -> Option<Slot<'_>> {
        let mut state = self.state();
        if state.free > 0 {
            state.free -= 1;
            return Some(Slot { slots: self });
        }
        None
    }

    /// Waits for a slot; among waiters, the highest `priority` (then the earliest) gets the
    /// next one.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a slot handed to a cancelled wait goes to the next waiter.
    pub(crate) async fn acquire(&self, priority: i16) -> Slot<'_> {
        let grant = {
            let mut state = self.state();
            if state.free > 0 {
                state.free -= 1;
                return Slot { slots: self };
            }
            let (grant, granted) = oneshot::channel();
            let arrival = state.arrivals;
            state.arrivals += 1;
            state.waiting.push(Waiter {
                priority,
                arrival,
                grant,
            });
            granted
        };
        let mut pending = Pending {
            slots: self,
            grant,
            taken: false,
        };
        // The sender lives in the heap until it hands the slot over; it is dropped unsent
        // only when the heap is, with `self`, which outlives this borrow.
        let _ = (&mut pending.grant).await;
        pending.taken = true;
        Slot { slots: self }
    }

    /// Hands a slot to the best live waiter, or frees it.
    fn release(&self) {
        let mut state = self.state();
        while let Some(waiter) = state.waiting.pop() {
            if waiter.grant.send(()).is_ok() {
                return;
            }
        }
        state.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn the_highest_priority_waiter_gets_the_next_slot_then_the_earliest() {
        let slots = Arc::new(Slots::new(1));
        let held = slots.acquire(0).await;
        assert_eq!(slots.available(), 0);
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (name, priority) in [("low-1", 0), ("low-2", 0), ("high", 10), ("mid", 5)] {
            let slots = Arc::clone(&slots);
            let order_tx = order_tx.clone();
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire(priority).await;
                order_tx.send(name).unwrap();
            }));
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        let mut got = Vec::new();
        while let Ok(name) = order.try_recv() {
            got.push(name);
        }
        assert_eq!(got, ["high", "mid", "low-1", "low-2"]);
        assert_eq!(slots.available(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_wait_passes_its_slot_on() {
        let slots = Slots::new(1);
        let held = slots.acquire(0).await;
        let mut cancelled = Box::pin(slots.acquire(5));
        assert!(futures::poll!(&mut cancelled).is_pending());
        let mut next = Box::pin(slots.acquire(1));
        assert!(futures::poll!(&mut next).is_pending());
        drop(held); // handed to the priority-5 wait...
        drop(cancelled); // ...which is gone: on to the next
        let _slot = next.await;
        assert_eq!(slots.available(), 0);
    }
}
