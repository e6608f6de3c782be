//! Job metadata: a few string pairs a job carries beside its args, for the engine and the
//! application rather than the worker (the trace context of the enqueue, a request id, a
//! tenant). Kept small and checked at enqueue, as the args are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::MAX_NAME_LEN;

/// The most entries a job's metadata may have.
pub const MAX_METADATA_ENTRIES: usize = 32;

/// The most bytes a job's metadata may hold, keys and values together.
pub const MAX_METADATA_BYTES: usize = 4096;

/// String keys and values a job carries beside its args: set at enqueue
/// ([`EnqueueOptions::metadata`](crate::EnqueueOptions::metadata)), stored with the job and
/// read back with it ([`JobRecord::metadata`](crate::JobRecord::metadata),
/// [`JobContext::metadata`](crate::JobContext::metadata)).
///
/// With the `opentelemetry` feature the enqueue adds the W3C trace context of the current
/// span (`traceparent`, and `tracestate` when there is one), and the job's run continues that
/// trace.
///
/// Keys follow the rules of job kind names (1 to [`MAX_NAME_LEN`] characters of
/// `[A-Za-z0-9_.:-]`); at most [`MAX_METADATA_ENTRIES`] entries and [`MAX_METADATA_BYTES`]
/// bytes in all ([`Metadata::validate`]). Empty metadata costs nothing: no allocation, and
/// the stores keep no value for it.
///
/// ```
/// let mut metadata = jobs::Metadata::new();
/// metadata.insert("request_id", "req-42");
/// assert_eq!(metadata.get("request_id"), Some("req-42"));
/// assert!(metadata.validate().is_ok());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, String>);

/// Why metadata breaks its rules (see [`Metadata::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// A key is empty, too long or has characters outside `[A-Za-z0-9_.:-]`.
    #[error(
        "invalid metadata key {0:?}: use 1 to {MAX_NAME_LEN} characters of letters, digits, \
         '_', '.', ':' or '-'"
    )]
    InvalidKey(String),
    /// More than [`MAX_METADATA_ENTRIES`] entries.
    #[error("metadata has {count} entries, more than the {max} a job may carry")]
    TooManyEntries {
        /// The entries given.
        count: usize,
        /// [`MAX_METADATA_ENTRIES`].
        max: usize,
    },
    /// More than [`MAX_METADATA_BYTES`] bytes of keys and values.
    #[error(
        "metadata holds {bytes} bytes of keys and values, more than the {max} a job may \
         carry; keep large data in the args"
    )]
    TooLarge {
        /// The bytes given.
        bytes: usize,
        /// [`MAX_METADATA_BYTES`].
        max: usize,
    },
}

impl Metadata {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(key.into(), value.into())
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The entries, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes of keys and values together.
    pub fn size(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// These entries, with `fallback`'s for the keys these lack.
    pub(crate) fn or(mut self, fallback: Metadata) -> Metadata {
        for (key, value) in fallback.0 {
            self.0.entry(key).or_insert(value);
        }
        self
    }

    /// Checks the rules: valid keys, at most [`MAX_METADATA_ENTRIES`] entries and
    /// [`MAX_METADATA_BYTES`] bytes.
    ///
    /// ```
    /// use jobs::{Metadata, MetadataError, MAX_METADATA_BYTES};
    ///
    /// let big: Metadata = [("blob", "x".repeat(MAX_METADATA_BYTES))].into_iter().collect();
    /// assert!(matches!(big.validate(), Err(MetadataError::TooLarge { .. })));
    /// let bad: Metadata = [("no spaces", "v")].into_iter().collect();
    /// assert_eq!(bad.validate(), Err(MetadataError::InvalidKey("no spaces".into())));
    /// ```
    ///
    /// # Errors
    ///
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), MetadataError> {
        if self.0.len() > MAX_METADATA_ENTRIES {
            return Err(MetadataError::TooManyEntries {
                count: self.0.len(),
                max: MAX_METADATA_ENTRIES,
            });
        }
        if let Some(key) = self.0.keys().find(|key| !crate::store::is_valid_name(key)) {
            return Err(MetadataError::InvalidKey(key.clone()));
        }
        let bytes = self.size();
        if bytes > MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge {
                bytes,
                max: MAX_METADATA_BYTES,
            });
        }
        Ok(())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        Metadata(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Metadata {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        self.0
            .extend(entries.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_at_their_edges() {
        let entries = |n: usize| -> Metadata { (0..n).map(|i| (format!("k{i}"), "v")).collect() };
        assert!(entries(MAX_METADATA_ENTRIES).validate().is_ok());
        assert_eq!(
            entries(MAX_METADATA_ENTRIES + 1).validate(),
            Err(MetadataError::TooManyEntries {
                count: MAX_METADATA_ENTRIES + 1,
                max: MAX_METADATA_ENTRIES
            })
        );
        let sized =
            |bytes: usize| -> Metadata { [("k", "v".repeat(bytes - 1))].into_iter().collect() };
        assert!(sized(MAX_METADATA_BYTES).validate().is_ok());
        assert_eq!(
            sized(MAX_METADATA_BYTES + 1).validate(),
            Err(MetadataError::TooLarge {
                bytes: MAX_METADATA_BYTES + 1,
                max: MAX_METADATA_BYTES
            })
        );
        for bad in ["", "a b", &"k".repeat(MAX_NAME_LEN + 1)] {
            let metadata: Metadata = [(bad, "v")].into_iter().collect();
            assert_eq!(
                metadata.validate(),
                Err(MetadataError::InvalidKey(bad.to_owned()))
            );
        }
    }

    #[test]
    fn own_entries_win_over_the_fallback() {
        let own: Metadata = [("a", "1")].into_iter().collect();
        let fallback: Metadata = [("a", "0"), ("b", "2")].into_iter().collect();
        let merged = own.or(fallback);
        assert_eq!(merged.get("a"), Some("1"));
        assert_eq!(merged.get("b"), Some("2"));
    }

    #[test]
    fn it_is_a_json_object_of_strings() {
        let metadata: Metadata = [("traceparent", "00-ab-cd-01")].into_iter().collect();
        let json = serde_json::to_value(&metadata).unwrap();
        assert_eq!(json, serde_json::json!({ "traceparent": "00-ab-cd-01" }));
        assert_eq!(serde_json::from_value::<Metadata>(json).unwrap(), metadata);
        assert!(serde_json::from_value::<Metadata>(serde_json::json!({ "n": 1 })).is_err());
    }
}
