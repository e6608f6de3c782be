//! Stopping children (token, linger bound, abort) and shutting the supervisor down.

use tokio::task::Id;
use tokio::time::{sleep_until, Instant};

use crate::timers::deadline;

use super::{Actor, SeqKind, State};
use crate::child::{joined_id, Joined, Outcome};
use crate::end::End;
use crate::{ExitReason, Shutdown, StartError, SupervisorError};

/// How a stop ended.
#[derive(Debug)]
pub(super) enum Stopped {
    /// The child's task finished.
    Exited,
    /// Abort could not reach the child (it blocks its thread); it was detached.
    NotStopped,
}

impl Actor {
    /// Stops running child `serial` with its shutdown policy (or at once when `force` or
    /// after a kill). Leaves it `Terminated`; the caller decides whether to drop the spec.
    pub(super) async fn stop_child(&mut self, serial: u64, force: bool) -> Stopped {
        let Some(child) = self.children.get_mut(serial) else {
            return Stopped::Exited;
        };
        let State::Running(run) = std::mem::replace(&mut child.state, State::Terminated) else {
            return Stopped::Exited;
        };
        let policy = match force || self.kill.is_cancelled() {
            true => Shutdown::BrutalKill,
            false => child.spec.shutdown_policy(),
        };
        let task = run.abort.id();
        if let Some(pos) = self.deferred.iter().position(|j| joined_id(j) == task) {
            let joined = self
                .deferred
                .remove(pos)
                .expect("position was just found in the queue");
            return self.stopped(serial, joined, false);
        }
        // the outer `None`: abort at once; the inner `None`: no limit
        let linger = match policy {
            Shutdown::BrutalKill => None,
            Shutdown::Timeout(d) => Some(deadline(d)),
            Shutdown::Infinity => Some(None),
        };
        if let Some(until) = linger {
            run.token.cancel();
            if let Some(joined) = self.await_exit(task, until, true).await {
                return self.stopped(serial, joined, true);
            }
            let path = self.child_path(serial);
            self.ending.aborted(path);
        }
        run.abort.abort();
        let grace = deadline(self.spec.flags.abort_grace);
        match self.await_exit(task, grace, false).await {
            Some(joined) => self.stopped(serial, joined, true),
            None => self.not_stopped(serial),
        }
    }

    /// `supervisor/child` for child `serial`.
    fn child_path(&self, serial: u64) -> String {
        self.path(self.children.get(serial).map_or("", |c| c.spec.id()))
    }

    fn stopped(&mut self, serial: u64, joined: Joined, stopping: bool) -> Stopped {
        let outcome = Outcome::from(joined);
        // a nested supervisor's paths start with its own id, which is this child's id
        self.ending.absorb(&self.id, &outcome);
        let reason = outcome.reason(stopping);
        self.emit_exit(serial, &reason);
        Stopped::Exited
    }

    fn not_stopped(&mut self, serial: u64) -> Stopped {
        let path = self.child_path(serial);
        tracing::error!(target: "supervisor", supervisor = %self.id, child = %path, "child did not stop within its shutdown bound; detached");
        self.ending.not_stopped(path);
        self.emit_exit(serial, &ExitReason::Killed);
        Stopped::NotStopped
    }

    /// Waits for task `task` to finish, until `deadline` (if any) or a kill (if `watch_kill`).
    /// Other children's exits seen meanwhile are kept for the main loop.
    async fn await_exit(
        &mut self,
        task: Id,
        deadline: Option<Instant>,
        watch_kill: bool,
    ) -> Option<Joined> {
        let sleep = async {
            match deadline {
                Some(d) => sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                joined = self.tasks.join_next_with_id() => match joined {
                    Some(j) if joined_id(&j) == task => return Some(j),
                    Some(j) => self.deferred.push_back(j),
                    None => return None,
                },
                () = self.kill.cancelled(), if watch_kill => return None,
                () = &mut sleep => return None,
            }
        }
    }

    /// Stops every running child in reverse start order.
    pub(super) async fn stop_all(&mut self, force: bool) {
        let running: Vec<u64> = self
            .children
            .iter()
            .rev()
            .filter(|c| matches!(c.state, State::Running(_)))
            .map(|c| c.serial)
            .collect();
        for serial in running {
            self.stop_child(serial, force).await;
        }
    }

    /// Cancels every pending restart and start sequence at once.
    pub(super) fn cancel_pending(&mut self) {
        self.timers.clear();
        self.groups.clear();
        for seq in self.seqs.drain(..) {
            if let SeqKind::Manual {
                reply: Some(reply), ..
            } = seq.kind
            {
                let _ = reply.send(Err(SupervisorError::ShuttingDown {
                    supervisor: self.id.to_string(),
                }));
            }
        }
        for child in self.children.iter_mut() {
            if matches!(child.state, State::Queued | State::Restarting(_)) {
                child.state = State::Terminated;
            }
        }
    }

    /// Orderly shutdown (or a kill when `force`): stops all children and ends.
    pub(super) async fn shutdown(&mut self, force: bool) {
        self.emitter.shutdown_started();
        self.cancel_pending();
        self.stop_all(force).await;
        self.emitter.shutdown_finished(self.ending.is_clean());
        if self.init_pending() {
            self.init_done(Err(StartError::Ended {
                supervisor: self.id.to_string(),
                reason: Box::new(SupervisorError::ShuttingDown {
                    supervisor: self.id.to_string(),
                }),
            }));
        }
        self.end = Some(match self.kill.is_cancelled() {
            true => End::Killed,
            false => End::Stopped,
        });
    }
}
