//! The store conformance suite: one set of cases every [`Store`] must pass — the memory,
//! SQLite and PostgreSQL stores all run all of it.
//!
//! Each case is a public async function taking a *fresh, empty* store and panicking (with
//! the store's name and the failed expectation) if the store misbehaves. Every case passes
//! explicit `now` timestamps, so leases expire and schedules come due without sleeping.
//!
//! The cases call the store through the [`StoreFacade`](jobs::store::StoreFacade), the path
//! the engine uses, so a store is tested with the requests it will really receive.
//!
//! A store crate runs all of them with one macro call in its tests, giving a factory that
//! makes a fresh store per case (or `None` to skip, e.g. when no database is configured):
//!
//! ```ignore
//! // tests/conformance.rs of a store crate (with `jobs-conformance` and tokio as
//! // dev-dependencies):
//! jobs_conformance::store_conformance_tests!(|test_name: &'static str| async move {
//!     let store = MyStore::open_fresh(test_name).await.ok()?;
//!     Some(std::sync::Arc::new(store) as std::sync::Arc<dyn jobs::store::Store>)
//! });
//! ```
//!
//! A new store operation comes with its cases here, added to [`store_conformance_tests!`].
//!
//! # Semantics the suite pins down
//!
//! Where the [`Store`] docs leave room, the suite takes these readings:
//!
//! * **Claim order** is by priority (high first), `run_at`, id; the suite checks which jobs
//!   each claim returns, not their order inside one returned batch.
//! * **Checkpoints** are cleared only by `Completed`; `Retry`, `Dead`, `Snooze` and `Release`
//!   keep them.
//! * **Fencing** is by id, token, owner and state only: a lease past its expiry that no
//!   rescuer has taken yet can still be renewed or finished. A finish batch naming one lease
//!   twice finishes it once, by its first entry; the later entry reports `false`. A batch
//!   mixing outcomes, some of them stale, applies those that hold.
//! * **Ids** are never reused, not even after the jobs that had them were pruned.
//! * **Lease expiry** is strict: `job_rescue_expired(now)` takes leases with
//!   `lease_expires_at < now`; a lease expiring exactly at `now` still holds.
//! * **Rescue** requeues without recording an error or charging an attempt, keeps `claims`,
//!   and increments `rescues`. A job whose `rescues` already equals `max_rescues` goes to
//!   `dead` instead, with `rescues` incremented too, `finalized_at = now` and one error of
//!   attempt 0 at `now` whose message mentions the rescue.
//! * **Retry of a dead/cancelled job** keeps `claims` (tokens never repeat) and errors.
//! * **Metadata** is kept as inserted through every state change; a job inserted without any
//!   reads back with empty metadata.
//! * **Invalid requests** never reach a store: the cases call it through the
//!   [`StoreFacade`](jobs::store::StoreFacade), as the engine does, and the facade refuses
//!   them (its own tests cover that, once).
//! * **Left open**: claiming a scheduled job whose `run_at` has come before it is promoted;
//!   the state after a `Snooze` whose `run_at` is not after now; `run_at` after a rescue.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::Arc;

use jobs::store::Store;

mod admin;
mod claim;
mod concurrency;
mod damaged;
mod data;
mod finish;
mod insert;
mod lease;
mod listen;
mod metadata;
mod support;

pub use admin::{
    cancel_waiting_only, list_filters_and_paging, prune_old_finalized, queue_stats_counts,
    retry_dead_and_cancelled,
};
pub use claim::{
    claim_only_from_named_queue, claim_only_listed_kinds, claim_order_and_limit, claim_sets_lease,
    unknown_kinds_wait_then_expire,
};
pub use concurrency::{
    concurrent_claimers, concurrent_heartbeats_and_finishes_complete, concurrent_rescuers,
};
pub use damaged::{a_damaged_row_is_read_in_part, Damage};
pub use data::{errors_accumulate, json_depth_limit, json_round_trip};
pub use finish::{
    empty_batches_do_nothing, finish_completed, finish_dead, finish_release, finish_retry,
    finish_snooze, lease_twice_in_one_batch_finishes_once, mixed_batch_applies_what_holds,
};
pub use insert::{
    insert_many_in_one_call, insert_mixed_batch, insert_records_defaults,
    scheduled_jobs_wait_for_promotion,
};
pub use lease::{
    a_suspect_that_completes_is_cleared, checkpoint_saves_and_renews, fencing_rejects_stale_leases,
    heartbeat_extends_lease, only_quarantine_rescues_count, poison_pill_goes_dead,
    rescue_expired_only, rescue_makes_a_suspect,
};
pub use listen::{listener_wakes_on_insert, listener_wakes_whenever_jobs_become_available};
pub use metadata::{metadata_limits, metadata_round_trip, metadata_survives_retry_and_rescue};

