//! Erlang/OTP-grade supervision trees on tokio.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

mod backoff;
mod builder;
mod child;
mod context;
mod dynamic;
mod error;
mod events;
mod handle;
mod intensity;
mod runtime;
mod signals;
mod spec;
mod timers;

pub use backoff::{Backoff, BackoffError, RestartPolicy};
pub use builder::{AutoShutdown, OnStart, Strategy, Supervisor, SupervisorBuilder, SupervisorSpec};
pub use context::ChildContext;
pub use dynamic::{
    DynamicHandle, DynamicSupervisor, DynamicSupervisorBuilder, DynamicSupervisorSpec,
    OnDynamicStart,
};
pub use error::{ChildError, ExitReason, ShutdownReport, SpecError, StartError, SupervisorError};
pub use events::{ChildId, Event};
pub use handle::{ChildCounts, ChildInfo, ChildState, SupervisorHandle};
pub use intensity::Intensity;
pub use signals::{run_until, run_until_signal, Signal, SignalOutcome, TreeHandle};
pub use spec::{ChildKind, ChildSpec, Restart, Shutdown};
