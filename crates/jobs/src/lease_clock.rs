//! A run's own view of its lease: when it runs out, measured on tokio's monotonic clock from
//! the moment the claim (or the last renewal that held) was sent, so a run notices a lost
//! lease without waiting for a store's answer, and a wall-clock jump cannot fool it.
//!
//! The store computes a lease's expiry from the `now` the engine passed in, which the engine
//! read just before sending the claim or renewal; the deadline here is taken at the same
//! moment, so it never falls later than the store's. Tokio's clock is monotonic and follows
//! paused time in tests, as [`Clock::tokio`](crate::Clock::tokio) does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A far-away deadline for lease lengths too long to add to an instant (30 years).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `from + ttl`, saturating at a far future instead of overflowing.
pub(crate) fn deadline_after(from: Instant, ttl: Duration) -> Instant {
    from.checked_add(ttl)
        .or_else(|| from.checked_add(FAR_FUTURE))
        .unwrap_or(from)
}

/// When one run's lease runs out, as far as the run knows. Once it has run out it stays so:
/// a renewal that answers late does not revive it.
///
/// The deadline is kept as nanoseconds after the first one, in an atomic, so a check takes
/// no lock (a run checks at every safe point).
#[derive(Debug)]
pub(crate) struct LeaseClock {
    /// The first deadline; later ones are stored relative to it.
    base: Instant,
    /// The deadline now, in nanoseconds after `base` (only ever raised).
    after_base: AtomicU64,
    expired: AtomicBool,
}

impl LeaseClock {
    /// A lease that runs out at `deadline`.
    pub(crate) fn new(deadline: Instant) -> Self {
        LeaseClock {
            base: deadline,
            after_base: AtomicU64::new(0),
            expired: AtomicBool::new(false),
        }
    }

    /// Moves the deadline forward to `deadline` (a renewal that held, sent when `deadline`
    /// minus the lease length was now); never backward, and not once the lease ran out.
    pub(crate) fn renewed(&self, deadline: Instant) {
        if self.has_expired() {
            return;
        }
        let nanos = deadline.saturating_duration_since(self.base).as_nanos();
        // Saturates ~584 years after the first deadline: far past any lease.
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        self.after_base.fetch_max(nanos, Ordering::AcqRel);
    }

    fn deadline(&self) -> Instant {
        let after = Duration::from_nanos(self.after_base.load(Ordering::Acquire));
        deadline_after(self.base, after)
    }

    /// Whether the lease has run out (checked against the clock now; cheap).
    pub(crate) fn has_expired(&self) -> bool {
        if self.expired.load(Ordering::Acquire) {
            return true;
        }
        if Instant::now() >= self.deadline() {
            self.expired.store(true, Ordering::Release);
            return true;
        }
        false
    }

    /// Resolves when the lease runs out (following renewals).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub(crate) async fn expired(&self) {
        while !self.has_expired() {
            tokio::time::sleep_until(self.deadline()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn runs_out_at_its_deadline_unless_renewed_before() {
        let start = Instant::now();
        let lease = LeaseClock::new(start + Duration::from_secs(30));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(!lease.has_expired());
        lease.renewed(start + Duration::from_secs(50));
        lease.renewed(start + Duration::from_secs(40)); // never backward
        tokio::time::timeout(Duration::from_secs(29), lease.expired())
            .await
            .expect_err("renewed to 50 s");
        lease.expired().await;
        assert_eq!(start.elapsed(), Duration::from_secs(50));
        lease.renewed(start + Duration::from_secs(500));
        assert!(lease.has_expired(), "a late renewal does not revive it");
    }

    #[test]
    fn huge_lease_lengths_saturate() {
        let now = Instant::now();
        assert!(deadline_after(now, Duration::MAX) > now + Duration::from_secs(3600));
    }
}
