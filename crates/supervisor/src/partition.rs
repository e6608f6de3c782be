//! Partitioned supervisors (Elixir's `PartitionSupervisor`): N dynamic supervisors behind
//! one handle, each child routed by the hash of a key, so that a very large dynamic pool is
//! not one supervisor task's bottleneck.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock};

use crate::{
    ChildCounts, ChildId, ChildInfo, ChildSpec, DynamicHandle, DynamicSupervisor, Intensity,
    RestartPolicy, ShutdownReport, SpecError, StartError, Strategy, Supervisor, SupervisorError,
    SupervisorHandle, SupervisorSpec, SupervisorTree,
};

/// Entry point: [`PartitionSupervisor::builder`].
///
/// A static `one_for_one` supervisor whose children are `partitions` dynamic supervisors
/// (ids `0`, `1`, ...). [`PartitionHandle::start_child`] routes a child to the partition its
/// key hashes to; the same key always reaches the same partition (for a given partition
/// count and build of this crate). Each partition has its own task, restart intensity and
/// `max_children`.
///
/// ```
/// use supervisor::{ChildContext, ChildSpec, PartitionSupervisor, Restart};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = PartitionSupervisor::builder("sessions").partitions(4).build()?.start().await?;
/// let session = ChildSpec::new("session", |ctx: ChildContext| async move {
///     ctx.cancelled().await;
///     Ok(())
/// })
/// .restart(Restart::Temporary);
/// pool.start_child(&"user-42", session).await?;
/// assert_eq!(pool.count_children().await?.active, 1);
/// assert!(pool.shutdown().await.is_clean());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PartitionSupervisor;

impl PartitionSupervisor {
    /// Starts declaring a partitioned supervisor with this id; by default one partition
    /// per available core.
    pub fn builder(id: impl Into<String>) -> PartitionSupervisorBuilder {
        let partitions = std::thread::available_parallelism().map_or(1, |n| n.get());
        PartitionSupervisorBuilder {
            id: id.into(),
            partitions,
            max_children: None,
            intensity: Intensity::default(),
            restart_policy: RestartPolicy::default(),
        }
    }
}

/// Builds a [`PartitionSupervisorSpec`]; see [`PartitionSupervisor::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build()`"]
pub struct PartitionSupervisorBuilder {
    id: String,
    partitions: usize,
    max_children: Option<usize>,
    intensity: Intensity,
    restart_policy: RestartPolicy,
}

impl PartitionSupervisorBuilder {
    /// How many partitions (default: the number of available cores).
    pub fn partitions(mut self, n: usize) -> Self {
        self.partitions = n;
        self
    }

    /// Limits the children of each partition (default: no limit).
    pub fn max_children_per_partition(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// The restart intensity of each partition (default 1 restart in 5 s).
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// The restart policy of each partition (default at once).
    pub fn restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.restart_policy = policy;
        self
    }

    /// Validates the declaration.
    ///
    /// # Errors
    ///
    /// [`SpecError::ZeroPartitions`], and what a dynamic supervisor's `build` rejects.
    pub fn build(self) -> Result<PartitionSupervisorSpec, SpecError> {
        if self.partitions == 0 {
            return Err(SpecError::ZeroPartitions {
                supervisor: self.id,
            });
        }
        let handle = PartitionHandle::new(&self.id, self.partitions);
        let mut top = Supervisor::builder(self.id.clone()).strategy(Strategy::OneForOne);
        for (i, slot) in handle.inner.partitions.iter().enumerate() {
            let slot = slot.clone();
            let mut partition = DynamicSupervisor::builder(i.to_string())
                .intensity(self.intensity)
                .restart_policy(self.restart_policy.clone())
                .on_start(move |h| set(&slot, h.clone()));
            if let Some(max) = self.max_children {
                partition = partition.max_children(max);
            }
            top = top.child(ChildSpec::dynamic(partition.build()?));
        }
        let slot = handle.inner.top.clone();
        let supervisor = top.on_start(move |h| set(&slot, h.clone())).build()?;
        Ok(PartitionSupervisorSpec { supervisor, handle })
    }
}

type Slot<H> = Arc<RwLock<Option<H>>>;

fn set<H>(slot: &Slot<H>, handle: H) {
    // the critical sections only replace or clone an option: a poisoned lock is consistent
    *slot.write().unwrap_or_else(PoisonError::into_inner) = Some(handle);
}

