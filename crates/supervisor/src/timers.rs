//! A small timer queue: many deadlines, one tokio `Sleep`.

use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Sleep};

/// The instant `after` from now, or `None` (never) when it lies beyond what an `Instant` can
/// hold: every duration setting saturates to "no limit" instead of overflowing.
pub(crate) fn deadline(after: Duration) -> Option<Instant> {
    Instant::now().checked_add(after)
}

/// Identifies one armed timer, for cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerId(Instant, u64);

impl TimerId {
    /// The time left before it fires.
    pub(crate) fn left(self) -> std::time::Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// Deadlines ordered by time; insert and cancel are O(log n), firing is O(log n).
#[derive(Debug)]
pub(crate) struct Timers<T> {
    queue: BTreeMap<TimerId, T>,
    sleep: Pin<Box<Sleep>>,
    next_seq: u64,
}

impl<T> Timers<T> {
    pub(crate) fn new() -> Self {
        Self {
            queue: BTreeMap::new(),
            sleep: Box::pin(sleep_until(Instant::now())),
            next_seq: 0,
        }
    }

    /// Arms a timer `after` from now; `None` (never fires) when that is beyond [`deadline`].
    pub(crate) fn insert(&mut self, after: Duration, value: T) -> Option<TimerId> {
        let when = deadline(after)?;
        self.next_seq += 1;
        let id = TimerId(when, self.next_seq);
        self.queue.insert(id, value);
        Some(id)
    }

    /// Disarms a timer (`None`, a timer that never fires, is a no-op).
    pub(crate) fn remove(&mut self, id: Option<TimerId>) -> Option<T> {
        self.queue.remove(&id?)
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }

    /// Resolves with the value of the earliest timer once its deadline has passed.
    /// Pending forever while empty (inserts happen on the polling task, which re-polls).
    pub(crate) async fn next(&mut self) -> T {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        let Some(first) = self.queue.first_key_value().map(|(id, _)| *id) else {
            return Poll::Pending;
        };
        if self.sleep.deadline() != first.0 {
            self.sleep.as_mut().reset(first.0);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => match self.queue.pop_first() {
                Some((_, value)) => Poll::Ready(value),
                None => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_in_deadline_order_and_skips_removed() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.insert(Duration::from_secs(3), "c");
        let b = t.insert(Duration::from_secs(2), "b");
        t.insert(Duration::from_secs(1), "a");
        assert_eq!(t.insert(Duration::MAX, "never"), None);
        assert_eq!(t.remove(b), Some("b"));
        assert_eq!(t.next().await, "a");
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
        assert_eq!(t.next().await, "c");
        assert_eq!(Instant::now() - t0, Duration::from_secs(3));
        assert!(t.is_empty());
    }
}