/// Runs one case on a store from `factory`, or prints a notice and returns if the factory
/// gives `None`. [`store_conformance_tests!`](crate::store_conformance_tests) calls it once per
/// case.
pub async fn run_case<F, S, C, R>(name: &'static str, factory: F, case: C)
where
    F: FnOnce(&'static str) -> S,
    S: Future<Output = Option<Arc<dyn Store>>>,
    C: FnOnce(Arc<dyn Store>) -> R,
    R: Future<Output = ()>,
{
    match factory(name).await {
        Some(store) => case(store).await,
        None => eprintln!("conformance case `{name}` skipped: the store factory returned None"),
    }
}

/// Generates one `#[tokio::test]` (multi-threaded, 2 workers) per conformance case, each
/// calling the factory for a fresh store.
///
/// The factory is a closure `|test_name: &'static str| async move { ... }` returning
/// `Option<Arc<dyn jobs::store::Store>>`: a fresh empty store for that test, or `None` to skip it
/// (a notice is printed). The calling crate needs `tokio` (with `macros` and
/// `rt-multi-thread`) as a dev-dependency.
///
/// ```
/// // tests/conformance.rs
/// jobs_conformance::store_conformance_tests!(|_test_name: &'static str| async move {
///     let store = jobs::MemoryStore::new();
///     Some(std::sync::Arc::new(store) as std::sync::Arc<dyn jobs::store::Store>)
/// });
/// # fn main() {}
/// ```
///
/// A store that can hold a row its decoder cannot read (SQL stores: written by hand or by an
/// older version) also passes `damage = |test_name: &'static str, id: jobs::JobId| async move
/// { ... }`, which damages job `id`'s stored args in that test's store behind its back; the
/// suite then also runs [`a_damaged_row_is_read_in_part`].
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr, damage = $damage:expr $(,)?) => {
        $crate::store_conformance_tests!($factory);

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_damaged_row_is_read_in_part() {
            const NAME: &str = "a_damaged_row_is_read_in_part";
            let damage: $crate::Damage = ::std::boxed::Box::new(move |id| {
                ::std::boxed::Box::pin(($damage)(NAME, id))
            });
            $crate::run_case(NAME, $factory, |store| {
                $crate::a_damaged_row_is_read_in_part(store, damage)
            })
            .await;
        }
    };
    ($factory:expr $(,)?) => {
        $crate::__store_conformance_cases!(
            $factory;
            insert_records_defaults,
            insert_many_in_one_call,
            insert_mixed_batch,
            scheduled_jobs_wait_for_promotion,
            claim_order_and_limit,
            claim_only_from_named_queue,
            claim_sets_lease,
            claim_only_listed_kinds,
            unknown_kinds_wait_then_expire,
            finish_completed,
            finish_retry,
            finish_dead,
            finish_snooze,
            finish_release,
            lease_twice_in_one_batch_finishes_once,
            mixed_batch_applies_what_holds,
            empty_batches_do_nothing,
            fencing_rejects_stale_leases,
            heartbeat_extends_lease,
            checkpoint_saves_and_renews,
            rescue_expired_only,
            poison_pill_goes_dead,
            rescue_makes_a_suspect,
            only_quarantine_rescues_count,
            a_suspect_that_completes_is_cleared,
            concurrent_claimers,
            concurrent_rescuers,
            concurrent_heartbeats_and_finishes_complete,
            retry_dead_and_cancelled,
            cancel_waiting_only,
            list_filters_and_paging,
            queue_stats_counts,
            prune_old_finalized,
            errors_accumulate,
            json_round_trip,
            json_depth_limit,
            metadata_round_trip,
            metadata_limits,
            metadata_survives_retry_and_rescue,
            listener_wakes_on_insert,
            listener_wakes_whenever_jobs_become_available,
        );
    };
}

/// Expands [`store_conformance_tests!`] into one test per case name.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::run_case(
                    ::core::stringify!($case),
                    $factory,
                    $crate::$case,
                )
                .await;
            }
        )+
    };
}
