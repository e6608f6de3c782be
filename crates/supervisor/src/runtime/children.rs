//! The static supervisor's children, in start order, found by serial or by id in O(log n).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::Child;

/// Children keyed by serial. Serials grow with every child added, so the map's order is the
/// start order; an index by id serves the handle's calls.
#[derive(Default)]
pub(crate) struct Children {
    by_serial: BTreeMap<u64, Child>,
    by_id: HashMap<Arc<str>, u64>,
}

impl Children {
    /// Adds a child after all others; its serial must be greater than any before it.
    pub(super) fn push(&mut self, child: Child) {
        debug_assert!(self.by_serial.keys().next_back() < Some(&child.serial));
        self.by_id
            .insert(child.spec.inner().id.clone(), child.serial);
        self.by_serial.insert(child.serial, child);
    }

    pub(super) fn remove(&mut self, serial: u64) -> Option<Child> {
        let child = self.by_serial.remove(&serial)?;
        self.by_id.remove(child.spec.id());
        Some(child)
    }

    pub(super) fn get(&self, serial: u64) -> Option<&Child> {
        self.by_serial.get(&serial)
    }

    pub(super) fn get_mut(&mut self, serial: u64) -> Option<&mut Child> {
        self.by_serial.get_mut(&serial)
    }

    /// The serial of the child with this id.
    pub(super) fn serial_of(&self, id: &str) -> Option<u64> {
        self.by_id.get(id).copied()
    }

    pub(super) fn len(&self) -> usize {
        self.by_serial.len()
    }

    /// All children, in start order.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &Child> {
        self.by_serial.values()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Child> {
        self.by_serial.values_mut()
    }

    /// The serials of all children, in start order.
    pub(super) fn serials(&self) -> Vec<u64> {
        self.by_serial.keys().copied().collect()
    }

    /// The serials of `serial` and every child after it, in start order.
    pub(super) fn serials_from(&self, serial: u64) -> Vec<u64> {
        self.by_serial.range(serial..).map(|(&s, _)| s).collect()
    }
}
