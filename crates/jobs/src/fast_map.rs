//! The map the engine's per-job look-ups use (workers by kind, queues and metric handles by
//! name, runs by job id): a `HashMap` with `foldhash`'s fast hasher, several times cheaper
//! than the default SipHash on these short keys. Its keys come from the application's code
//! (kinds, queue names) or from the store (job ids), not from outside input, and the hasher
//! is still seeded per process.

/// A `HashMap` with the fast hasher.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
