//! Shared helpers: a probe that records what children do and makes them exit on demand.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor::{ChildContext, ChildSpec, ChildState, Event, Supervisor, SupervisorHandle};
use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;

/// How a probe child should exit when triggered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Crash,
    Normal,
    Panic,
}

#[derive(Default)]
struct Inner {
    log: Vec<String>,
    times: Vec<(String, Duration)>,
    triggers: HashMap<String, (Arc<Notify>, Option<Action>)>,
}

/// Records `start:<id>`, `stop:<id>` (token observed), `crash:<id>`, `exit:<id>`, `panic:<id>`.
#[derive(Clone)]
pub struct Probe {
    inner: Arc<Mutex<Inner>>,
    t0: Instant,
}

impl Probe {
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            t0: Instant::now(),
        }
    }

    pub fn push(&self, entry: String) {
        let mut g = self.inner.lock().unwrap();
        g.times.push((entry.clone(), self.t0.elapsed()));
        g.log.push(entry);
    }

    /// The log so far, then cleared.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap().log)
    }

    /// Elapsed times (since the probe was made) of every entry equal to `entry`.
    pub fn times(&self, entry: &str) -> Vec<Duration> {
        let g = self.inner.lock().unwrap();
        g.times
            .iter()
            .filter(|(e, _)| e == entry)
            .map(|(_, t)| *t)
            .collect()
    }

    pub fn count(&self, entry: &str) -> usize {
        self.times(entry).len()
    }

    fn notify(&self, id: &str) -> Arc<Notify> {
        let mut g = self.inner.lock().unwrap();
        g.triggers
            .entry(id.to_owned())
            .or_insert_with(|| (Arc::new(Notify::new()), None))
            .0
            .clone()
    }

    fn action(&self, id: &str) -> Action {
        let g = self.inner.lock().unwrap();
        g.triggers
            .get(id)
            .and_then(|t| t.1)
            .unwrap_or(Action::Crash)
    }

    /// Makes the running child `id` exit with `action`.
    pub fn trigger(&self, id: &str, action: Action) {
        let n = self.notify(id);
        self.inner.lock().unwrap().triggers.get_mut(id).unwrap().1 = Some(action);
        n.notify_one();
    }

    /// A child that runs until stopped or triggered.
    pub fn worker(&self, id: &str) -> ChildSpec {
        let p = self.clone();
        ChildSpec::new(id, move |ctx: ChildContext| {
            let p = p.clone();
            async move { p.body(ctx).await }
        })
    }

    pub async fn body(&self, ctx: ChildContext) -> Result<(), supervisor::ChildError> {
        let id = ctx.id().to_owned();
        self.push(format!("start:{id}"));
        let n = self.notify(&id);
        tokio::select! {
            () = ctx.cancelled() => {
                self.push(format!("stop:{id}"));
                Ok(())
            }
            () = n.notified() => match self.action(&id) {
                Action::Crash => {
                    self.push(format!("crash:{id}"));
                    Err(format!("{id} crashed").into())
                }
                Action::Normal => {
                    self.push(format!("exit:{id}"));
                    Ok(())
                }
                Action::Panic => {
                    self.push(format!("panic:{id}"));
                    panic!("{id} panicked on purpose")
                }
            },
        }
    }
}

/// Lets every task run (auto-advancing paused time by 1 ms).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Drains the events received so far, as display strings.
pub fn drain(rx: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// `n` seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A started supervisor `root` with the one child `child` (default settings).
pub async fn start_one(child: ChildSpec) -> SupervisorHandle {
    Supervisor::builder("root")
        .child(child)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

/// The states of `h`'s children, in order.
pub async fn states(h: &SupervisorHandle) -> Vec<ChildState> {
    h.which_children()
        .await
        .unwrap()
        .iter()
        .map(|c| c.state)
        .collect()
}

/// The ids of `h`'s children, in order.
pub async fn ids(h: &SupervisorHandle) -> Vec<String> {
    h.which_children()
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.to_string())
        .collect()
}
