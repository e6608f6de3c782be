//! Stopping children (token, linger bound, abort; concurrently) and shutting down.

use std::time::Duration;

use super::children::{DynState, Stop};
use super::{Actor, Timer};
use crate::child::Outcome;
use crate::error::StartFailure;
use crate::handle::Reply;
use crate::{ExitReason, Shutdown, SupervisorError};

type Answer = Result<(), SupervisorError>;

impl Actor {
    /// Asks child `id` to stop (or aborts it when `force`); the outcome arrives as its exit
    /// or as a timer. `failed_start`: the stop kills a child that overran its start timeout.
    pub(super) fn begin_stop(
        &mut self,
        id: u64,
        force: bool,
        reply: Option<Reply<Answer>>,
        failed_start: bool,
    ) {
        let grace = self.spec.flags.abort_grace;
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        let state = std::mem::replace(&mut child.state, DynState::Idle);
        let DynState::Running(run) = state else {
            child.state = state;
            return;
        };
        let policy = match force {
            true => Shutdown::BrutalKill,
            false => child.spec.shutdown_policy(),
        };
        let timer = match policy {
            Shutdown::BrutalKill => {
                run.abort.abort();
                self.timers.insert(grace, Timer::AbortGrace(id))
            }
            Shutdown::Timeout(d) if self.shutting_down => {
                // one timer per distinct bound for the whole shutdown, not one per child
                run.token.cancel();
                if !self.shutdown_deadlines.contains(&d) {
                    self.shutdown_deadlines.push(d);
                    self.timers.insert(d, Timer::ShutdownDeadline(d));
                }
                None
            }
            Shutdown::Timeout(d) => {
                run.token.cancel();
                self.timers.insert(d, Timer::StopDeadline(id))
            }
            Shutdown::Infinity => {
                run.token.cancel();
                None
            }
        };
        let stop = Stop {
            timer,
            replies: reply.into_iter().collect(),
            failed_start,
            aborted: policy == Shutdown::BrutalKill,
        };
        child.state = DynState::Stopping(run, Box::new(stop));
    }

    /// Turns a lingering stop into an abort (its deadline passed, or a kill).
    pub(super) fn abort_stopping(&mut self, id: u64, overran: bool) {
        let grace = self.spec.flags.abort_grace;
        let path = self.path(id);
        let Some(DynState::Stopping(run, stop)) = self.children.get_mut(&id).map(|c| &mut c.state)
        else {
            return;
        };
        if stop.aborted {
            return;
        }
        stop.aborted = true;
        self.timers.remove(stop.timer.take());
        run.abort.abort();
        stop.timer = self.timers.insert(grace, Timer::AbortGrace(id));
        if overran {
            self.ending.aborted(path);
        }
    }

    /// The shared shutdown deadline `bound` passed: abort every child it applies to.
    pub(super) fn shutdown_deadline(&mut self, bound: Duration) {
        let overran: Vec<u64> = self
            .children
            .iter()
            .filter(|(_, c)| c.spec.shutdown_policy() == Shutdown::Timeout(bound))
            .map(|(&id, _)| id)
            .collect();
        for id in overran {
            self.abort_stopping(id, true);
        }
    }

    /// Child `id` ended while being stopped.
    pub(super) fn stopped(&mut self, id: u64, outcome: Outcome, stop: Stop) {
        self.timers.remove(stop.timer);
        self.ending.absorb(&self.path(id), &outcome);
        let reason = outcome.reason(true);
        self.emit_exit(id, &reason);
        self.finish_stop(id, stop, Ok(()));
    }

    fn finish_stop(&mut self, id: u64, stop: Stop, answer: Answer) {
        if stop.failed_start {
            let timeout = self
                .children
                .get(&id)
                .and_then(|c| c.spec.inner().start_timeout)
                .unwrap_or_default();
            self.start_failed(id, StartFailure::Timeout(timeout));
        } else {
            self.remove_child(id);
            if let Some(reply) = self.starting.remove(&id) {
                let _ = reply.send(Err(SupervisorError::ShuttingDown {
                    supervisor: self.sup(),
                }));
            }
        }
        for reply in stop.replies {
            let _ = reply.send(answer.clone());
        }
    }

    /// Abort could not reach child `id` within the grace: detach it and report it.
    pub(super) fn not_stopped(&mut self, id: u64) {
        let path = self.path(id);
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        let state = std::mem::replace(&mut child.state, DynState::Idle);
        let DynState::Stopping(run, mut stop) = state else {
            child.state = state;
            return;
        };
        stop.timer = None;
        drop(run); // detached: already aborted, its late exit is ignored
        self.detached.insert(id);
        tracing::error!(target: "supervisor", supervisor = %self.id, child = %path, "child did not stop within its shutdown bound; detached");
        self.ending.not_stopped(path);
        self.emit_exit(id, &ExitReason::Killed);
        let answer = Err(SupervisorError::ChildNotStopped {
            supervisor: self.sup(),
            child: self.shared.child_id(id).to_string(),
        });
        self.finish_stop(id, *stop, answer);
    }

    /// Stops every child concurrently (aborts them when `force`); the loop ends once the
    /// last one is gone.
    pub(super) fn shutdown(&mut self, force: bool) {
        if force {
            self.killed = true;
        }
        if !self.shutting_down {
            self.shutting_down = true;
            self.shared.close();
            self.emitter.shutdown_started();
        }
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            let Some(child) = self.children.get(&id) else {
                continue;
            };
            match &child.state {
                DynState::Running(_) => self.begin_stop(id, force, None, false),
                DynState::Stopping(..) if force => self.abort_stopping(id, true),
                DynState::Stopping(..) => {}
                DynState::Restarting(timer) => {
                    let timer = *timer;
                    self.timers.remove(timer);
                    self.remove_child(id);
                }
                DynState::Idle => self.remove_child(id),
            }
        }
    }
}
