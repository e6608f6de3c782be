//! The settings every supervisor has, static or dynamic, with their defaults and checks.

use std::sync::Arc;
use std::time::Duration;

use crate::{Intensity, RestartPolicy, SpecError};

/// A supervisor's flags (OTP's `sup_flags`) shared by both kinds: the strategy-specific ones
/// (strategy, auto-shutdown, `max_children`) live with each kind's builder.
#[derive(Clone, Debug)]
pub(crate) struct Flags {
    pub(crate) id: Arc<str>,
    pub(crate) intensity: Intensity,
    pub(crate) restart_policy: RestartPolicy,
    pub(crate) event_capacity: usize,
    pub(crate) abort_grace: Duration,
}

impl Flags {
    /// The defaults: 1 restart in 5 s, immediate restarts, 1024 events, 100 ms abort grace.
    pub(crate) fn new(id: impl Into<String>) -> Self {
        Self {
            id: Arc::from(id.into()),
            intensity: Intensity::default(),
            restart_policy: RestartPolicy::default(),
            event_capacity: 1024,
            abort_grace: Duration::from_millis(100),
        }
    }

    /// Rejects an empty id, a zero intensity period and a zero event capacity.
    pub(crate) fn validate(&self) -> Result<(), SpecError> {
        let supervisor = self.id.to_string();
        if self.id.is_empty() {
            return Err(SpecError::EmptyId { supervisor });
        }
        if self.intensity.period().is_zero() {
            return Err(SpecError::ZeroPeriod { supervisor });
        }
        if self.event_capacity == 0 {
            return Err(SpecError::ZeroEventCapacity { supervisor });
        }
        Ok(())
    }
}
