//! Child exits: restart decisions, strategies, delays, intensity, auto-shutdown.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{Actor, Group, SeqKind, State, Timer};
use crate::child::Joined;
use crate::end::End;
use crate::error::StartFailure;
use crate::{AutoShutdown, ExitReason, Restart, StartError, Strategy, SupervisorError};

impl Actor {
    /// A child task finished on its own (not during a stop the supervisor asked for).
    pub(super) async fn on_joined(&mut self, joined: Joined) {
        // a readiness signal sent before the exit must count first
        while let Ok(key) = self.ready_rx.try_recv() {
            self.on_ready(key).await;
        }
        let Ok((_, (key, outcome))) = joined else {
            return; // an abort: the supervisor aborted it and has already handled it
        };
        let Some(child) = self.children.get_mut(key.child) else {
            return;
        };
        if !matches!(&child.state, State::Running(run) if run.key == key) {
            return; // a child detached earlier, or already handled
        }
        let State::Running(run) = std::mem::replace(&mut child.state, State::Terminated) else {
            return;
        };
        let reason = outcome.reason(false);
        self.emit_exit(key.child, &reason);
        if !run.ready {
            self.start_failed(key, StartFailure::Exit(reason)).await;
            return;
        }
        self.on_exit(key.child, reason).await;
    }

    pub(super) fn emit_exit(&mut self, serial: u64, reason: &ExitReason) {
        if let Some(c) = self.children.get_mut(serial) {
            c.restarts.exited(reason);
            self.emitter.exited(&c.spec.inner().id, None, reason);
        }
    }

    async fn on_exit(&mut self, serial: u64, reason: ExitReason) {
        let Some(spec) = self.children.get(serial).map(|c| c.spec.clone()) else {
            return;
        };
        if spec.restart_type().after(&reason) {
            self.restart_after_exit(serial, reason).await;
            return;
        }
        if spec.restart_type() == Restart::Temporary {
            self.children.remove(serial);
        } else if let Some(c) = self.children.get(serial) {
            c.spec.stopped_for_good();
        }
        if spec.is_significant() {
            self.auto_shutdown().await;
        }
    }

    async fn auto_shutdown(&mut self) {
        let trigger = match self.spec.auto_shutdown {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !self
                .children
                .iter()
                .any(|c| c.spec.is_significant() && !matches!(c.state, State::Terminated)),
        };
        if trigger {
            tracing::info!(target: "supervisor", supervisor = %self.id, "auto-shutdown: significant children exited");
            self.shutdown(false).await;
        }
    }

    async fn restart_after_exit(&mut self, serial: u64, reason: ExitReason) {
        let Some(id) = self.children.get(serial).map(|c| c.spec.inner().id.clone()) else {
            return;
        };
        if !self.restarts.allow() {
            self.intensity_exceeded(&id, reason).await;
            return;
        }
        let delay = self.next_delay(serial);
        let group = self.affected(serial);
        let (members, initial) = self.take_group(group, serial).await;
        self.schedule(members, serial, delay, initial).await;
    }

    /// The delay before the next restart of `serial`, advancing its backoff count.
    pub(super) fn next_delay(&mut self, serial: u64) -> Duration {
        match self.children.get_mut(serial) {
            Some(c) => self.restarts.next_delay(&c.spec, &mut c.restarts),
            None => Duration::ZERO,
        }
    }

    /// Serials the strategy restarts when child `serial` exits, in start order.
    fn affected(&self, serial: u64) -> Vec<u64> {
        match self.spec.strategy {
            Strategy::OneForOne => vec![serial],
            Strategy::OneForAll => self.children.serials(),
            Strategy::RestForOne => self.children.serials_from(serial),
        }
    }

