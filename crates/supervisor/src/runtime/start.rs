//! Ordered starts: start sequences, readiness, start timeouts and start failures.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Actor, Init, Seq, SeqKind, State, Timer};
use crate::child::{self, Run, RunKey};
use crate::context::ReadyLink;
use crate::end::End;
use crate::error::StartFailure;
use crate::{ChildContext, ExitReason, StartError, Strategy, SupervisorError};

impl Actor {
    /// Queues `members` (in start order) and starts them one after the other.
    pub(super) async fn start_seq(&mut self, members: Vec<u64>, kind: SeqKind) {
        for &serial in &members {
            if let Some(c) = self.children.get_mut(serial) {
                c.state = State::Queued;
            }
        }
        let id = self.next_key();
        self.seqs.push(Seq {
            id,
            members: VecDeque::from(members),
            started: Vec::new(),
            waiting: None,
            kind,
        });
        self.advance(id).await;
    }

    /// Starts the next members of a sequence until one must be waited for, or completes it.
    pub(super) async fn advance(&mut self, seq_id: u64) {
        loop {
            let Some(s) = self.seqs.iter().position(|s| s.id == seq_id) else {
                return;
            };
            if self.seqs[s].waiting.is_some() {
                return;
            }
            let Some(&serial) = self.seqs[s].members.front() else {
                self.complete(s);
                return;
            };
            let Some((key, wait)) = self.spawn_child(serial) else {
                self.seqs[s].members.pop_front();
                continue;
            };
            if wait {
                let timeout = self
                    .children
                    .get(serial)
                    .and_then(|c| c.spec.inner().start_timeout);
                let timer = timeout.and_then(|d| self.timers.insert(d, Timer::StartTimeout(key)));
                self.seqs[s].waiting = Some((key, timer));
                return;
            }
            self.seqs[s].members.pop_front();
            self.seqs[s].started.push(serial);
        }
    }

    /// Spawns child `serial`; returns its run's key and whether it must be waited for, or
    /// `None` if there is no such child.
    fn spawn_child(&mut self, serial: u64) -> Option<(RunKey, bool)> {
        let key = RunKey {
            child: serial,
            spawn: self.next_key(),
        };
        let child = self.children.get_mut(serial)?;
        // a temporary child (the only kind whose factory goes) is never started twice
        let factory = child.spec.factory()?;
        child.restarts.started(Instant::now());
        let inner = child.spec.inner();
        let ready = inner.wait_ready.then(|| ReadyLink {
            tx: self.ready_tx.clone(),
            key,
        });
        let restarts = child.restarts.count();
        let ctx = ChildContext::new(
            inner.id.clone(),
            None,
            restarts,
            CancellationToken::new(),
            ready,
        );
        let run = child::spawn(&mut self.tasks, &child.spec, factory, ctx, key);
        let wait = !run.ready;
        child.state = State::Running(run);
        self.emitter.started(&inner.id, None, restarts);
        child.spec.started();
        Some((key, wait))
    }

    fn complete(&mut self, s: usize) {
        let seq = self.seqs.remove(s);
        match seq.kind {
            SeqKind::Initial => self.init_done(Ok(())),
            SeqKind::Manual { reply, .. } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
            SeqKind::Restart => {}
        }
    }

