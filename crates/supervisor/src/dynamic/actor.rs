//! The dynamic supervisor's task: children keyed by instance id, stopped concurrently.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::shared::Shared;
use super::{DynInner, DynMsg, DynamicHandle, DynamicSupervisorSpec};
use crate::child::{self, Exit, Outcome, Run, RunKey};
use crate::context::ReadyLink;
use crate::end::End;
use crate::events::Emitter;
use crate::handle::{ChildCounts, ChildInfo, ChildState, Core, ExitSlot, Reply};
use crate::intensity::RestartLog;
use crate::timers::{TimerId, Timers};
use crate::{
    ChildContext, ChildError, ChildId, ChildKind, ChildSpec, Event, ExitReason, Restart, Shutdown,
    ShutdownReport, StartError, SupervisorError,
};

type Answer = Result<(), SupervisorError>;

/// How many queued calls one loop turn serves before it looks at exits and timers again.
const MSG_BATCH: usize = 64;

pub(super) async fn start_top_level(
    spec: DynamicSupervisorSpec,
) -> Result<DynamicHandle, StartError> {
    let (actor, handle) = DynActor::new(spec, CancellationToken::new());
    tokio::spawn(actor.run(None));
    Ok(handle)
}

pub(super) async fn run_nested(
    spec: DynamicSupervisorSpec,
    ctx: ChildContext,
) -> Result<(), ChildError> {
    let (actor, _handle) = DynActor::new(spec, ctx.token().clone());
    let (end, report) = actor.run(Some(ctx)).await;
    end.into_child_result(report)
}

/// Hashes the supervisor's own sequential `u64` ids: one multiply instead of SipHash
/// (the ids are not attacker-controlled).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

struct DynChild {
    spec: ChildSpec,
    state: DynState,
    restarts: u32,
    consecutive: u32,
}

enum DynState {
    Running(Run),
    Stopping(Run, Box<Stop>),
    Restarting(Option<TimerId>),
    /// Transient placeholder while the state is being replaced.
    Idle,
}

#[derive(Default)]
struct Stop {
    timer: Option<TimerId>,
    replies: Vec<Reply<Answer>>,
    failed_start: bool,
    aborted: bool,
}

#[derive(Debug)]
enum DynTimer {
    Restart(u64),
    StopDeadline(u64),
    ShutdownDeadline(Duration),
    AbortGrace(u64),
    StartTimeout(u64, u32),
}

pub(super) struct DynActor {
    spec: Arc<DynInner>,
    id: Arc<str>,
    children: IdMap<DynChild>,
    early: IdMap<Outcome>,
    detached: IdSet,
    shared: Arc<Shared>,
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits_rx: mpsc::UnboundedReceiver<Exit>,
    starting: IdMap<Reply<Result<ChildId, SupervisorError>>>,
    timers: Timers<DynTimer>,
    log: RestartLog,
    rx: mpsc::UnboundedReceiver<DynMsg>,
    ready_tx: mpsc::UnboundedSender<RunKey>,
    ready_rx: mpsc::UnboundedReceiver<RunKey>,
    emitter: Emitter,
    stop: CancellationToken,
    kill: CancellationToken,
    shutting_down: bool,
    killed: bool,
    escalation: Option<SupervisorError>,
    shutdown_deadlines: Vec<Duration>,
    report: ShutdownReport,
    waiters: Vec<Reply<ShutdownReport>>,
    exit_tx: watch::Sender<ExitSlot>,
    handle: DynamicHandle,
}