fn get<H: Clone>(slot: &Slot<H>) -> Option<H> {
    slot.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// A validated partitioned supervisor: start it on its own, or nest it with
/// [`ChildSpec::partitioned`]. Its [`handle`](Self::handle) follows restarts.
#[derive(Clone, Debug)]
#[must_use = "a spec does nothing until started or nested"]
pub struct PartitionSupervisorSpec {
    supervisor: SupervisorSpec,
    handle: PartitionHandle,
}

impl PartitionSupervisorSpec {
    /// The handle that routes to the partitions (valid once they run; before that, calls
    /// answer [`SupervisorError::Gone`]).
    pub fn handle(&self) -> PartitionHandle {
        self.handle.clone()
    }

    /// Starts it on its own: every partition runs when this returns.
    ///
    /// # Errors
    ///
    /// As [`SupervisorSpec::start`].
    pub async fn start(&self) -> Result<PartitionHandle, StartError> {
        let top = self.supervisor.start().await?;
        set(&self.handle.inner.top, top);
        Ok(self.handle())
    }
}

impl ChildSpec {
    /// A partitioned supervisor as a child of another supervisor.
    pub fn partitioned(spec: &PartitionSupervisorSpec) -> Self {
        ChildSpec::supervisor(spec.supervisor.clone())
    }
}

/// Routes children to partitions by key. Cheap to clone.
#[derive(Clone)]
pub struct PartitionHandle {
    inner: Arc<Inner>,
}

struct Inner {
    id: Arc<str>,
    partitions: Vec<Slot<DynamicHandle>>,
    top: Slot<SupervisorHandle>,
}

impl PartitionHandle {
    fn new(id: &str, n: usize) -> Self {
        let inner = Inner {
            id: Arc::from(id),
            partitions: (0..n).map(|_| Slot::default()).collect(),
            top: Slot::default(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    fn gone(&self) -> SupervisorError {
        SupervisorError::Gone {
            supervisor: self.inner.id.to_string(),
        }
    }

    /// The supervisor's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// How many partitions there are.
    pub fn partitions(&self) -> usize {
        self.inner.partitions.len()
    }

    /// The partition `key` routes to: `hash(key) % partitions`, with a hasher whose keys
    /// are fixed (SipHash-1-3 with zero keys), so the route is the same in every process
    /// running the same build.
    pub fn partition_of<K: Hash + ?Sized>(&self, key: &K) -> usize {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let n = self.inner.partitions.len() as u64;
        // the remainder is below the partition count, a usize
        (hasher.finish() % n) as usize
    }

    /// Partition `i`'s dynamic supervisor, once it runs.
    pub fn partition(&self, i: usize) -> Option<DynamicHandle> {
        self.inner.partitions.get(i).and_then(get)
    }

    fn running(&self, i: usize) -> Result<DynamicHandle, SupervisorError> {
        self.partition(i).ok_or_else(|| self.gone())
    }

    /// Starts a child in the partition `key` routes to.
    ///
    /// # Errors
    ///
    /// As [`DynamicHandle::start_child`]; `Gone` before the partitions run.
    pub async fn start_child<K: Hash + ?Sized>(
        &self,
        key: &K,
        spec: ChildSpec,
    ) -> Result<ChildId, SupervisorError> {
        self.running(self.partition_of(key))?
            .start_child(spec)
            .await
    }

    /// Terminates a child started through this handle (found by the partition that issued
    /// its id).
    ///
    /// # Errors
    ///
    /// `UnknownChild` for an id no partition issued, and as
    /// [`DynamicHandle::terminate_child`].
    pub async fn terminate_child(&self, id: ChildId) -> Result<(), SupervisorError> {
        let owner = self
            .inner
            .partitions
            .iter()
            .filter_map(get)
            .find(|h| h.issued(id));
        match owner {
            Some(h) => h.terminate_child(id).await,
            None => Err(SupervisorError::UnknownChild {
                supervisor: self.inner.id.to_string(),
                child: id.to_string(),
            }),
        }
    }

    /// Every partition's children, partition by partition.
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        let mut all = Vec::new();
        for i in 0..self.partitions() {
            all.extend(self.running(i)?.which_children().await?);
        }
        Ok(all)
    }

    /// The children of all partitions, counted together.
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        let mut total = ChildCounts::default();
        for i in 0..self.partitions() {
            let c = self.running(i)?.count_children().await?;
            total.specs += c.specs;
            total.active += c.active;
            total.supervisors += c.supervisors;
            total.workers += c.workers;
        }
        Ok(total)
    }

    /// The partitioned supervisor and its partitions as a tree.
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn tree(&self) -> Result<SupervisorTree, SupervisorError> {
        get(&self.inner.top)
            .ok_or_else(|| self.gone())?
            .tree()
            .await
    }

    /// Shuts down the partitioned supervisor and every partition. For one nested in a
    /// tree, this stops it for good: its parent sees a normal exit.
    pub async fn shutdown(&self) -> ShutdownReport {
        match get(&self.inner.top) {
            Some(h) => h.shutdown().await,
            None => ShutdownReport::gone(self.inner.id.clone(), self.gone()),
        }
    }
}

impl fmt::Debug for PartitionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionHandle")
            .field("id", &self.inner.id)
            .field("partitions", &self.partitions())
            .finish()
    }
}
