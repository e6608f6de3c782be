//! Child exits: restart decisions, delays and intensity.

use super::children::DynState;
use super::{Actor, Timer};
use crate::child::Exit;
use crate::error::StartFailure;
use crate::{ExitReason, SupervisorError};

impl Actor {
    /// A child's task ended (it reports its own exit, also when aborted).
    pub(super) fn on_exit_msg(&mut self, exit: Exit) {
        let Exit { id, outcome } = exit;
        if !self.detached.is_empty() && self.detached.remove(&id) {
            return; // a child given up on earlier finally ended
        }
        let Some(child) = self.children.get(&id) else {
            // spawned by a handle, not yet adopted
            self.early.insert(id, outcome);
            return;
        };
        if matches!(&child.state, DynState::Running(r) if !r.ready) {
            // a readiness signal sent before the exit must count first
            while let Ok(ready) = self.ready_rx.try_recv() {
                self.on_ready(ready);
            }
        }
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        match std::mem::replace(&mut child.state, DynState::Idle) {
            DynState::Stopping(_, stop) => self.stopped(id, outcome, *stop),
            DynState::Running(run) => {
                let reason = outcome.reason(false);
                self.emit_exit(id, &reason);
                if run.ready {
                    self.on_exit(id, reason);
                } else {
                    self.start_failed(id, StartFailure::Exit(reason));
                }
            }
            DynState::Restarting(_) | DynState::Idle => {}
        }
    }

    pub(super) fn emit_exit(&mut self, id: u64, reason: &ExitReason) {
        if let Some(child) = self.children.get_mut(&id) {
            child.restarts.exited(reason);
            let instance = Some(self.shared.child_id(id));
            self.emitter
                .exited(&child.spec.inner().id, instance, reason);
        }
    }

    fn on_exit(&mut self, id: u64, reason: ExitReason) {
        let Some(child) = self.children.get(&id) else {
            return;
        };
        if self.shutting_down || !child.spec.restart_type().after(&reason) {
            self.remove_child(id);
            return;
        }
        self.restart(id, reason);
    }

    /// Counts a restart toward the intensity and restarts `id` now or after its delay.
    pub(super) fn restart(&mut self, id: u64, reason: ExitReason) {
        if !self.restarts.allow() {
            self.intensity_exceeded(id, reason);
            return;
        }
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        let delay = self.restarts.next_delay(&child.spec, &mut child.restarts);
        let instance = Some(self.shared.child_id(id));
        self.emitter
            .restart_scheduled(&child.spec.inner().id, instance, delay);
        if delay.is_zero() {
            self.spawn(id);
            return;
        }
        child.state = DynState::Restarting(self.timers.insert(delay, Timer::Restart(id)));
    }

    /// The delay before restarting `id` is over.
    pub(super) fn restart_due(&mut self, id: u64) {
        if matches!(
            self.children.get(&id).map(|c| &c.state),
            Some(DynState::Restarting(_))
        ) {
            self.spawn(id);
        }
    }

    /// Too many restarts: stop everything and end with an error.
    fn intensity_exceeded(&mut self, id: u64, reason: ExitReason) {
        let limit = self.restarts.limit();
        let Some(child) = self.children.get(&id) else {
            return;
        };
        let cid = child.spec.inner().id.clone();
        self.emitter.intensity_exceeded(&cid, limit);
        self.escalation = Some(SupervisorError::IntensityExceeded {
            supervisor: self.sup(),
            child: format!("{cid}{}", self.shared.child_id(id)),
            reason,
            max_restarts: limit.max_restarts(),
            period: limit.period(),
        });
        self.remove_child(id);
        self.shutdown(false);
    }
}
