//! The static supervisor's task: one task owns all state and serves its handles.

mod children;
mod commands;
mod exit;
mod start;
mod stop;

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::builder::SpecInner;
use crate::child::{Joined, Run, RunKey, Tasks};
use crate::end::{End, Ending};
use crate::events::Emitter;
use crate::handle::{connect, Msg, Reply};
use crate::restarts::{ChildRestarts, Restarts};
use crate::timers::{TimerId, Timers};
use crate::tree::Nested;
use crate::{
    ChildContext, ChildError, ChildSpec, ShutdownReport, StartError, SupervisorError,
    SupervisorHandle, SupervisorSpec,
};
use children::Children;

/// Starts a top-level supervisor task and waits for its ordered start.
pub(crate) async fn start_top_level(spec: SupervisorSpec) -> Result<SupervisorHandle, StartError> {
    let (init_tx, init_rx) = oneshot::channel();
    let (actor, handle) = Actor::new(
        spec,
        Init::TopLevel(Some(init_tx)),
        CancellationToken::new(),
    );
    tokio::spawn(actor.run());
    match init_rx.await {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StartError::Gone {
            supervisor: handle.id().to_owned(),
        }),
    }
}

/// Runs a nested supervisor inside its parent's child task, so that aborting that task
/// drops this supervisor and, with it, aborts all its children.
pub(crate) async fn run_nested(spec: SupervisorSpec, ctx: ChildContext) -> Result<(), ChildError> {
    let token = ctx.token().clone();
    let (actor, handle) = Actor::new(spec, Init::Nested(Some(ctx)), token);
    if let Init::Nested(Some(ctx)) = &actor.init {
        ctx.publish_nested(Nested::Static(handle));
    }
    let (end, report) = actor.run().await;
    end.into_child_result(report)
}

/// Who is waiting for the initial start.
pub(crate) enum Init {
    TopLevel(Option<oneshot::Sender<Result<(), StartError>>>),
    Nested(Option<ChildContext>),
}

#[derive(Debug)]
pub(super) enum State {
    /// Not running; spec kept.
    Terminated,
    /// Waiting in a start sequence.
    Queued,
    /// Waiting for the timer of this restart group.
    Restarting(u64),
    Running(Run),
}

pub(super) struct Child {
    pub(super) serial: u64,
    pub(super) spec: ChildSpec,
    pub(super) state: State,
    pub(super) restarts: ChildRestarts,
}

impl Drop for Child {
    /// The record goes (removed, or its supervisor ended): the child has stopped for good.
    fn drop(&mut self) {
        self.spec.stopped_for_good();
    }
}

impl Child {
    fn new(serial: u64, spec: ChildSpec) -> Self {
        Self {
            serial,
            spec,
            state: State::Queued,
            restarts: ChildRestarts::default(),
        }
    }
}

#[derive(Debug)]
pub(super) enum Timer {
    Restart(u64),
    StartTimeout(RunKey),
}

/// Children waiting for one delayed restart (a whole group under one_for_all/rest_for_one).
pub(super) struct Group {
    pub(super) id: u64,
    pub(super) members: Vec<u64>,
    pub(super) initial: bool,
    pub(super) timer: Option<TimerId>,
}

pub(super) enum SeqKind {
    Initial,
    Restart,
    Manual {
        reply: Option<Reply<Result<(), SupervisorError>>>,
        added: bool,
    },
}

/// Children being started in order, each after the previous one is ready.
pub(super) struct Seq {
    pub(super) id: u64,
    pub(super) members: VecDeque<u64>,
    pub(super) started: Vec<u64>,
    pub(super) waiting: Option<(RunKey, Option<TimerId>)>,
    pub(super) kind: SeqKind,
}

pub(crate) struct Actor {
    pub(super) spec: Arc<SpecInner>,
    pub(super) id: Arc<str>,
    pub(super) children: Children,
    pub(super) tasks: Tasks,
    pub(super) deferred: VecDeque<Joined>,
    pub(super) timers: Timers<Timer>,
    pub(super) restarts: Restarts,
    pub(super) calls: mpsc::UnboundedReceiver<Msg>,
    pub(super) ready_tx: mpsc::UnboundedSender<RunKey>,
    pub(super) ready_rx: mpsc::UnboundedReceiver<RunKey>,
    pub(super) emitter: Emitter,
    pub(super) next_key: u64,
    pub(super) groups: Vec<Group>,
    pub(super) seqs: Vec<Seq>,
    pub(super) init: Init,
    pub(super) stop: CancellationToken,
    pub(super) kill: CancellationToken,
    pub(super) ending: Ending,
    pub(super) end: Option<End>,
    pub(super) handle: SupervisorHandle,
}

impl Actor {
    pub(crate) fn new(
        spec: SupervisorSpec,
        init: Init,
        stop: CancellationToken,
    ) -> (Self, SupervisorHandle) {
        let spec = spec.inner;
        let flags = &spec.flags;
        let (core, serving) = connect(flags);
        let handle = SupervisorHandle::new(core);
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let mut children = Children::default();
        for (serial, child) in (1..).zip(&spec.children) {
            children.push(Child::new(serial, child.clone()));
        }
        let actor = Self {
            id: flags.id.clone(),
            restarts: Restarts::new(flags.intensity, flags.restart_policy.clone()),
            next_key: children.len() as u64,
            children,
            tasks: Tasks::new(),
            deferred: VecDeque::new(),
            timers: Timers::new(),
            calls: serving.calls,
            ready_tx,
            ready_rx,
            emitter: serving.emitter,
            groups: Vec::new(),
            seqs: Vec::new(),
            init,
            stop,
            kill: serving.kill,
            ending: serving.ending,
            end: None,
            handle: handle.clone(),
            spec,
        };
        (actor, handle)
    }

    /// Runs the supervisor until it ends; returns how, with its final report.
    pub(crate) async fn run(mut self) -> (End, ShutdownReport) {
        self.begin().await;
        while self.end.is_none() {
            self.step().await;
        }
        self.finish()
    }

    async fn begin(&mut self) {
        if let Some(on_start) = self.spec.on_start.clone() {
            on_start(&self.handle);
        }
        let serials = self.children.serials();
        self.start_seq(serials, SeqKind::Initial).await;
    }

    async fn step(&mut self) {
        if let Some(joined) = self.deferred.pop_front() {
            self.on_joined(joined).await;
            return;
        }
        tokio::select! {
            biased;
            () = self.kill.cancelled() => self.shutdown(true).await,
            () = self.stop.cancelled() => self.shutdown(false).await,
            // readiness before exits: a child that signals ready and then exits was ready
            Some(key) = self.ready_rx.recv() => self.on_ready(key).await,
            Some(joined) = self.tasks.join_next_with_id() => self.on_joined(joined).await,
            timer = self.timers.next() => self.on_timer(timer).await,
            Some(msg) = self.calls.recv() => self.on_msg(msg).await,
        }
    }

    pub(super) fn next_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    pub(super) fn path(&self, child: &str) -> String {
        format!("{}/{child}", self.id)
    }

    /// Publishes the final report, answers every shutdown waiter and returns.
    fn finish(mut self) -> (End, ShutdownReport) {
        let end = self.end.take().unwrap_or(End::Stopped);
        self.ending.publish(end)
    }
}
