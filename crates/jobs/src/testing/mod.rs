//! Helpers for testing your workers and the code that enqueues jobs, as `Oban.Testing`,
//! `rivertest` and `Sidekiq::Testing` offer.
//!
//! | you want to | use |
//! |---|---|
//! | call `perform` yourself with a context (attempt, checkpoint, shutdown) | [`TestContext::build`] |
//! | know what the engine would record for a run (completed, retry at, dead, snoozed, released with checkpoint) | [`run_job`], [`TestContext::run`] |
//! | run jobs as they are enqueued | [`Harness::inline`] |
//! | enqueue, look, then run everything due (and what that enqueues) | [`Harness::manual`] and [`Harness::drain`] |
//! | check what was enqueued | [`assert_enqueued`], [`refute_enqueued`], [`enqueued`] |
//! | wait for a job a real pool runs, without a polling loop | [`Client::wait_for`](crate::Client::wait_for) |
//! | make the store fail (a lost database, a lost reply) | [`FlakyStore`] |
//!
//! Runs go through the engine's own code: the args are stored as JSON and decoded again, the
//! worker's timeout applies, panics are caught, and the result is mapped to an outcome by the
//! same function the pool's executor uses. Everything runs on an in-memory store and a clock
//! that follows tokio's time, so tests on paused time (`#[tokio::test(start_paused = true)]`)
//! see backoffs and schedules move with `tokio::time::advance`.
//!
//! ```
//! use jobs::testing::{run_job, Outcome, TestContext};
//! use jobs::{JobArgs, JobContext, JobError, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Import { rows: u64 }
//! impl JobArgs for Import { const KIND: &'static str = "import"; }
//!
//! struct Importer;
//! impl Worker for Importer {
//!     type Args = Import;
//!     async fn perform(&self, ctx: JobContext, args: Import) -> Result<(), JobError> {
//!         let mut row: u64 = ctx.checkpoint_state()?.unwrap_or(0);
//!         while row < args.rows {
//!             row += 1;
//!             ctx.checkpoint(&row).await?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert_eq!(run_job(&Importer, Import { rows: 3 }).await, Outcome::Completed);
//!
//! // A deploy in the middle: the run stops at its next safe point, keeps its progress.
//! let outcome = TestContext::new().checkpoint(&1u64).shutting_down()
//!     .run(&Importer, Import { rows: 3 }).await;
//! assert_eq!(outcome, Outcome::Released { checkpoint: Some(2.into()) });
//! # }
//! ```

mod assert;
mod context;
mod flaky;
mod harness;
mod run;

#[doc(no_inline)]
pub use crate::outcome::Outcome;
pub use assert::{assert_enqueued, enqueued, refute_enqueued};
pub use context::{run_job, TestContext, TestRun};
pub use flaky::FlakyStore;
pub use harness::{Harness, JobRun};