impl DynActor {
    fn new(spec: DynamicSupervisorSpec, stop: CancellationToken) -> (Self, DynamicHandle) {
        let spec = spec.inner;
        let id = spec.id.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        let emitter = Emitter::new(id.clone(), spec.event_capacity);
        let kill = CancellationToken::new();
        let core = Core::new(id.clone(), tx, exit_rx, emitter.sender(), kill.clone());
        let shared = Arc::new(Shared::new(spec.max_children));
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        let handle = DynamicHandle::new(core, shared.clone(), exits_tx.clone());
        let actor = Self {
            log: RestartLog::new(spec.intensity),
            report: ShutdownReport::new(id.clone()),
            spec,
            id,
            children: IdMap::default(),
            early: IdMap::default(),
            detached: IdSet::default(),
            shared,
            exits_tx,
            exits_rx,
            starting: IdMap::default(),
            timers: Timers::new(),
            rx,
            ready_tx,
            ready_rx,
            emitter,
            stop,
            kill,
            shutting_down: false,
            killed: false,
            escalation: None,
            shutdown_deadlines: Vec::new(),
            waiters: Vec::new(),
            exit_tx,
            handle: handle.clone(),
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
            self.rx.close();
            while let Ok(msg) = self.rx.try_recv() {
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
            Some(msg) = self.rx.recv() => {
                self.on_msg(msg);
                for _ in 0..MSG_BATCH {
                    match self.rx.try_recv() {
                        Ok(msg) => self.on_msg(msg),
                        Err(_) => break,
                    }
                }
            }
        }
    }

    fn finish(mut self) -> (End, ShutdownReport) {
        let clean = self.report.is_clean();
        self.emitter
            .emit(|supervisor| Event::ShutdownFinished { supervisor, clean });
        let end = match self.escalation.take() {
            Some(e) => End::Escalated(e),
            None if self.killed => End::Killed,
            None => End::Stopped,
        };
        self.report.exit = end.exit(&self.id);
        let report = self.report.clone();
        self.exit_tx.send_replace(Some(report.clone()));
        for w in self.waiters.drain(..) {
            let _ = w.send(report.clone());
        }
        (end, report)
    }

    fn path(&self, spec_id: &str, id: u64) -> String {
        format!("{}/{spec_id}#{id}", self.id)
    }

    fn sup(&self) -> String {
        self.id.to_string()
    }

    // ---- commands -------------------------------------------------------------------

    fn on_msg(&mut self, msg: DynMsg) {
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
            DynMsg::Shutdown(reply) => {
                self.waiters.push(reply);
                self.shutdown(false);
            }
        }
    }

