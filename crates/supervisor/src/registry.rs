//! A registry of addresses by name (Elixir's `Registry`): look-ups without a round trip
//! through any supervisor, entries that follow restarts and vanish on final stops.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use crate::mailbox::OnStop;
use crate::Address;

/// Whether a key names one address or many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// A key names at most one address; registering a second one is an error.
    Unique,
    /// A key names any number of addresses (a topic, a pool).
    Duplicate,
}

/// Registering failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Under [`Keys::Unique`], the key already names another child's address.
    #[error("registry: key {key} is already registered by child `{child}`; unique keys name one address")]
    AlreadyRegistered {
        /// The key, as `Debug` shows it.
        key: String,
        /// The child whose address holds the key.
        child: String,
    },
    /// The address's child has stopped for good: its entry would be stale at once.
    #[error("registry: child `{child}` has stopped; a stopped child cannot be registered")]
    Stopped {
        /// The child's id.
        child: String,
    },
}

/// Names for [`Address`]es: register a child's address under a key, look it up from any
/// task. Cheap to clone (one `Arc`).
///
/// Because an address outlives its child's restarts, an entry keeps pointing at the
/// current incarnation with no re-registration; it disappears when the child stops for
/// good (a temporary child ends, it is terminated, its supervisor ends, including a
/// sibling dropped by a `OneForAll` / `RestForOne` group restart). A child revived by
/// `restart_child` registers again (registering from the child's own body, with
/// [`Inbox::address`](crate::Inbox::address), does that on every start: a second
/// registration of the same address is a no-op).
///
/// Look-ups take a read lock and clone an address: no message to any supervisor.
///
/// ```
/// use supervisor::{ChildContext, ChildSpec, Inbox, Keys, Registry};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry: Registry<String, u32> = Registry::new(Keys::Unique);
/// let (spec, address) =
///     ChildSpec::with_mailbox("counter", 8, |_c: ChildContext, _i: Inbox<u32>| async { Ok(()) })?;
/// registry.register("counter".to_owned(), &address)?;
/// assert!(registry.lookup("counter").is_some_and(|a| a.same(&address)));
/// drop(spec); // the child can never run: its entry goes
/// assert!(registry.lookup("counter").is_none());
/// # Ok(())
/// # }
/// ```
pub struct Registry<K, M> {
    inner: Arc<Inner<K, M>>,
}

struct Inner<K, M> {
    keys: Keys,
    map: RwLock<HashMap<K, Entry<M>>>,
}

/// The addresses under one key: the first inline (a unique key's only one, found without
/// another pointer to follow), the others after it.
struct Entry<M> {
    first: Address<M>,
    more: Vec<Address<M>>,
}

impl<M> Entry<M> {
    fn iter(&self) -> impl Iterator<Item = &Address<M>> {
        std::iter::once(&self.first).chain(&self.more)
    }

    fn len(&self) -> usize {
        1 + self.more.len()
    }

    /// Removes mailbox `address`; `None` when the entry is left empty.
    fn without(mut self, address: usize) -> Option<Self> {
        self.more.retain(|a| a.key() != address);
        if self.first.key() != address {
            return Some(self);
        }
        if self.more.is_empty() {
            return None;
        }
        self.first = self.more.remove(0);
        Some(self)
    }
}

impl<K, M> Clone for Registry<K, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, M> Inner<K, M> {
    // the critical sections cannot panic midway (map inserts and removes), so a poisoned
    // lock still guards a consistent map
    fn read(&self) -> RwLockReadGuard<'_, HashMap<K, Entry<M>>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<K, Entry<M>>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K, M> Inner<K, M>
where
    K: Eq + Hash + Clone,
{
    /// Removes the entry of mailbox `address` under `key`; true if there was one.
    fn remove(&self, key: &K, address: usize) -> bool {
        let mut map = self.write();
        let Some(entry) = map.remove(key) else {
            return false;
        };
        let before = entry.len();
        match entry.without(address) {
            Some(rest) => {
                let removed = rest.len() < before;
                map.insert(key.clone(), rest);
                removed
            }
            None => true,
        }
    }
}

impl<K, M> Registry<K, M>
where
    K: Eq + Hash + Clone + fmt::Debug + Send + Sync + 'static,
    M: Send + 'static,
{
    /// An empty registry.
    pub fn new(keys: Keys) -> Self {
        let inner = Inner {
            keys,
            map: RwLock::new(HashMap::new()),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Registers `address` under `key` until its child stops for good (or
    /// [`unregister`](Self::unregister)). Registering the same address again is a no-op.
    ///
    /// # Errors
    ///
    /// [`RegistryError::AlreadyRegistered`] (a unique key held by another address),
    /// [`RegistryError::Stopped`].
    pub fn register(&self, key: K, address: &Address<M>) -> Result<(), RegistryError> {
        let registered = address.state().on_stop(|| self.insert(key, address));
        registered.unwrap_or_else(|| {
            Err(RegistryError::Stopped {
                child: address.child().to_owned(),
            })
        })
    }

    /// Inserts the entry and returns the hook that removes it.
    fn insert(&self, key: K, address: &Address<M>) -> (Result<(), RegistryError>, Option<OnStop>) {
        let mut map = self.inner.write();
        match map.get_mut(&key) {
            None => {
                let entry = Entry {
                    first: address.clone(),
                    more: Vec::new(),
                };
                map.insert(key.clone(), entry);
            }
            Some(entry) if entry.iter().any(|a| a.same(address)) => return (Ok(()), None),
            Some(entry) if self.inner.keys == Keys::Unique => {
                let err = RegistryError::AlreadyRegistered {
                    key: format!("{key:?}"),
                    child: entry.first.child().to_owned(),
                };
                return (Err(err), None);
            }
            Some(entry) => entry.more.push(address.clone()),
        }
        let weak: Weak<Inner<K, M>> = Arc::downgrade(&self.inner);
        let mailbox = address.key();
        let hook: OnStop = Box::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.remove(&key, mailbox);
            }
        });
        (Ok(()), Some(hook))
    }

    /// Removes `address`'s entry under `key`; true if there was one.
    pub fn unregister(&self, key: &K, address: &Address<M>) -> bool {
        self.inner.remove(key, address.key())
    }

    /// The address registered under `key` (the first one, under [`Keys::Duplicate`]).
    pub fn lookup<Q>(&self, key: &Q) -> Option<Address<M>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.read().get(key).map(|e| e.first.clone())
    }

    /// Every address registered under `key`, in registration order.
    pub fn lookup_all<Q>(&self, key: &Q) -> Vec<Address<M>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.inner.read();
        map.get(key)
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The registered keys, in no particular order.
    pub fn keys(&self) -> Vec<K> {
        self.inner.read().keys().cloned().collect()
    }

    /// How many entries (key, address) there are.
    pub fn len(&self) -> usize {
        self.inner.read().values().map(Entry::len).sum()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.inner.read().is_empty()
    }
}

impl<K, M> fmt::Debug for Registry<K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("keys", &self.inner.keys)
            .field("entries", &self.inner.read().len())
            .finish()
    }
}
