//! The whole tree at a glance: every supervisor and child, recursively, as data and as an
//! indented text rendering (what Erlang's observer shows).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::{
    ChildId, ChildKind, ChildState, DynamicHandle, ExitReason, Restart, Strategy, SupervisorError,
    SupervisorHandle,
};

/// A snapshot of one supervisor and, recursively, its children. From
/// [`SupervisorHandle::tree`] or [`DynamicHandle::tree`]; `Display` renders it as an
/// indented tree.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SupervisorTree {
    /// The supervisor's id.
    pub id: Arc<str>,
    /// Static (with its strategy) or dynamic.
    pub kind: TreeKind,
    /// Its children: in start order for a static supervisor, by instance for a dynamic one.
    pub children: Vec<ChildNode>,
}

/// What kind of supervisor a [`SupervisorTree`] node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeKind {
    /// A static supervisor with this strategy.
    Static(Strategy),
    /// A dynamic supervisor (also behind a task supervisor or a partition).
    Dynamic,
}

/// One child in a [`SupervisorTree`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ChildNode {
    /// The child's id.
    pub id: Arc<str>,
    /// The instance id, under a dynamic supervisor.
    pub instance: Option<ChildId>,
    /// Its state.
    pub state: ChildState,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart type.
    pub restart: Restart,
    /// How many times it has been restarted.
    pub restarts: u32,
    /// Why its last incarnation exited, if one has.
    pub last_exit: Option<ExitReason>,
    /// How long the current incarnation has run (`None` when none runs).
    pub uptime: Option<Duration>,
    /// Time left before a pending restart (`Duration::MAX`: a delay too long to fire).
    pub restart_in: Option<Duration>,
    /// The subtree, for a running supervisor child that answered.
    pub tree: Option<Box<SupervisorTree>>,
}

/// A nested supervisor's handle, published by the supervisor when it starts inside a
/// child's task so that its parent's tree can reach it.
#[derive(Clone, Debug)]
pub(crate) enum Nested {
    Static(SupervisorHandle),
    Dynamic(DynamicHandle),
}

/// Where a supervisor child puts its handle; one per spawn of a supervisor child.
pub(crate) type NestedSlot = Arc<OnceLock<Nested>>;

impl Nested {
    fn tree(&self) -> BoxFuture<'_, Result<SupervisorTree, SupervisorError>> {
        match self {
            Self::Static(h) => Box::pin(h.tree()),
            Self::Dynamic(h) => Box::pin(h.tree()),
        }
    }
}

/// A child as its supervisor's task sees it: the node, and the handle to descend into.
pub(crate) type RawNode = (ChildNode, Option<Nested>);

/// Descends into the nested supervisors (from the caller's task: no supervisor waits for
/// another). A nested supervisor that has ended meanwhile is shown without children.
pub(crate) async fn assemble(id: Arc<str>, kind: TreeKind, raw: Vec<RawNode>) -> SupervisorTree {
    let mut children = Vec::with_capacity(raw.len());
    for (mut node, nested) in raw {
        if let Some(nested) = nested {
            node.tree = nested.tree().await.ok().map(Box::new);
        }
        children.push(node);
    }
    SupervisorTree { id, kind, children }
}

impl fmt::Display for SupervisorTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.id, self.kind)?;
        self.write_children(f, "")
    }
}

impl SupervisorTree {
    fn write_children(&self, f: &mut fmt::Formatter<'_>, prefix: &str) -> fmt::Result {
        for (i, child) in self.children.iter().enumerate() {
            let last = i + 1 == self.children.len();
            let (branch, indent) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            writeln!(f, "{prefix}{branch}{child}")?;
            if let Some(tree) = &child.tree {
                tree.write_children(f, &format!("{prefix}{indent}"))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for TreeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Static(Strategy::OneForOne) => "one_for_one",
            Self::Static(Strategy::OneForAll) => "one_for_all",
            Self::Static(Strategy::RestForOne) => "rest_for_one",
            Self::Dynamic => "dynamic",
        })
    }
}

/// A duration to the millisecond, as `1m 3s 250ms`.
fn short(d: Duration) -> String {
    if d == Duration::MAX {
        return "never".to_owned();
    }
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

impl fmt::Display for ChildNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ChildState::Running => "running",
            ChildState::Starting => "starting",
            ChildState::Restarting => "restarting",
            ChildState::Stopping => "stopping",
            ChildState::Terminated => "terminated",
        };
        write!(f, "{}", self.id)?;
        if let Some(instance) = self.instance {
            write!(f, "{instance}")?;
        }
        if self.kind == ChildKind::Supervisor {
            match &self.tree {
                Some(t) => write!(f, " [{}]", t.kind)?,
                None => f.write_str(" [supervisor]")?,
            }
        }
        write!(f, "  {state}")?;
        if let Some(up) = self.uptime {
            write!(f, "  up {}", short(up))?;
        }
        if let Some(left) = self.restart_in {
            write!(f, "  restart in {}", short(left))?;
        }
        if self.restarts > 0 {
            write!(f, "  restarts {}", self.restarts)?;
        }
        if let Some(reason) = &self.last_exit {
            write!(f, "  last exit: {reason}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_to_the_millisecond_and_never_for_no_limit() {
        assert_eq!(short(Duration::from_micros(1_500_700)), "1s 500ms");
        assert_eq!(short(Duration::MAX), "never");
    }

    #[test]
    fn a_child_line_shows_only_what_applies() {
        let node = ChildNode {
            id: Arc::from("conn"),
            instance: None,
            state: ChildState::Restarting,
            kind: ChildKind::Worker,
            restart: Restart::Permanent,
            restarts: 2,
            last_exit: Some(ExitReason::Panic("boom".into())),
            uptime: None,
            restart_in: Some(Duration::from_millis(250)),
            tree: None,
        };
        assert_eq!(
            node.to_string(),
            "conn  restarting  restart in 250ms  restarts 2  last exit: panic: boom"
        );
    }
}
