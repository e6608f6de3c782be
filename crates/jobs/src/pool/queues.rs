//! The queues a pool runs: each one's executor slots, claimed-job count, run-time average and
//! fetcher wake-ups.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::fast_map::FastMap;
use crate::pool::slots::Slots;

use crate::telemetry::QueueMetrics;

/// How much a fetcher claims at once (from [`PoolConfig`](crate::PoolConfig)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClaimSettings {
    pub(crate) claim_batch: usize,
    pub(crate) prefetch: usize,
    pub(crate) prefetch_max_job_time: Duration,
}

/// One queue's slots and wake-ups.
#[derive(Debug)]
pub(crate) struct QueueState {
    pub(crate) name: String,
    concurrency: usize,
    /// Executor slots: a claimed job waits for one before it runs, highest priority first.
    pub(crate) slots: Slots,
    /// Jobs claimed and not yet written back (running, waiting for a slot, or finishing).
    inflight: AtomicUsize,
    /// Rolling average run time in microseconds (`u64::MAX` until the first run ends).
    avg_job_micros: AtomicU64,
    /// Wakes the fetcher: jobs were inserted (listener, scheduler).
    pub(crate) wake: Notify,
    /// Wakes the fetcher: room to claim again.
    pub(crate) room: Notify,
    /// The queue's metric handles.
    pub(crate) metrics: QueueMetrics,
}

impl QueueState {
    fn new(name: String, concurrency: usize, kinds: &[&'static str]) -> Self {
        QueueState {
            metrics: QueueMetrics::new(&name, kinds),
            name,
            concurrency,
            slots: Slots::new(concurrency),
            inflight: AtomicUsize::new(0),
            avg_job_micros: AtomicU64::new(u64::MAX),
            wake: Notify::new(),
            room: Notify::new(),
        }
    }

    /// How many jobs the fetcher should claim now (0: wait for room).
    ///
    /// While every slot is busy, the local buffer is refilled only once it is half empty, so
    /// claims (and the completions that follow them) travel in large batches; a free slot
    /// with nothing waiting for it is filled at once. After a wake-up (`woken`: jobs became
    /// available, maybe of a higher priority than those waiting here), it is refilled as
    /// soon as half the concurrency's worth of room is free: a newly available urgent job is
    /// claimed after at most that many starts and, the buffer being ordered by priority,
    /// starts next.
    pub(crate) fn claim_room(&self, settings: &ClaimSettings, woken: bool) -> usize {
        let short_jobs = self.avg_job_micros.load(Ordering::Relaxed)
            <= settings.prefetch_max_job_time.as_micros() as u64;
        let cap = self.concurrency + if short_jobs { settings.prefetch } else { 0 };
        let room = cap.saturating_sub(self.inflight.load(Ordering::Acquire));
        let starving = self.slots.available() > 0;
        let urgent = woken && room > 0 && room >= self.concurrency.div_ceil(2);
        if starving || urgent || room >= cap / 2 {
            room.min(settings.claim_batch)
        } else {
            0
        }
    }

    pub(crate) fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    /// Counts a claimed job in.
    pub(crate) fn took(&self) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a written-back job out and wakes the fetcher: there is room again.
    pub(crate) fn gave_back(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        self.room.notify_one();
    }

    /// Folds one run's duration into the rolling average (weight 1/8).
    pub(crate) fn record_run_time(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u64::MAX - 1)) as u64;
        let old = self.avg_job_micros.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.avg_job_micros.store(new, Ordering::Relaxed);
    }
}

/// Every queue of the pool, by name.
#[derive(Debug)]
pub(crate) struct Queues(FastMap<String, Arc<QueueState>>);

impl Queues {
    /// The queues, with metric handles for the job `kinds` the pool runs.
    pub(crate) fn new(queues: Vec<(String, usize)>, kinds: &[&'static str]) -> Self {
        Queues(
            queues
                .into_iter()
                .map(|(name, concurrency)| {
                    let state = QueueState::new(name.clone(), concurrency, kinds);
                    (name, Arc::new(state))
                })
                .collect(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<QueueState>> {
        self.0.get(name)
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<QueueState>> {
        self.0.values()
    }

    /// How many jobs the pool holds (claimed and not yet written back).
    pub(crate) fn inflight(&self) -> usize {
        self.all().map(|q| q.inflight()).sum()
    }

    /// Wakes every queue's fetcher (jobs may have become available).
    pub(crate) fn wake_all(&self) {
        for queue in self.all() {
            queue.wake.notify_one();
        }
    }
}
