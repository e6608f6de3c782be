//! Serving handle calls.

use std::time::Duration;

use super::children::{DynChild, DynState};
use super::Actor;
use crate::child::{Exit, Run};
use crate::dynamic::builder::check_spec;
use crate::dynamic::handle::DynMsg;
use crate::handle::{ChildCounts, ChildInfo, ChildState, Reply};
use crate::timers::TimerId;
use crate::tree::{ChildNode, RawNode};
use crate::{ChildId, ChildKind, ChildSpec, SupervisorError};

impl Actor {
    pub(super) fn on_msg(&mut self, msg: DynMsg) {
        match msg {
            DynMsg::StartChild(spec, reply) => self.start_child(spec, reply),
            DynMsg::Adopt(id, spec, run) => self.adopt(id, spec, run),
            DynMsg::TerminateChild(id, reply) => self.terminate_child(id, reply),
            DynMsg::WhichChildren(reply) => {
                let _ = reply.send(self.which_children());
            }
            DynMsg::CountChildren(reply) => {
                let _ = reply.send(self.count_children());
            }
            DynMsg::Tree(reply) => {
                let _ = reply.send(self.tree_nodes());
            }
            DynMsg::Shutdown(reply) => {
                self.ending.wait(reply);
                self.shutdown(false);
            }
        }
    }

    /// Starts a child that must be waited for (the others a handle spawns itself).
    fn start_child(&mut self, spec: ChildSpec, reply: Reply<Result<ChildId, SupervisorError>>) {
        if let Err(e) = check_spec(&self.id, &spec) {
            let _ = reply.send(Err(e.into()));
            return;
        }
        let id = match self.shared.reserve() {
            Ok(id) => id,
            Err(refused) => {
                let _ = reply.send(Err(refused.into_error(self.sup())));
                return;
            }
        };
        self.children
            .insert(id, DynChild::new(spec, DynState::Idle));
        if self.spawn(id) {
            let _ = reply.send(Ok(self.shared.child_id(id)));
        } else {
            self.starting.insert(id, reply);
        }
    }

    /// Takes in a child a handle spawned.
    fn adopt(&mut self, id: u64, spec: ChildSpec, run: Run) {
        let started_at = run.started_at;
        let mut child = DynChild::new(spec, DynState::Running(run));
        child.restarts.started(started_at);
        let cid = child.spec.inner().id.clone();
        self.children.insert(id, child);
        self.emitter
            .started(&cid, Some(self.shared.child_id(id)), 0);
        if let Some(outcome) = self.early.remove(&id) {
            self.on_exit_msg(Exit { id, outcome });
        } else if self.shutting_down {
            self.begin_stop(id, self.killed, None, false);
        }
    }

    /// Removes a child for good.
    pub(super) fn remove_child(&mut self, id: u64) {
        if self.children.remove(&id).is_some() {
            self.shared.release();
        }
    }

    fn terminate_child(&mut self, child_id: ChildId, reply: Reply<Result<(), SupervisorError>>) {
        let Some(id) = self.shared.number(child_id) else {
            let _ = reply.send(Err(SupervisorError::UnknownChild {
                supervisor: self.sup(),
                child: child_id.to_string(),
            }));
            return;
        };
        let Some(child) = self.children.get_mut(&id) else {
            // issued here and gone since: already terminated, as OTP answers for a dead pid
            let _ = reply.send(Ok(()));
            return;
        };
        match &mut child.state {
            DynState::Stopping(_, stop) => stop.replies.push(reply),
            DynState::Running(_) => self.begin_stop(id, false, Some(reply), false),
            DynState::Idle => {
                self.remove_child(id);
                let _ = reply.send(Ok(()));
            }
            DynState::Restarting(timer) => {
                let timer = *timer;
                self.timers.remove(timer);
                self.emitter
                    .restart_cancelled(&child.spec.inner().id, Some(child_id));
                self.remove_child(id);
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        let mut list: Vec<ChildInfo> = self
            .children
            .iter()
            .map(|(&id, c)| ChildInfo {
                id: c.spec.inner().id.clone(),
                instance: Some(self.shared.child_id(id)),
                state: state_of(&c.state),
                kind: c.spec.child_kind(),
                restart: c.spec.restart_type(),
                restarts: c.restarts.count(),
            })
            .collect();
        list.sort_by_key(|c| c.instance);
        list
    }

    /// Every child as the tree shows it (by instance), with nested supervisors' handles.
    fn tree_nodes(&self) -> Vec<RawNode> {
        let mut list: Vec<RawNode> = self
            .children
            .iter()
            .map(|(&id, c)| {
                let (uptime, nested, restart_in) = match &c.state {
                    DynState::Running(r) | DynState::Stopping(r, _) => {
                        (Some(r.started_at.elapsed()), r.nested(), None)
                    }
                    DynState::Restarting(t) => {
                        (None, None, Some(t.map_or(Duration::MAX, TimerId::left)))
                    }
                    DynState::Idle => (None, None, None),
                };
                let node = ChildNode {
                    id: c.spec.inner().id.clone(),
                    instance: Some(self.shared.child_id(id)),
                    state: state_of(&c.state),
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
            .collect();
        list.sort_by_key(|(n, _)| n.instance);
        list
    }

    fn count_children(&self) -> ChildCounts {
        let mut counts = ChildCounts::default();
        for c in self.children.values() {
            counts.specs += 1;
            if matches!(c.state, DynState::Running(_) | DynState::Stopping(..)) {
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
fn state_of(state: &DynState) -> ChildState {
    match state {
        DynState::Running(r) if r.ready => ChildState::Running,
        DynState::Running(_) => ChildState::Starting,
        DynState::Stopping(..) => ChildState::Stopping,
        DynState::Restarting(_) | DynState::Idle => ChildState::Restarting,
    }
}
