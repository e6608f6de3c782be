//! Serving handle calls.

use std::time::Duration;

use super::stop::Stopped;
use super::{Actor, Child, SeqKind, State};
use crate::builder::validate_child;
use crate::handle::{ChildCounts, ChildInfo, ChildState, Msg, Reply};
use crate::timers::TimerId;
use crate::tree::{ChildNode, RawNode, TreeKind};
use crate::{ChildKind, ChildSpec, Restart, Strategy, SupervisorError};

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
            Msg::Tree(reply) => {
                let kind = TreeKind::Static(self.spec.strategy);
                let _ = reply.send((kind, self.tree_nodes()));
            }
            Msg::Shutdown(reply) => {
                self.ending.wait(reply);
                self.shutdown(false).await;
            }
        }
    }

    async fn start_child(&mut self, spec: ChildSpec, reply: Reply<Answer>) {
        if let Err(e) = validate_child(&self.id, self.spec.auto_shutdown, &spec) {
            let _ = reply.send(Err(e.into()));
            return;
        }
        if let Some(taken) = self.children.serial_of(spec.id()) {
            let _ = reply.send(Err(self.already_there(taken, spec.id())));
            return;
        }
        let serial = self.next_key();
        self.children.push(Child::new(serial, spec));
        let kind = SeqKind::Manual {
            reply: Some(reply),
            added: true,
        };
        self.start_seq(vec![serial], kind).await;
    }

    async fn restart_child(&mut self, id: &str, reply: Reply<Answer>) {
        let checked = self
            .serial_of(id)
            .and_then(|s| self.must_be_terminated(s).map(|()| s));
        let serial = match checked {
            Ok(serial) => serial,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let kind = SeqKind::Manual {
            reply: Some(reply),
            added: false,
        };
        self.start_seq(vec![serial], kind).await;
    }

    /// The answer to a `start_child` of `child`, an id that child `serial` already has.
    fn already_there(&self, serial: u64, child: &str) -> SupervisorError {
        let supervisor = self.id.to_string();
        let child = child.to_owned();
        match self.children.get(serial).map(|c| &c.state) {
            Some(State::Terminated) => SupervisorError::ChildAlreadyPresent { supervisor, child },
            _ => SupervisorError::ChildAlreadyStarted { supervisor, child },
        }
    }

    /// The serial of the child with this id, or the `UnknownChild` answer.
    fn serial_of(&self, id: &str) -> Result<u64, SupervisorError> {
        self.children
            .serial_of(id)
            .ok_or_else(|| SupervisorError::UnknownChild {
                supervisor: self.id.to_string(),
                child: id.to_owned(),
            })
    }

    fn must_be_terminated(&self, serial: u64) -> Answer {
        let Some(c) = self.children.get(serial) else {
            return Ok(());
        };
        let child = c.spec.id().to_owned();
        let supervisor = self.id.to_string();
        match c.state {
            State::Terminated => Ok(()),
            State::Running(_) => Err(SupervisorError::ChildRunning { supervisor, child }),
            State::Queued | State::Restarting(_) => {
                Err(SupervisorError::ChildRestarting { supervisor, child })
            }
        }
    }

    fn delete_child(&mut self, id: &str) -> Answer {
        let serial = self.serial_of(id)?;
        self.must_be_terminated(serial)?;
        self.children.remove(serial);
        Ok(())
    }

    async fn terminate_child(&mut self, id: &str) -> Answer {
        let serial = self.serial_of(id)?;
        let dependents = self.pending_dependents(serial);
        let answer = match self.children.get(serial).map(|c| &c.state) {
            None | Some(State::Terminated) => Ok(()),
            Some(State::Restarting(_) | State::Queued) => {
                for serial in std::iter::once(serial).chain(dependents) {
                    self.cancel_restart(serial);
                }
                Ok(())
            }
            Some(State::Running(run)) => {
                let key = run.key;
                let waited_on = self.seq_waiting_on(key);
                let stopped = self.stop_child(serial, false).await;
                for &dependent in &dependents {
                    self.cancel_restart(dependent);
                }
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
        if let Some(c) = self.children.get(serial) {
            if c.spec.restart_type() == Restart::Temporary {
                self.children.remove(serial);
            } else if matches!(c.state, State::Terminated) {
                c.spec.stopped_for_good();
            }
        }
        answer
    }

    /// Under `RestForOne`, the children after `serial` in the same pending restart (a delayed
    /// group, or a restart sequence under way). They depend on it: terminating it cancels
    /// their restarts too, as OTP leaves them down when the restart it waits on is gone.
    fn pending_dependents(&self, serial: u64) -> Vec<u64> {
        if self.spec.strategy != Strategy::RestForOne {
            return Vec::new();
        }
        let group = match self.children.get(serial).map(|c| &c.state) {
            Some(State::Restarting(gid)) => self.groups.iter().find(|g| g.id == *gid),
            _ => None,
        };
        let members: Vec<u64> = match group {
            Some(g) => g.members.clone(),
            None => self
                .seqs
                .iter()
                .filter(|s| matches!(s.kind, SeqKind::Restart))
                .find(|s| s.members.contains(&serial))
                .map(|s| s.members.iter().copied().collect())
                .unwrap_or_default(),
        };
        members.into_iter().filter(|&m| m > serial).collect()
    }

    /// The waiting child of sequence `s` was terminated: go on with the next one.
    async fn skip_waiting(&mut self, s: usize) {
        let seq = &mut self.seqs[s];
        if let Some((_, timer)) = seq.waiting.take() {
            self.timers.remove(timer);
        }
        seq.members.pop_front();
        let id = seq.id;
        self.advance(id).await;
    }

    /// Takes a restarting (or queued) child out of its pending restart.
    fn cancel_restart(&mut self, serial: u64) {
        let Some(c) = self.children.get_mut(serial) else {
            return;
        };
        let state = std::mem::replace(&mut c.state, State::Terminated);
        let child = c.spec.inner().id.clone();
        if let State::Restarting(gid) = state {
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
        if let Some(c) = self.children.get(serial) {
            c.spec.stopped_for_good();
        }
        self.emitter.restart_cancelled(&child, None);
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                id: c.spec.inner().id.clone(),
                instance: None,
                state: state_of(c),
                kind: c.spec.child_kind(),
                restart: c.spec.restart_type(),
                restarts: c.restarts.count(),
            })
            .collect()
    }

    /// Every child as the tree shows it, with the handles of nested supervisors.
    fn tree_nodes(&self) -> Vec<RawNode> {
        self.children
            .iter()
            .map(|c| {
                let (uptime, nested) = match &c.state {
                    State::Running(r) => (Some(r.started_at.elapsed()), r.nested()),
                    _ => (None, None),
                };
                let restart_in = match c.state {
                    State::Restarting(gid) => self
                        .groups
                        .iter()
                        .find(|g| g.id == gid)
                        .map(|g| g.timer.map_or(Duration::MAX, TimerId::left)),
                    _ => None,
                };
                let node = ChildNode {
                    id: c.spec.inner().id.clone(),
                    instance: None,
                    state: state_of(c),
                    kind: c.spec.child_kind(),
                    restart: c.spec.restart_type(),
                    restarts: c.restarts.count(),
                    last_exit: c.restarts.last_exit(),
                    uptime,
                    restart_in,
                    tree: None,
                };
                (node, nested)
            })
            .collect()
    }

    fn count_children(&self) -> ChildCounts {
        let mut counts = ChildCounts::default();
        for c in self.children.iter() {
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

/// A child's state as `which_children` and the tree report it.
fn state_of(c: &Child) -> ChildState {
    match &c.state {
        State::Running(r) if r.ready => ChildState::Running,
        State::Running(_) => ChildState::Starting,
        State::Queued if !c.restarts.ever_started() => ChildState::Starting,
        State::Queued | State::Restarting(_) => ChildState::Restarting,
        State::Terminated => ChildState::Terminated,
    }
}
