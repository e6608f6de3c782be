//! Restart delays: none, fixed, or exponential backoff with jitter.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How long a supervisor waits before restarting a child (or, under `OneForAll` /
/// `RestForOne`, a group of children).
///
/// The default is [`RestartPolicy::Immediate`], which is what Erlang/OTP does. A delayed
/// restart runs on a timer: the supervisor keeps serving its handle and its other children
/// while it is pending.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum RestartPolicy {
    /// Restart at once (the OTP behaviour).
    #[default]
    Immediate,
    /// Wait the same delay before every restart.
    Fixed(Duration),
    /// Wait an exponentially growing, jittered, capped delay; see [`Backoff`].
    Backoff(Backoff),
}

impl RestartPolicy {
    /// The delay before the restart that follows `consecutive` earlier restarts of the
    /// same child (0 for the first restart after a stable run).
    pub fn delay(&self, consecutive: u32) -> Duration {
        match self {
            Self::Immediate => Duration::ZERO,
            Self::Fixed(d) => *d,
            Self::Backoff(b) => b.delay(consecutive),
        }
    }

    /// After how long a run counts as stable and the consecutive-restart count resets.
    pub(crate) fn reset_after(&self) -> Duration {
        match self {
            Self::Backoff(b) => b.reset_after,
            _ => Duration::ZERO,
        }
    }
}

/// The backoff parameters were invalid.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffError {
    /// The multiplier is not a finite number of at least 1.
    #[error(
        "backoff multiplier {0} is invalid; use a finite number >= 1.0 (2.0 doubles each delay)"
    )]
    Multiplier(f64),
    /// The jitter fraction is not within `0.0..=1.0`.
    #[error("backoff jitter {0} is invalid; use a fraction in 0.0..=1.0 (0.1 = +/-10%)")]
    Jitter(f64),
}

/// Exponential backoff with jitter, a cap, and a reset after a stable run.
///
/// The delay before restart number `n` (counting from 0 after a stable run) is
/// `min(initial * multiplier^n, max)`, then jittered by up to `+/- jitter` of itself and
/// capped again at `max`. Defaults set by [`Backoff::exponential`]: multiplier 2.0, jitter 0.1,
/// `reset_after` = `max`.
///
/// The `jobs` crate reuses this type for job retry delays.
///
/// ```
/// use std::time::Duration;
/// use supervisor::Backoff;
///
/// let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10))
///     .with_jitter(0.0)?;
/// assert_eq!(b.delay(0), Duration::from_millis(100));
/// assert_eq!(b.delay(3), Duration::from_millis(800));
/// assert_eq!(b.delay(30), Duration::from_secs(10));
/// # Ok::<(), supervisor::BackoffError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a backoff does nothing until it is part of a restart policy"]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
    reset_after: Duration,
}

