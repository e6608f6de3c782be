//! Wall-clock timestamps and the clock the engine reads them from.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in wall-clock time: microseconds since the Unix epoch (UTC).
///
/// Stores keep it as an integer (SQLite) or a `timestamptz` (PostgreSQL); the engine
/// always passes "now" into the store, so tests control time in SQL too.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from microseconds since the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The system's wall clock now.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// This timestamp moved `d` later (saturating).
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_micros(d)))
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;

    /// This timestamp moved `d` earlier (saturating).
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_micros(d)))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(duration_micros(after)),
            Err(before) => Timestamp(-duration_micros(before.duration())),
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        if t.0 >= 0 {
            UNIX_EPOCH + Duration::from_micros(t.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_micros(t.0.unsigned_abs())
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            humantime::format_rfc3339_micros(SystemTime::from(*self))
        )
    }
}

/// Where the engine reads "now" from.
///
/// [`Clock::System`] is the wall clock. [`Clock::Tokio`] is a wall clock anchored once and
/// then advanced by tokio's clock, so `tokio::time::pause()` / `advance()` move it: engine
/// tests on paused time see leases expire and backoffs elapse without sleeping.
#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    /// `SystemTime::now()`.
    #[default]
    System,
    /// The wall-clock time at `anchor_instant`, advanced by tokio's clock since then.
    Tokio {
        /// Wall-clock time at the anchor.
        anchor: Timestamp,
        /// Tokio instant at the anchor.
        anchor_instant: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that follows tokio's (possibly paused) time, anchored at the wall clock now.
    pub fn tokio() -> Self {
        Clock::Tokio {
            anchor: Timestamp::now(),
            anchor_instant: tokio::time::Instant::now(),
        }
    }

    /// The current time on this clock.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Tokio {
                anchor,
                anchor_instant,
            } => *anchor + anchor_instant.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_system_time() {
        let t = Timestamp::from_micros(1_700_000_000_123_456);
        assert_eq!(Timestamp::from(SystemTime::from(t)), t);
        assert_eq!(
            (t + Duration::from_secs(1)).as_micros(),
            1_700_000_001_123_456
        );
        assert_eq!(
            (t + Duration::from_secs(2)).duration_since(t),
            Duration::from_secs(2)
        );
        assert_eq!(t.duration_since(t + Duration::from_secs(2)), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = Clock::tokio();
        let before = clock.now();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(clock.now().duration_since(before), Duration::from_secs(30));
    }
}