    /// Tells whoever waits for the initial start how it went.
    pub(super) fn init_done(&mut self, result: Result<(), StartError>) {
        match &mut self.init {
            Init::TopLevel(tx) => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(result);
                }
            }
            Init::Nested(ctx) => {
                if let Some(ctx) = ctx.take() {
                    if result.is_ok() {
                        ctx.ready();
                    }
                }
            }
        }
    }

    pub(super) fn init_pending(&self) -> bool {
        match &self.init {
            Init::TopLevel(tx) => tx.is_some(),
            Init::Nested(ctx) => ctx.is_some(),
        }
    }

    /// The run of the child with this key, if it is still running and not yet ready.
    fn unready(&mut self, key: RunKey) -> Option<&mut Run> {
        match &mut self.children.get_mut(key.child)?.state {
            State::Running(run) if run.key == key && !run.ready => Some(run),
            _ => None,
        }
    }

    /// A child signalled readiness.
    pub(super) async fn on_ready(&mut self, key: RunKey) {
        let Some(run) = self.unready(key) else {
            return;
        };
        run.ready = true;
        let Some(s) = self.seq_waiting_on(key) else {
            return;
        };
        if let Some((_, timer)) = self.seqs[s].waiting.take() {
            self.timers.remove(timer);
        }
        self.seqs[s].members.pop_front();
        self.seqs[s].started.push(key.child);
        let seq_id = self.seqs[s].id;
        self.advance(seq_id).await;
    }

    pub(super) fn seq_waiting_on(&self, key: RunKey) -> Option<usize> {
        self.seqs
            .iter()
            .position(|s| matches!(s.waiting, Some((k, _)) if k == key))
    }

    /// The start timeout of the child with this key elapsed.
    pub(super) async fn on_start_timeout(&mut self, key: RunKey) {
        if self.unready(key).is_none() {
            return;
        }
        let serial = key.child;
        let timeout = self
            .children
            .get(serial)
            .and_then(|c| c.spec.inner().start_timeout)
            .unwrap_or_default();
        if let Some(s) = self.seq_waiting_on(key) {
            self.seqs[s].waiting = Some((key, None));
        }
        // as in OTP, a child that overran its start timeout is killed outright
        self.stop_child(serial, true).await;
        self.start_failed(key, StartFailure::Timeout(timeout)).await;
    }

    /// The waiting child of a sequence exited or timed out before it was ready.
    pub(super) async fn start_failed(&mut self, key: RunKey, failure: StartFailure) {
        let Some(s) = self.seq_waiting_on(key) else {
            return;
        };
        let seq = self.seqs.remove(s);
        let serial = key.child;
        let Some(child) = self.children.get(serial) else {
            return;
        };
        let child_id = child.spec.inner().id.clone();
        let err = failure.into_error(&self.id, &child_id);
        self.emitter.start_failed(&child_id, None, &err);
        match seq.kind {
            SeqKind::Initial => self.fail_start(err).await,
            SeqKind::Manual { reply, added } => {
                if added {
                    self.children.remove(serial);
                } else if let Some(c) = self.children.get(serial) {
                    c.spec.stopped_for_good();
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Err(SupervisorError::from(err)));
                }
            }
            SeqKind::Restart => self.retry_group(seq, serial, &child_id, err).await,
        }
    }

    /// A restart failed to start: retry it through the restart delay, as OTP's `try_again`
    /// does. Under `RestForOne` the retry resumes at the child that failed, leaving the ones
    /// this round restarted running; otherwise (`OneForAll`) what this round started is
    /// stopped and the whole round is retried. The retry counts once toward the intensity.
    async fn retry_group(&mut self, seq: Seq, failed: u64, child_id: &Arc<str>, err: StartError) {
        let reason = ExitReason::Error(Arc::new(err));
        if !self.restarts.allow() {
            self.intensity_exceeded(child_id, reason).await;
            return;
        }
        let mut members = Vec::new();
        if self.spec.strategy != Strategy::RestForOne {
            for &serial in seq.started.iter().rev() {
                self.stop_child(serial, false).await;
            }
            members = seq.started;
        }
        members.push(failed);
        members.extend(seq.members.into_iter().skip(1));
        members.sort_unstable();
        let delay = self.next_delay(failed);
        self.schedule(members, failed, delay, false).await;
    }

    /// The initial start failed: stop everything started and end.
    pub(super) async fn fail_start(&mut self, err: StartError) {
        self.cancel_pending();
        self.stop_all(false).await;
        self.init_done(Err(err.clone()));
        self.end = Some(End::StartFailed(err));
    }
}
