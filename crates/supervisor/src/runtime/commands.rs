//! Serving handle calls.

use tokio::time::Instant;

use super::stop::Stopped;
use super::{Actor, Child, SeqKind, State};
use crate::builder::validate_child;
use crate::handle::{ChildCounts, ChildInfo, ChildState, Msg, Reply};
use crate::{ChildKind, ChildSpec, Event, Restart, SupervisorError};

type Answer = Result<(), SupervisorError>;

impl Actor {
    pub(super) async fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::StartChild(spec, reply) => self.start_child(spec, reply).await,
            Msg::TerminateChild(id, reply) => {
                let answer = self.terminate_child(&id).await;
                let _ = reply.send(answer);
            }
            Msg::RestartChild(id, reply) => self.restart_child(&id, reply).await,
            Msg::DeleteChild(id, reply) => {
                let _ = reply.send(self.delete_child(&id));
            }
            Msg::WhichChildren(reply) => {
                let _ = reply.send(self.which_children());
            }
            Msg::CountChildren(reply) => {
                let _ = reply.send(self.count_children());
            }
            Msg::Shutdown(reply) => {
                self.shutdown_waiters.push(reply);
                self.shutdown(false).await;
            }
        }
    }

    fn unknown(&self, child: &str) -> SupervisorError {
        SupervisorError::UnknownChild {
            supervisor: self.id.to_string(),
            child: child.to_owned(),
        }
    }

    async fn start_child(&mut self, spec: ChildSpec, reply: Reply<Answer>) {
        if let Err(e) = validate_child(&self.id, self.spec.auto_shutdown, &spec) {
            let _ = reply.send(Err(e.into()));
            return;
        }
        if self.index_by_id(spec.id()).is_some() {
            let _ = reply.send(Err(SupervisorError::DuplicateChild {
                supervisor: self.id.to_string(),
                child: spec.id().to_owned(),
            }));
            return;
        }
        let serial = self.next_key();
        self.children.push(Child {
            serial,
            spec,
            state: State::Queued,
            restarts: 0,
            started_once: false,
            consecutive: 0,
            last_start: Instant::now(),
        });
        let kind = SeqKind::Manual {
            reply: Some(reply),
            added: true,
        };
        self.start_seq(vec![serial], serial, kind).await;
    }

    async fn restart_child(&mut self, id: &str, reply: Reply<Answer>) {
        let Some(i) = self.index_by_id(id) else {
            let _ = reply.send(Err(self.unknown(id)));
            return;
        };
        if let Err(e) = self.must_be_terminated(i) {
            let _ = reply.send(Err(e));
            return;
        }
        let serial = self.children[i].serial;
        let kind = SeqKind::Manual {
            reply: Some(reply),
            added: false,
        };
        self.start_seq(vec![serial], serial, kind).await;
    }

    fn must_be_terminated(&self, i: usize) -> Answer {
        let child = self.children[i].spec.id().to_owned();
        let supervisor = self.id.to_string();
        match self.children[i].state {
            State::Terminated => Ok(()),
            State::Running(_) => Err(SupervisorError::ChildRunning { supervisor, child }),
            State::Queued | State::Restarting(_) => {
                Err(SupervisorError::ChildRestarting { supervisor, child })
            }
        }
    }

    fn delete_child(&mut self, id: &str) -> Answer {
        let i = self.index_by_id(id).ok_or_else(|| self.unknown(id))?;
        self.must_be_terminated(i)?;
        self.children.remove(i);
        Ok(())
    }

    async fn terminate_child(&mut self, id: &str) -> Answer {
        let i = self.index_by_id(id).ok_or_else(|| self.unknown(id))?;
        let serial = self.children[i].serial;
        let answer = match &self.children[i].state {
            State::Terminated => Ok(()),
            State::Restarting(_) | State::Queued => {
                self.cancel_restart(i);
                Ok(())
            }
            State::Running(run) => {
                let key = run.key;
                let waited_on = self.seq_waiting_on(key);
                let stopped = self.stop_child(i, false).await;
                if let Some(s) = waited_on {
                    self.skip_waiting(s).await;
                }
                match stopped {
                    Stopped::Exited => Ok(()),
                    Stopped::NotStopped => Err(SupervisorError::ChildNotStopped {
                        supervisor: self.id.to_string(),
                        child: id.to_owned(),
                    }),
                }
            }
        };
        if let Some(i) = self.index_of(serial) {
            if self.children[i].spec.restart_type() == Restart::Temporary {
                self.children.remove(i);
            }
        }
        answer
    }

    /// The waiting child of sequence `s` was terminated: go on with the next one.
    async fn skip_waiting(&mut self, s: usize) {
        let seq = &mut self.seqs[s];
        if let Some((_, Some(timer))) = seq.waiting.take() {
            self.timers.remove(timer);
        }
        seq.members.pop_front();
        let id = seq.id;
        self.advance(id).await;
    }

    /// Takes a restarting (or queued) child out of its pending restart.
    fn cancel_restart(&mut self, i: usize) {
        let serial = self.children[i].serial;
        if let State::Restarting(gid) = self.children[i].state {
            if let Some(k) = self.groups.iter().position(|g| g.id == gid) {
                self.groups[k].members.retain(|&m| m != serial);
                if self.groups[k].members.is_empty() {
                    let g = self.groups.remove(k);
                    self.timers.remove(g.timer);
                }
            }
        }
        for seq in &mut self.seqs {
            seq.members.retain(|&m| m != serial);
        }
        self.children[i].state = State::Terminated;
        let child = self.children[i].spec.inner().id.clone();
        self.emitter.emit(|supervisor| Event::RestartCancelled {
            supervisor,
            child,
            instance: None,
        });
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                id: c.spec.inner().id.clone(),
                instance: None,
                state: match &c.state {
                    State::Running(r) if r.ready => ChildState::Running,
                    State::Running(_) => ChildState::Starting,
                    State::Queued if !c.started_once => ChildState::Starting,
                    State::Queued | State::Restarting(_) => ChildState::Restarting,
                    State::Terminated => ChildState::Terminated,
                },
                kind: c.spec.child_kind(),
                restart: c.spec.restart_type(),
                restarts: c.restarts,
            })
            .collect()
    }

    fn count_children(&self) -> ChildCounts {
        let mut counts = ChildCounts::default();
        for c in &self.children {
            counts.specs += 1;
            if matches!(c.state, State::Running(_)) {
                counts.active += 1;
            }
            match c.spec.child_kind() {
                ChildKind::Worker => counts.workers += 1,
                ChildKind::Supervisor => counts.supervisors += 1,
            }
        }
        counts
    }
}