    /// Detaches the group from pending restarts and start sequences and stops its running
    /// members in reverse start order. Temporary members are stopped and dropped. Returns the
    /// members to restart and whether the group inherits the initial start.
    async fn take_group(&mut self, group: Vec<u64>, lead: u64) -> (Vec<u64>, bool) {
        if group.len() == 1 && self.seqs.is_empty() && self.groups.is_empty() {
            return (group, false); // one_for_one fast path: nothing else is affected
        }
        let members: HashSet<u64> = group.iter().copied().collect();
        let mut initial = self.detach_pending(&members);
        initial |= self.detach_seqs(&members);
        for &serial in group.iter().rev() {
            let running = matches!(self.children.get(serial), Some(c) if matches!(c.state, State::Running(_)));
            if serial != lead && running {
                self.stop_child(serial, false).await;
            }
        }
        let mut members = Vec::with_capacity(group.len());
        for serial in group {
            let Some(child) = self.children.get(serial) else {
                continue;
            };
            if child.spec.restart_type() == Restart::Temporary && serial != lead {
                self.children.remove(serial);
            } else {
                members.push(serial);
            }
        }
        let seq_ids: Vec<u64> = self.seqs.iter().map(|s| s.id).collect();
        for id in seq_ids {
            self.advance(id).await;
        }
        (members, initial)
    }

    /// Removes `group` from pending restart groups; true if one of them carried the initial start.
    fn detach_pending(&mut self, group: &HashSet<u64>) -> bool {
        let mut initial = false;
        let mut k = 0;
        while k < self.groups.len() {
            let g = &mut self.groups[k];
            g.members.retain(|m| !group.contains(m));
            if g.members.is_empty() {
                initial |= g.initial;
                let g = self.groups.remove(k);
                self.timers.remove(g.timer);
            } else {
                k += 1;
            }
        }
        initial
    }

    /// Removes `group` from start sequences; emptied sequences end (their callers are told the
    /// child is being restarted). True if one carried the initial start.
    fn detach_seqs(&mut self, group: &HashSet<u64>) -> bool {
        let mut initial = false;
        let mut k = 0;
        while k < self.seqs.len() {
            let seq = &mut self.seqs[k];
            let front = seq.members.front().copied();
            seq.members.retain(|m| !group.contains(m));
            seq.started.retain(|m| !group.contains(m));
            if front.is_some() && seq.members.front().copied() != front {
                if let Some((_, timer)) = seq.waiting.take() {
                    self.timers.remove(timer);
                }
            }
            if !seq.members.is_empty() {
                k += 1;
                continue;
            }
            let seq = self.seqs.remove(k);
            match seq.kind {
                SeqKind::Initial => initial = true,
                SeqKind::Manual { reply, .. } => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
                SeqKind::Restart => {}
            }
        }
        initial
    }

    /// Restarts `members` after `delay` (at once if zero), as one group.
    pub(super) async fn schedule(
        &mut self,
        members: Vec<u64>,
        lead: u64,
        delay: Duration,
        initial: bool,
    ) {
        if let Some(c) = self.children.get(lead) {
            self.emitter
                .restart_scheduled(&c.spec.inner().id, None, delay);
        }
        let kind = if initial {
            SeqKind::Initial
        } else {
            SeqKind::Restart
        };
        if delay.is_zero() {
            self.start_seq(members, kind).await;
            return;
        }
        let id = self.next_key();
        for &serial in &members {
            if let Some(c) = self.children.get_mut(serial) {
                c.state = State::Restarting(id);
            }
        }
        let timer = self.timers.insert(delay, Timer::Restart(id));
        self.groups.push(Group {
            id,
            members,
            initial,
            timer,
        });
    }

    pub(super) async fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Restart(id) => {
                let Some(k) = self.groups.iter().position(|g| g.id == id) else {
                    return;
                };
                let g = self.groups.remove(k);
                let kind = if g.initial {
                    SeqKind::Initial
                } else {
                    SeqKind::Restart
                };
                self.start_seq(g.members, kind).await;
            }
            Timer::StartTimeout(key) => self.on_start_timeout(key).await,
        }
    }

    /// Too many restarts: stop everything and end with an error the parent sees as abnormal.
    pub(super) async fn intensity_exceeded(&mut self, child: &Arc<str>, reason: ExitReason) {
        let limit = self.restarts.limit();
        self.emitter.intensity_exceeded(child, limit);
        let err = SupervisorError::IntensityExceeded {
            supervisor: self.id.to_string(),
            child: child.to_string(),
            reason,
            max_restarts: limit.max_restarts(),
            period: limit.period(),
        };
        self.cancel_pending();
        self.stop_all(false).await;
        if self.init_pending() {
            self.init_done(Err(StartError::Ended {
                supervisor: self.id.to_string(),
                reason: Box::new(err.clone()),
            }));
        }
        self.end = Some(End::Escalated(err));
    }
}
