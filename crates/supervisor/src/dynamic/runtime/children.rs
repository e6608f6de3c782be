//! A dynamic supervisor's children: what it keeps per child, in maps keyed by child number.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::child::Run;
use crate::handle::Reply;
use crate::restarts::ChildRestarts;
use crate::timers::TimerId;
use crate::{ChildSpec, SupervisorError};

/// Hashes the supervisor's own sequential `u64` ids: one multiply instead of SipHash
/// (the ids are not attacker-controlled).
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(super) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
pub(super) type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

pub(super) struct DynChild {
    pub(super) spec: ChildSpec,
    pub(super) state: DynState,
    pub(super) restarts: ChildRestarts,
}

impl Drop for DynChild {
    /// The record goes (removed, or its supervisor ended): the child has stopped for good.
    fn drop(&mut self) {
        self.spec.stopped_for_good();
    }
}

impl DynChild {
    pub(super) fn new(spec: ChildSpec, state: DynState) -> Self {
        Self {
            spec,
            state,
            restarts: ChildRestarts::default(),
        }
    }
}

pub(super) enum DynState {
    Running(Run),
    Stopping(Run, Box<Stop>),
    /// A restart is pending (its timer `None`: a delay too long to ever fire).
    Restarting(Option<TimerId>),
    /// Transient placeholder while the state is being replaced.
    Idle,
}

/// A stop under way.
pub(super) struct Stop {
    /// The deadline, then the abort grace.
    pub(super) timer: Option<TimerId>,
    /// `terminate_child` callers waiting for it.
    pub(super) replies: Vec<Reply<Result<(), SupervisorError>>>,
    /// The stop is a start timeout's kill: the start then fails.
    pub(super) failed_start: bool,
    pub(super) aborted: bool,
}