impl Backoff {
    /// Exponential backoff from `initial` up to `max` (a `max` below `initial` is raised to
    /// `initial`), multiplier 2.0, jitter 0.1, reset after `max` of stable running.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Self {
            initial,
            max,
            multiplier: 2.0,
            jitter: 0.1,
            reset_after: max,
        }
    }

    /// A constant delay with no jitter (multiplier 1.0), reset after `delay`.
    pub fn constant(delay: Duration) -> Self {
        Self {
            initial: delay,
            max: delay,
            multiplier: 1.0,
            jitter: 0.0,
            reset_after: delay,
        }
    }

    /// Sets the growth factor between consecutive delays (finite, `>= 1.0`).
    pub fn with_multiplier(mut self, multiplier: f64) -> Result<Self, BackoffError> {
        if !multiplier.is_finite() || multiplier < 1.0 {
            return Err(BackoffError::Multiplier(multiplier));
        }
        self.multiplier = multiplier;
        Ok(self)
    }

    /// Sets the jitter fraction (`0.0..=1.0`): each delay varies by up to `+/- jitter` of itself.
    pub fn with_jitter(mut self, jitter: f64) -> Result<Self, BackoffError> {
        if !(0.0..=1.0).contains(&jitter) {
            return Err(BackoffError::Jitter(jitter));
        }
        self.jitter = jitter;
        Ok(self)
    }

    /// Sets how long a child must run before its consecutive-restart count resets to 0.
    pub fn with_reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = reset_after;
        self
    }

    /// The first delay.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap on every delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The growth factor.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The jitter fraction.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// How long a stable run lasts before the count resets.
    pub fn reset_after(&self) -> Duration {
        self.reset_after
    }

    /// The delay after `consecutive` earlier restarts, jittered with an internal cheap RNG.
    pub fn delay(&self, consecutive: u32) -> Duration {
        let unit = if self.jitter == 0.0 {
            0.5
        } else {
            random_unit()
        };
        self.delay_with_unit(consecutive, unit)
    }

    /// The delay after `consecutive` earlier restarts with the random draw given: `unit` in
    /// `[0, 1)` maps to `-jitter..+jitter` (0.5 gives the un-jittered delay). Deterministic,
    /// for tests. Values outside `[0, 1]` are clamped.
    pub fn delay_with_unit(&self, consecutive: u32, unit: f64) -> Duration {
        let max = self.max.as_secs_f64();
        let exp = i32::try_from(consecutive).unwrap_or(i32::MAX);
        let base = (self.initial.as_secs_f64() * self.multiplier.powi(exp)).min(max);
        let unit = if unit.is_nan() {
            0.5
        } else {
            unit.clamp(0.0, 1.0)
        };
        let jittered = base * (1.0 + self.jitter * (2.0 * unit - 1.0));
        Duration::try_from_secs_f64(jittered.clamp(0.0, max)).unwrap_or(self.max)
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x9E37_79B9_7F4A_7C15);
    h.finish() | 1
}

/// A uniform draw in `[0, 1)` from a thread-local xorshift64* generator.
fn random_unit() -> f64 {
    RNG.with(|cell| {
        let mut x = cell.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        cell.set(x);
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (r >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let b = Backoff::exponential(ms(100), ms(1000))
            .with_jitter(0.0)
            .unwrap();
        let got: Vec<_> = (0..6).map(|n| b.delay(n)).collect();
        assert_eq!(
            got,
            vec![ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(b.delay(u32::MAX), ms(1000));
    }

    #[test]
    fn jitter_bounds_follow_the_unit() {
        let b = Backoff::exponential(ms(1000), ms(10_000))
            .with_jitter(0.2)
            .unwrap();
        assert_eq!(b.delay_with_unit(0, 0.0), ms(800));
        assert_eq!(b.delay_with_unit(0, 0.5), ms(1000));
        assert_eq!(b.delay_with_unit(0, 1.0), ms(1200));
        // jitter never lifts a delay above the cap
        assert_eq!(b.delay_with_unit(10, 1.0), ms(10_000));
        assert_eq!(b.delay_with_unit(10, 0.0), ms(8000));
    }

    #[test]
    fn random_delays_stay_within_jitter() {
        let b = Backoff::exponential(ms(1000), ms(10_000));
        for _ in 0..1000 {
            let d = b.delay(0);
            assert!(d >= ms(900) && d <= ms(1100), "{d:?}");
        }
    }

    #[test]
    fn random_unit_is_in_range_and_varies() {
        let draws: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn constructors_validate() {
        let b = Backoff::exponential(ms(100), ms(10));
        assert_eq!(b.max(), ms(100));
        assert_eq!(
            b.clone().with_multiplier(0.5),
            Err(BackoffError::Multiplier(0.5))
        );
        assert!(b.clone().with_multiplier(f64::NAN).is_err());
        assert_eq!(b.clone().with_jitter(1.5), Err(BackoffError::Jitter(1.5)));
        assert!(b.with_jitter(-0.1).is_err());
    }

    #[test]
    fn policy_delays() {
        assert_eq!(RestartPolicy::Immediate.delay(5), Duration::ZERO);
        assert_eq!(RestartPolicy::Fixed(ms(7)).delay(5), ms(7));
        let c = Backoff::constant(ms(50));
        assert_eq!(RestartPolicy::Backoff(c).delay(9), ms(50));
    }
}