    fn start_child(&mut self, spec: ChildSpec, reply: Reply<Result<ChildId, SupervisorError>>) {
        if let Err(e) = super::check_spec(&self.id, &spec) {
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
        let child = DynChild {
            spec,
            state: DynState::Idle,
            restarts: 0,
            consecutive: 0,
        };
        self.children.insert(id, child);
        if self.spawn(id, false) {
            let _ = reply.send(Ok(self.shared.child_id(id)));
        } else {
            self.starting.insert(id, reply);
        }
    }

    /// Takes in a child a handle spawned.
    fn adopt(&mut self, id: u64, spec: ChildSpec, run: Run) {
        let child = DynChild {
            spec,
            state: DynState::Running(run),
            restarts: 0,
            consecutive: 0,
        };
        self.children.insert(id, child);
        self.emit_start(id, false);
        if let Some(outcome) = self.early.remove(&id) {
            self.on_exit_msg(Exit { id, outcome });
        } else if self.shutting_down {
            self.begin_stop(id, self.killed, None, false);
        }
    }

    /// Removes a child for good.
    fn remove_child(&mut self, id: u64) {
        if self.children.remove(&id).is_some() {
            self.shared.release();
        }
    }

    /// Spawns child `id`; returns whether it is ready at once.
    fn spawn(&mut self, id: u64, restart: bool) -> bool {
        let Some(child) = self.children.get_mut(&id) else {
            return true;
        };
        // a temporary child (the only kind whose factory goes) is never started twice
        let Some(factory) = child.spec.factory() else {
            return true;
        };
        if restart {
            child.restarts = child.restarts.saturating_add(1);
        }
        let inner = child.spec.inner();
        let key = RunKey {
            child: id,
            spawn: u64::from(child.restarts),
        };
        let ready = inner.wait_ready.then(|| ReadyLink {
            tx: self.ready_tx.clone(),
            key,
        });
        let token = CancellationToken::new();
        let ctx = ChildContext::new(
            inner.id.clone(),
            Some(self.shared.child_id(id)),
            child.restarts,
            token,
            ready,
        );
        let run = child::spawn_reporting(&child.spec, factory, ctx, key, self.exits_tx.clone());
        let is_ready = run.ready;
        if let Some(t) = inner.start_timeout.filter(|_| !is_ready) {
            let timeout = DynTimer::StartTimeout(id, child.restarts);
            self.timers.insert(t, timeout);
        }
        child.spec.started();
        child.state = DynState::Running(run);
        self.emit_start(id, restart);
        is_ready
    }

    fn emit_start(&self, id: u64, restart: bool) {
        let Some(child) = self.children.get(&id) else {
            return;
        };
        let cid = child.spec.inner().id.clone();
        let restarts = child.restarts;
        let instance = Some(self.shared.child_id(id));
        self.emitter.emit(|supervisor| match restart {
            false => Event::Started {
                supervisor,
                child: cid,
                instance,
            },
            true => Event::Restarted {
                supervisor,
                child: cid,
                instance,
                restarts,
            },
        });
    }

    fn terminate_child(&mut self, child_id: ChildId, reply: Reply<Answer>) {
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
                self.emit_cancelled(id);
                self.remove_child(id);
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn emit_cancelled(&self, id: u64) {
        if let Some(child) = self.children.get(&id) {
            let cid = child.spec.inner().id.clone();
            self.emitter.emit(|supervisor| Event::RestartCancelled {
                supervisor,
                child: cid,
                instance: Some(self.shared.child_id(id)),
            });
        }
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        let mut list: Vec<ChildInfo> = self
            .children
            .iter()
            .map(|(&id, c)| ChildInfo {
                id: c.spec.inner().id.clone(),
                instance: Some(self.shared.child_id(id)),
                state: match &c.state {
                    DynState::Running(r) if r.ready => ChildState::Running,
                    DynState::Running(_) => ChildState::Starting,
                    DynState::Stopping(..) => ChildState::Stopping,
                    DynState::Restarting(_) | DynState::Idle => ChildState::Restarting,
                },
                kind: c.spec.child_kind(),
                restart: c.spec.restart_type(),
                restarts: c.restarts,
            })
            .collect();
        list.sort_by_key(|c| c.instance);
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

    // ---- readiness and exits --------------------------------------------------------

    fn on_ready(&mut self, key: RunKey) {
        match self.children.get_mut(&key.child) {
            Some(DynChild {
                state: DynState::Running(run),
                ..
            }) if run.key == key => run.ready = true,
            _ => return,
        }
        if let Some(reply) = self.starting.remove(&key.child) {
            let _ = reply.send(Ok(self.shared.child_id(key.child)));
        }
    }

    fn on_exit_msg(&mut self, exit: Exit) {
        let Exit { id, outcome } = exit;
        if !self.detached.is_empty() && self.detached.remove(&id) {
            return; // a child given up on earlier finally ended
        }
        let Some(child) = self.children.get_mut(&id) else {
            // spawned by a handle, not yet adopted
            self.early.insert(id, outcome);
            return;
        };
        if matches!(&child.state, DynState::Running(r) if !r.ready) {
            // a readiness signal sent before the exit must count first
            while let Ok(ready) = self.ready_rx.try_recv() {
                self.on_ready(ready);
            }
        }
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        let state = std::mem::replace(&mut child.state, DynState::Idle);
        match state {
            DynState::Stopping(_, stop) => self.stopped(id, outcome, *stop),
            DynState::Running(run) => {
                let reason = outcome.reason(false);
                self.emit_exit(id, &reason);
                if run.ready {
                    self.on_exit(id, reason);
                } else {
                    self.start_failed(id, StartFailure::Exit(reason));
                }
            }
            DynState::Restarting(_) | DynState::Idle => {}
        }
    }

    fn emit_exit(&self, id: u64, reason: &ExitReason) {
        if let Some(child) = self.children.get(&id) {
            let cid = child.spec.inner().id.clone();
            let reason = reason.clone();
            self.emitter.emit(|supervisor| Event::Exited {
                supervisor,
                child: cid,
                instance: Some(self.shared.child_id(id)),
                reason,
            });
        }
    }

    fn on_exit(&mut self, id: u64, reason: ExitReason) {
        let Some(child) = self.children.get(&id) else {
            return;
        };
        let restart = match child.spec.restart_type() {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        };
        if !restart || self.shutting_down {
            self.remove_child(id);
            return;
        }
        self.restart(id, reason);
    }

    /// Counts a restart toward the intensity and restarts `id` now or after its delay.
    fn restart(&mut self, id: u64, reason: ExitReason) {
        if !self.log.record(Instant::now()) {
            self.intensity_exceeded(id, reason);
            return;
        }
        let delay = self.next_delay(id);
        if let Some(child) = self.children.get(&id) {
            let cid = child.spec.inner().id.clone();
            self.emitter.emit(|supervisor| Event::RestartScheduled {
                supervisor,
                child: cid,
                instance: Some(self.shared.child_id(id)),
                delay,
            });
        }
        if delay.is_zero() {
            self.spawn(id, true);
            return;
        }
        let timer = self.timers.insert(delay, DynTimer::Restart(id));
        if let Some(child) = self.children.get_mut(&id) {
            child.state = DynState::Restarting(timer);
        }
    }

    fn next_delay(&mut self, id: u64) -> Duration {
        let default = &self.spec.restart_policy;
        let Some(child) = self.children.get_mut(&id) else {
            return Duration::ZERO;
        };
        let policy = child
            .spec
            .inner()
            .restart_policy
            .as_ref()
            .unwrap_or(default);
        if let DynState::Running(run) | DynState::Stopping(run, _) = &child.state {
            if run.started_at.elapsed() >= policy.reset_after() {
                child.consecutive = 0;
            }
        }
        let delay = policy.delay(child.consecutive);
        child.consecutive = child.consecutive.saturating_add(1);
        delay
    }

    fn start_failed(&mut self, id: u64, failure: StartFailure) {
        let Some(child) = self.children.get(&id) else {
            return;
        };
        let cid = child.spec.inner().id.clone();
        let err = failure.into_error(self.sup(), cid.to_string());
        let reason = err.to_string();
        let c = cid.clone();
        self.emitter.emit(|supervisor| Event::StartFailed {
            supervisor,
            child: c,
            instance: Some(self.shared.child_id(id)),
            reason,
        });
        if let Some(reply) = self.starting.remove(&id) {
            self.remove_child(id);
            let _ = reply.send(Err(err.into()));
            return;
        }
        if self.shutting_down {
            self.remove_child(id);
            return;
        }
        self.restart(id, ExitReason::Error(Arc::new(err)));
    }

    // ---- stopping -------------------------------------------------------------------

    /// Asks child `id` to stop (or aborts it when `force`); the outcome arrives as its exit
    /// or as a timer.
    fn begin_stop(
        &mut self,
        id: u64,
        force: bool,
        reply: Option<Reply<Answer>>,
        failed_start: bool,
    ) {
        let grace = self.spec.abort_grace;
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        let state = std::mem::replace(&mut child.state, DynState::Idle);
        let DynState::Running(run) = state else {
            child.state = state;
            return;
        };
        let policy = if force {
            Shutdown::BrutalKill
        } else {
            child.spec.shutdown_policy()
        };
        let timer = match policy {
            Shutdown::BrutalKill => {
                run.abort.abort();
                self.timers.insert(grace, DynTimer::AbortGrace(id))
            }
            Shutdown::Timeout(d) if self.shutting_down => {
                // one timer per distinct bound for the whole shutdown, not one per child
                run.token.cancel();
                if !self.shutdown_deadlines.contains(&d) {
                    self.shutdown_deadlines.push(d);
                    self.timers.insert(d, DynTimer::ShutdownDeadline(d));
                }
                None
            }
            Shutdown::Timeout(d) => {
                run.token.cancel();
                self.timers.insert(d, DynTimer::StopDeadline(id))
            }
            Shutdown::Infinity => {
                run.token.cancel();
                None
            }
        };
        let stop = Stop {
            timer,
            replies: reply.into_iter().collect(),
            failed_start,
            aborted: policy == Shutdown::BrutalKill,
        };
        child.state = DynState::Stopping(run, Box::new(stop));
    }

    /// Turns a lingering stop into an abort (its deadline passed, or a kill).
    fn abort_stopping(&mut self, id: u64, overran: bool) {
        let grace = self.spec.abort_grace;
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        let DynState::Stopping(run, stop) = &mut child.state else {
            return;
        };
        if stop.aborted {
            return;
        }
        stop.aborted = true;
        self.timers.remove(stop.timer.take());
        run.abort.abort();
        stop.timer = self.timers.insert(grace, DynTimer::AbortGrace(id));
        if overran {
            let path = format!("{}/{}#{id}", self.id, child.spec.id());
            self.report.aborted.push(path);
        }
    }

    fn stopped(&mut self, id: u64, outcome: Outcome, stop: Stop) {
        self.timers.remove(stop.timer);
        if let Some((children, aborted)) = outcome.nested_not_stopped() {
            let prefix = self.children.get(&id).map(|c| self.path(c.spec.id(), id));
            let prefix = prefix.unwrap_or_default();
            let children: Vec<String> = children.iter().map(|c| format!("{prefix}/{c}")).collect();
            let aborted: Vec<String> = aborted.iter().map(|c| format!("{prefix}/{c}")).collect();
            self.report.not_stopped.extend(children);
            self.report.aborted.extend(aborted);
        }
        let reason = outcome.reason(true);
        self.emit_exit(id, &reason);
        self.finish_stop(id, stop, Ok(()));
    }

    fn finish_stop(&mut self, id: u64, stop: Stop, answer: Answer) {
        if stop.failed_start {
            let timeout = self
                .children
                .get(&id)
                .and_then(|c| c.spec.inner().start_timeout)
                .unwrap_or_default();
            self.start_failed(id, StartFailure::Timeout(timeout));
        } else {
            self.remove_child(id);
            if let Some(reply) = self.starting.remove(&id) {
                let _ = reply.send(Err(SupervisorError::ShuttingDown {
                    supervisor: self.sup(),
                }));
            }
        }
        for reply in stop.replies {
            let _ = reply.send(answer.clone());
        }
    }

    fn on_timer(&mut self, timer: DynTimer) {
        match timer {
            DynTimer::Restart(id) => {
                if matches!(self.children.get(&id), Some(c) if matches!(c.state, DynState::Restarting(_)))
                {
                    self.spawn(id, true);
                }
            }
            DynTimer::StopDeadline(id) => self.abort_stopping(id, true),
            DynTimer::ShutdownDeadline(d) => {
                let overran: Vec<u64> = self
                    .children
                    .iter()
                    .filter(|(_, c)| c.spec.shutdown_policy() == Shutdown::Timeout(d))
                    .map(|(&id, _)| id)
                    .collect();
                for id in overran {
                    self.abort_stopping(id, true);
                }
            }
            DynTimer::AbortGrace(id) => self.not_stopped(id),
            DynTimer::StartTimeout(id, restarts) => {
                let waiting = matches!(
                    self.children.get(&id),
                    Some(c) if c.restarts == restarts && matches!(&c.state, DynState::Running(r) if !r.ready)
                );
                if waiting {
                    // as in OTP, a child that overran its start timeout is killed outright
                    self.begin_stop(id, true, None, true);
                }
            }
        }
    }

    /// Abort could not reach child `id` within the grace: detach it and report it.
    fn not_stopped(&mut self, id: u64) {
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        let state = std::mem::replace(&mut child.state, DynState::Idle);
        let DynState::Stopping(run, mut stop) = state else {
            child.state = state;
            return;
        };
        stop.timer = None;
        let spec_id = child.spec.inner().id.clone();
        drop(run);
        self.detached.insert(id);
        let path = self.path(&spec_id, id);
        tracing::error!(target: "supervisor", supervisor = %self.id, child = %path, "child did not stop within its shutdown bound; detached");
        self.report.not_stopped.push(path);
        self.emit_exit(id, &ExitReason::Killed);
        let answer = Err(SupervisorError::ChildNotStopped {
            supervisor: self.sup(),
            child: self.shared.child_id(id).to_string(),
        });
        self.finish_stop(id, *stop, answer);
    }

    fn intensity_exceeded(&mut self, id: u64, reason: ExitReason) {
        let limit = self.log.limit();
        let cid: Arc<str> = self
            .children
            .get(&id)
            .map(|c| c.spec.inner().id.clone())
            .unwrap_or_else(|| Arc::from(""));
        let c = cid.clone();
        self.emitter.emit(|supervisor| Event::IntensityExceeded {
            supervisor,
            child: c,
            max_restarts: limit.max_restarts(),
            period: limit.period(),
        });
        self.remove_child(id);
        self.escalation = Some(SupervisorError::IntensityExceeded {
            supervisor: self.sup(),
            child: format!("{cid}{}", self.shared.child_id(id)),
            reason,
            max_restarts: limit.max_restarts(),
            period: limit.period(),
        });
        self.shutdown(false);
    }

    /// Stops every child concurrently (aborts them when `force`); the loop ends once the
    /// last one is gone.
    fn shutdown(&mut self, force: bool) {
        if force {
            self.killed = true;
        }
        if !self.shutting_down {
            self.shutting_down = true;
            self.shared.close();
            self.emitter
                .emit(|supervisor| Event::ShutdownStarted { supervisor });
        }
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            let Some(child) = self.children.get(&id) else {
                continue;
            };
            match &child.state {
                DynState::Running(_) => self.begin_stop(id, force, None, false),
                DynState::Stopping(..) if force => self.abort_stopping(id, true),
                DynState::Stopping(..) => {}
                DynState::Restarting(t) => {
                    let t = *t;
                    self.timers.remove(t);
                    self.remove_child(id);
                }
                DynState::Idle => {
                    self.remove_child(id);
                }
            }
        }
    }
}

enum StartFailure {
    Exit(ExitReason),
    Timeout(Duration),
}

impl StartFailure {
    fn into_error(self, supervisor: String, child: String) -> StartError {
        match self {
            Self::Exit(reason) => StartError::ChildFailed {
                supervisor,
                child,
                reason,
            },
            Self::Timeout(timeout) => StartError::ChildStartTimeout {
                supervisor,
                child,
                timeout,
            },
        }
    }
}
