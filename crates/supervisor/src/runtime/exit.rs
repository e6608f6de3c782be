//! Child exits: restart decisions, strategies, delays, intensity, auto-shutdown.

use std::time::Duration;

use tokio::time::Instant;

use super::start::Failure;
use super::{Actor, End, Group, SeqKind, State, Timer};
use crate::child::{joined_id, Joined, Outcome};
use crate::{AutoShutdown, Event, ExitReason, Restart, StartError, Strategy, SupervisorError};

impl Actor {
    /// A child task finished on its own (not during a stop the supervisor asked for).
    pub(super) async fn on_joined(&mut self, joined: Joined) {
        // a readiness signal sent before the exit must count first
        while let Ok(key) = self.ready_rx.try_recv() {
            self.on_ready(key).await;
        }
        let task = joined_id(&joined);
        let Some(i) = self
            .children
            .iter()
            .position(|c| matches!(&c.state, State::Running(r) if r.abort.id() == task))
        else {
            return; // a child detached earlier, or already handled
        };
        let State::Running(run) = std::mem::replace(&mut self.children[i].state, State::Terminated)
        else {
            return;
        };
        let reason = Outcome::from(joined).reason(false);
        self.emit_exit(i, &reason);
        if !run.ready {
            let serial = self.children[i].serial;
            self.start_failed(run.key, serial, Failure::Exit(reason))
                .await;
            return;
        }
        self.on_exit(i, reason).await;
    }

    pub(super) fn emit_exit(&self, i: usize, reason: &ExitReason) {
        let child = self.children[i].spec.inner().id.clone();
        let reason = reason.clone();
        self.emitter.emit(|supervisor| Event::Exited {
            supervisor,
            child,
            instance: None,
            reason,
        });
    }

    async fn on_exit(&mut self, i: usize, reason: ExitReason) {
        let spec = self.children[i].spec.clone();
        let restart = match spec.restart_type() {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        };
        if restart {
            let serial = self.children[i].serial;
            self.restart_after_exit(serial, reason).await;
            return;
        }
        if spec.restart_type() == Restart::Temporary {
            self.children.remove(i);
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
        let Some(i) = self.index_of(serial) else {
            return;
        };
        if !self.log.record(Instant::now()) {
            let id = self.children[i].spec.inner().id.clone();
            self.intensity_exceeded(&id, reason).await;
            return;
        }
        let delay = self.next_delay(serial);
        let group = self.affected(i);
        let (members, initial) = self.take_group(group, serial).await;
        self.schedule(members, serial, delay, initial).await;
    }

    /// The delay before the next restart of `serial`, advancing its backoff count.
    pub(super) fn next_delay(&mut self, serial: u64) -> Duration {
        let Some(i) = self.index_of(serial) else {
            return Duration::ZERO;
        };
        let child = &mut self.children[i];
        let policy = child
            .spec
            .inner()
            .restart_policy
            .as_ref()
            .unwrap_or(&self.spec.restart_policy);
        if child.last_start.elapsed() >= policy.reset_after() && child.started_once {
            child.consecutive = 0;
        }
        let delay = policy.delay(child.consecutive);
        child.consecutive = child.consecutive.saturating_add(1);
        delay
    }

    /// Serials the strategy restarts when child `i` exits, in start order.
    fn affected(&self, i: usize) -> Vec<u64> {
        let range = match self.spec.strategy {
            Strategy::OneForOne => i..i + 1,
            Strategy::OneForAll => 0..self.children.len(),
            Strategy::RestForOne => i..self.children.len(),
        };
        self.children[range].iter().map(|c| c.serial).collect()
    }

    /// Detaches the group from pending restarts and start sequences and stops its running
    /// members in reverse start order. Temporary members are stopped and dropped. Returns the
    /// members to restart and whether the group inherits the initial start.
    async fn take_group(&mut self, group: Vec<u64>, lead: u64) -> (Vec<u64>, bool) {
        if group.len() == 1 && self.seqs.is_empty() && self.groups.is_empty() {
            return (group, false); // one_for_one fast path: nothing else is affected
        }
        let mut initial = self.detach_pending(&group);
        initial |= self.detach_seqs(&group);
        for &serial in group.iter().rev() {
            if let Some(i) = self.index_of(serial) {
                if serial != lead && matches!(self.children[i].state, State::Running(_)) {
                    self.stop_child(i, false).await;
                }
            }
        }
        let mut members = Vec::with_capacity(group.len());
        for serial in group {
            let Some(i) = self.index_of(serial) else {
                continue;
            };
            if self.children[i].spec.restart_type() == Restart::Temporary && serial != lead {
                self.children.remove(i);
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
    fn detach_pending(&mut self, group: &[u64]) -> bool {
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
    fn detach_seqs(&mut self, group: &[u64]) -> bool {
        let mut initial = false;
        let mut k = 0;
        while k < self.seqs.len() {
            let seq = &mut self.seqs[k];
            let front = seq.members.front().copied();
            seq.members.retain(|m| !group.contains(m));
            seq.started.retain(|m| !group.contains(m));
            if front.is_some() && seq.members.front().copied() != front {
                if let Some((_, Some(timer))) = seq.waiting.take() {
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
        if let Some(i) = self.index_of(lead) {
            let child = self.children[i].spec.inner().id.clone();
            self.emitter.emit(|supervisor| Event::RestartScheduled {
                supervisor,
                child,
                instance: None,
                delay,
            });
        }
        let kind = if initial {
            SeqKind::Initial
        } else {
            SeqKind::Restart
        };
        if delay.is_zero() {
            self.start_seq(members, lead, kind).await;
            return;
        }
        let id = self.next_key();
        for &serial in &members {
            if let Some(i) = self.index_of(serial) {
                self.children[i].state = State::Restarting(id);
            }
        }
        let timer = self
            .timers
            .insert(Instant::now() + delay, Timer::Restart(id));
        self.groups.push(Group {
            id,
            members,
            lead,
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
                self.start_seq(g.members, g.lead, kind).await;
            }
            Timer::StartTimeout(key) => self.on_start_timeout(key).await,
        }
    }

    /// Too many restarts: stop everything and end with an error the parent sees as abnormal.
    pub(super) async fn intensity_exceeded(&mut self, child: &str, reason: ExitReason) {
        let limit = self.log.limit();
        let cid: std::sync::Arc<str> = child.into();
        self.emitter.emit(|supervisor| Event::IntensityExceeded {
            supervisor,
            child: cid,
            max_restarts: limit.max_restarts(),
            period: limit.period(),
        });
        let err = SupervisorError::IntensityExceeded {
            supervisor: self.id.to_string(),
            child: child.to_owned(),
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
