//! Restart intensity: at most `max_restarts` restarts within `period`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The restart intensity limit: a supervisor allows at most `max_restarts` restarts within
/// any `period`. One more stops all its children and ends it with
/// [`SupervisorError::IntensityExceeded`](crate::SupervisorError::IntensityExceeded).
///
/// Default: 1 restart in 5 seconds, as in Erlang/OTP (Elixir uses 3 in 5 s). A restart
/// exactly `period` ago no longer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intensity {
    max_restarts: u32,
    period: Duration,
}

impl Intensity {
    /// At most `max_restarts` restarts within `period` (a zero period is rejected when the
    /// supervisor spec is built).
    pub fn new(max_restarts: u32, period: Duration) -> Self {
        Self {
            max_restarts,
            period,
        }
    }

    /// The maximum number of restarts within the period.
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// The sliding window.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl Default for Intensity {
    fn default() -> Self {
        Self::new(1, Duration::from_secs(5))
    }
}

/// The instants of recent restarts, oldest first, trimmed to the window.
///
/// Each restart pushes one instant and pops the expired ones, and the log never holds more
/// than `max_restarts + 1` instants, so the cost is O(1) amortized per restart whatever the
/// window (OTP walks its whole list on every restart).
#[derive(Debug)]
pub(crate) struct RestartLog {
    limit: Intensity,
    recent: VecDeque<Instant>,
}

impl RestartLog {
    pub(crate) fn new(limit: Intensity) -> Self {
        Self {
            limit,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now`; returns false when it exceeds the intensity.
    pub(crate) fn record(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) < self.limit.period {
                break;
            }
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let max = self.limit.max_restarts as usize;
        if self.recent.len() > max {
            // keep the log bounded: only the newest `max` instants matter from here on
            self.recent.pop_front();
            return false;
        }
        true
    }

    pub(crate) fn limit(&self) -> Intensity {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn exceeds_within_the_period() {
        let t0 = Instant::now();
        let mut log = RestartLog::new(Intensity::new(2, secs(5)));
        assert!(log.record(t0));
        assert!(log.record(t0 + secs(1)));
        assert!(!log.record(t0 + secs(2)));
    }

    #[test]
    fn restarts_spread_over_time_do_not_exceed() {
        let t0 = Instant::now();
        let mut log = RestartLog::new(Intensity::new(2, secs(5)));
        for i in 0..100 {
            assert!(log.record(t0 + secs(3 * i)), "restart {i}");
        }
    }

    #[test]
    fn a_restart_exactly_one_period_ago_no_longer_counts() {
        let t0 = Instant::now();
        let mut log = RestartLog::new(Intensity::new(1, secs(5)));
        assert!(log.record(t0));
        assert!(log.record(t0 + secs(5)));
        assert!(!log.record(t0 + secs(9)));
    }

    #[test]
    fn zero_restarts_allowed() {
        let mut log = RestartLog::new(Intensity::new(0, secs(5)));
        assert!(!log.record(Instant::now()));
    }

    #[test]
    fn log_stays_bounded() {
        let t0 = Instant::now();
        let mut log = RestartLog::new(Intensity::new(3, secs(3600)));
        for _ in 0..1000 {
            log.record(t0);
        }
        assert!(log.recent.len() <= 3);
    }
}
