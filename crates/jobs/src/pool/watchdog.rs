//! Noticing a job that blocks its thread: every poll of a job's future is counted, and the
//! watchdog (beside the heartbeat, on the lease keeper's thread where there is one) warns,
//! with the job's id, about a run that has stayed inside one poll for about
//! [`BLOCKED_AFTER`]. Counting costs two relaxed atomic writes per poll.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::pool::books::Books;

/// How often the watchdog looks.
const TICK: Duration = Duration::from_millis(250);
/// Ticks inside one poll after which a run is reported.
const TICKS: u32 = 4;
/// How long a run stays inside one poll before it is reported (about).
pub(crate) const BLOCKED_AFTER: Duration = Duration::from_millis(250 * TICKS as u64);

/// One run's poll count, as the watchdog sees it.
#[derive(Debug, Default)]
pub(crate) struct PollWatch {
    polls: AtomicU32,
    in_poll: AtomicBool,
    /// The poll count at the watchdog's last look.
    seen: AtomicU32,
    /// Consecutive looks that found the run inside the same poll.
    strikes: AtomicU32,
}

impl PollWatch {
    fn enter(&self) {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.in_poll.store(true, Ordering::Relaxed);
    }

    fn leave(&self) {
        self.in_poll.store(false, Ordering::Relaxed);
    }

    /// One look: `true` once, when the run has been inside the same poll for `TICKS` looks
    /// in a row.
    fn stuck(&self) -> bool {
        let polls = self.polls.load(Ordering::Relaxed);
        let same = self.seen.swap(polls, Ordering::Relaxed) == polls;
        if !(same && self.in_poll.load(Ordering::Relaxed)) {
            self.strikes.store(0, Ordering::Relaxed);
            return false;
        }
        self.strikes.fetch_add(1, Ordering::Relaxed) + 1 == TICKS
    }
}

/// `future`, its polls counted in `watch`.
pub(crate) async fn watched<F: Future>(watch: &PollWatch, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        watch.enter();
        let polled = future.as_mut().poll(cx);
        watch.leave();
        polled
    })
    .await
}

/// Looks at every claimed run each tick until `stop`, warning about those that block.
pub(crate) async fn watch(books: &Books, stop: &CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = stop.cancelled() => return,
        }
        for run in books.running_runs() {
            if run.poll_watch.stuck() {
                tracing::warn!(job_id = %run.record.id, kind = %run.record.kind,
                    blocked_for = ?BLOCKED_AFTER,
                    "a job has blocked its thread (blocking code in async code? move it to tokio::task::spawn_blocking); other tasks on that thread wait meanwhile");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_inside_one_poll_for_enough_looks_is_reported_once() {
        let watch = PollWatch::default();
        watch.enter();
        let looks: Vec<bool> = (0..6).map(|_| watch.stuck()).collect();
        // The first look only notes the poll count; four more in the same poll report it.
        assert_eq!(looks, [false, false, false, false, true, false]);
        watch.leave();
        assert!(!watch.stuck());
    }

    #[test]
    fn a_run_that_keeps_polling_or_waits_is_never_reported() {
        let watch = PollWatch::default();
        for _ in 0..10 {
            watch.enter();
            watch.leave();
            assert!(!watch.stuck(), "waiting between polls is not blocking");
            watch.enter();
            assert!(!watch.stuck(), "a new poll since the last look");
            watch.leave();
        }
    }
}
