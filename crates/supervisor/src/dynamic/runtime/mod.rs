//! The dynamic supervisor's task: one task owns the children, keyed by number, and serves
//! its handles; children are stopped concurrently.

mod children;
mod commands;
mod exit;
mod start;
mod stop;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::builder::DynInner;
use super::handle::{DynMsg, DynamicHandle};
use super::shared::Shared;
use super::DynamicSupervisorSpec;
use crate::child::{Exit, Outcome, RunKey};
use crate::end::{End, Ending};
use crate::events::Emitter;
use crate::handle::{connect, Reply};
use crate::restarts::Restarts;
use crate::timers::Timers;
use crate::tree::Nested;
use crate::{ChildContext, ChildError, ChildId, ShutdownReport, StartError, SupervisorError};
use children::{DynChild, IdMap, IdSet};

/// How many queued calls one loop turn serves before it looks at exits and timers again.
const MSG_BATCH: usize = 64;

/// Starts a top-level dynamic supervisor task.
pub(super) async fn start_top_level(
    spec: DynamicSupervisorSpec,
) -> Result<DynamicHandle, StartError> {
    let (actor, handle) = Actor::new(spec, CancellationToken::new());
    tokio::spawn(actor.run(None));
    Ok(handle)
}

/// Runs a nested dynamic supervisor inside its parent's child task.
pub(super) async fn run_nested(
    spec: DynamicSupervisorSpec,
    ctx: ChildContext,
) -> Result<(), ChildError> {
    let (actor, handle) = Actor::new(spec, ctx.token().clone());
    ctx.publish_nested(Nested::Dynamic(handle));
    let (end, report) = actor.run(Some(ctx)).await;
    end.into_child_result(report)
}

#[derive(Debug)]
enum Timer {
    Restart(u64),
    StopDeadline(u64),
    ShutdownDeadline(Duration),
    AbortGrace(u64),
    StartTimeout(RunKey),
}

struct Actor {
    spec: Arc<DynInner>,
    id: Arc<str>,
    children: IdMap<DynChild>,
    /// Exits of children a handle spawned that the supervisor has not taken in yet.
    early: IdMap<Outcome>,
    /// Children given up on (they did not stop); their late exits are ignored.
    detached: IdSet,
    shared: Arc<Shared>,
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits_rx: mpsc::UnboundedReceiver<Exit>,
    /// Callers of `start_child` waiting for their child's readiness.
    starting: IdMap<Reply<Result<ChildId, SupervisorError>>>,
    timers: Timers<Timer>,
    restarts: Restarts,
    calls: mpsc::UnboundedReceiver<DynMsg>,
    ready_tx: mpsc::UnboundedSender<RunKey>,
    ready_rx: mpsc::UnboundedReceiver<RunKey>,
    emitter: Emitter,
    stop: CancellationToken,
    kill: CancellationToken,
    shutting_down: bool,
    /// A kill has been handled (every child is being aborted).
    killed: bool,
    escalation: Option<SupervisorError>,
    /// The shutdown timeouts that have a timer (one per distinct bound, not per child).
    shutdown_deadlines: Vec<Duration>,
    ending: Ending,
    handle: DynamicHandle,
}

impl Actor {
    fn new(spec: DynamicSupervisorSpec, stop: CancellationToken) -> (Self, DynamicHandle) {
        let spec = spec.inner;
        let flags = &spec.flags;
        let (core, serving) = connect(flags);
        let shared = Arc::new(Shared::new(spec.max_children));
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        let handle = DynamicHandle::new(core, shared.clone(), exits_tx.clone());
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let actor = Self {
            id: flags.id.clone(),
            restarts: Restarts::new(flags.intensity, flags.restart_policy.clone()),
            children: IdMap::default(),
            early: IdMap::default(),
            detached: IdSet::default(),
            shared,
            exits_tx,
            exits_rx,
            starting: IdMap::default(),
            timers: Timers::new(),
            calls: serving.calls,
            ready_tx,
            ready_rx,
            emitter: serving.emitter,
            stop,
            kill: serving.kill,
            shutting_down: false,
            killed: false,
            escalation: None,
            shutdown_deadlines: Vec::new(),
            ending: serving.ending,
            handle: handle.clone(),
            spec,
        };
        (actor, handle)
    }

    async fn run(mut self, ctx: Option<ChildContext>) -> (End, ShutdownReport) {
        if let Some(on_start) = self.spec.on_start.clone() {
            on_start(&self.handle);
        }
        if let Some(ctx) = ctx {
            ctx.ready();
        }
        loop {
            while !(self.shutting_down && self.children.is_empty()) {
                self.step().await;
            }
            // A handle that reserved a slot before the shutdown may have queued its child
            // since: refuse anything new (later sends fail, and the handle stops its child
            // itself), take in what is queued, and stop it like the others.
            self.calls.close();
            while let Ok(msg) = self.calls.try_recv() {
                self.on_msg(msg);
            }
            if self.children.is_empty() {
                return self.finish();
            }
        }
    }

    async fn step(&mut self) {
        tokio::select! {
            biased;
            () = self.kill.cancelled(), if !self.killed => self.shutdown(true),
            () = self.stop.cancelled(), if !self.shutting_down => self.shutdown(false),
            // readiness before exits: a child that signals ready and then exits was ready
            Some(key) = self.ready_rx.recv() => self.on_ready(key),
            Some(exit) = self.exits_rx.recv() => {
                self.on_exit_msg(exit);
                while let Ok(exit) = self.exits_rx.try_recv() {
                    self.on_exit_msg(exit);
                }
            }
            timer = self.timers.next() => self.on_timer(timer),
            Some(msg) = self.calls.recv() => {
                self.on_msg(msg);
                for _ in 0..MSG_BATCH {
                    match self.calls.try_recv() {
                        Ok(msg) => self.on_msg(msg),
                        Err(_) => break,
                    }
                }
            }
        }
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Restart(id) => self.restart_due(id),
            Timer::StopDeadline(id) => self.abort_stopping(id, true),
            Timer::ShutdownDeadline(bound) => self.shutdown_deadline(bound),
            Timer::AbortGrace(id) => self.not_stopped(id),
            Timer::StartTimeout(key) => self.on_start_timeout(key),
        }
    }

    /// Publishes the final report; the supervisor has ended.
    fn finish(mut self) -> (End, ShutdownReport) {
        self.emitter.shutdown_finished(self.ending.is_clean());
        let end = match self.escalation.take() {
            Some(e) => End::Escalated(e),
            None if self.killed => End::Killed,
            None => End::Stopped,
        };
        self.ending.publish(end)
    }

    /// `supervisor/child#n` for child `id`.
    fn path(&self, id: u64) -> String {
        let spec_id = self.children.get(&id).map_or("", |c| c.spec.id());
        format!("{}/{spec_id}{}", self.id, self.shared.child_id(id))
    }

    fn sup(&self) -> String {
        self.id.to_string()
    }
}
