//! Starting children: spawning, readiness, start timeouts and start failures.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::children::DynState;
use super::{Actor, Timer};
use crate::child::{self, RunKey};
use crate::context::ReadyLink;
use crate::error::StartFailure;
use crate::{ChildContext, ExitReason, SupervisorError};

impl Actor {
    /// Spawns child `id` (again, if it ran before); returns whether it is ready at once.
    pub(super) fn spawn(&mut self, id: u64) -> bool {
        let child_id = self.shared.child_id(id);
        let Some(child) = self.children.get_mut(&id) else {
            return true;
        };
        // a temporary child (the only kind whose factory goes) is never started twice
        let Some(factory) = child.spec.factory() else {
            return true;
        };
        child.restarts.started(Instant::now());
        let restarts = child.restarts.count();
        let inner = child.spec.inner();
        let key = RunKey {
            child: id,
            spawn: u64::from(restarts),
        };
        let ready = inner.wait_ready.then(|| ReadyLink {
            tx: self.ready_tx.clone(),
            key,
        });
        let token = CancellationToken::new();
        let ctx = ChildContext::new(inner.id.clone(), Some(child_id), restarts, token, ready);
        let run = child::spawn_reporting(&child.spec, factory, ctx, key, self.exits_tx.clone());
        let is_ready = run.ready;
        if let Some(t) = inner.start_timeout.filter(|_| !is_ready) {
            self.timers.insert(t, Timer::StartTimeout(key));
        }
        self.emitter.started(&inner.id, Some(child_id), restarts);
        child.spec.started();
        child.state = DynState::Running(run);
        is_ready
    }

    /// The child whose run has this key signalled readiness.
    pub(super) fn on_ready(&mut self, key: RunKey) {
        match self.children.get_mut(&key.child).map(|c| &mut c.state) {
            Some(DynState::Running(run)) if run.key == key => run.ready = true,
            _ => return,
        }
        if let Some(reply) = self.starting.remove(&key.child) {
            let _ = reply.send(Ok(self.shared.child_id(key.child)));
        }
    }

    /// The start timeout of the run with this key elapsed.
    pub(super) fn on_start_timeout(&mut self, key: RunKey) {
        let waiting = matches!(
            self.children.get(&key.child).map(|c| &c.state),
            Some(DynState::Running(r)) if r.key == key && !r.ready
        );
        if waiting {
            // as in OTP, a child that overran its start timeout is killed outright
            self.begin_stop(key.child, true, None, true);
        }
    }

    /// Child `id` exited or timed out before it was ready: its caller gets the error, or,
    /// for a restart, the restart is retried.
    pub(super) fn start_failed(&mut self, id: u64, failure: StartFailure) {
        let Some(child) = self.children.get(&id) else {
            return;
        };
        let cid = child.spec.inner().id.clone();
        let err = failure.into_error(&self.id, &cid);
        self.emitter
            .start_failed(&cid, Some(self.shared.child_id(id)), &err);
        if let Some(reply) = self.starting.remove(&id) {
            self.remove_child(id);
            let _ = reply.send(Err(SupervisorError::from(err)));
            return;
        }
        if self.shutting_down {
            self.remove_child(id);
            return;
        }
        self.restart(id, ExitReason::Error(Arc::new(err)));
    }
}
