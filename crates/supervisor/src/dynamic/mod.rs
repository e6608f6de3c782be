//! The dynamic supervisor (OTP `simple_one_for_one`, Elixir `DynamicSupervisor`): its
//! declaration, its handle, the state the two share, and its task.

mod builder;
mod handle;
mod runtime;
mod shared;

pub use builder::{
    DynamicSupervisor, DynamicSupervisorBuilder, DynamicSupervisorSpec, OnDynamicStart,
};
pub use handle::DynamicHandle;
