//! A versioned key-value store.
//!
//! Every record carries a version; every write names the version it expects to
//! replace and is refused when the stored version differs. This is the safety
//! net of the whole system: a stale copy of an entity (a duplicate activation
//! after a partition, a node that missed a lease expiry) can never overwrite
//! newer state, because its write names an old version and is refused.
//!
//! Backends implement [`Store`]; every backend runs the same conformance suite
//! (`tests/conformance.rs`).

mod fjall_store;
mod memory;
mod redb_store;

pub use fjall_store::{FjallOptions, FjallStore};
pub use memory::MemoryStore;
pub use redb_store::RedbStore;

use async_trait::async_trait;

/// Version of a record. `0` means "absent": a put expecting version 0 creates
/// the record, and the first stored version is 1.
pub type Version = u64;

/// A stored value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub version: Version,
    pub value: Vec<u8>,
}

/// One conditional write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Store `value` under `key` if its current version is `expected`
    /// (0 = absent); the new version is `expected + 1`. The `side` writes
    /// are applied with it, in the same commit, when (and only when) its
    /// condition holds.
    Put { key: Vec<u8>, value: Vec<u8>, expected: Version, side: Vec<SideWrite> },
    /// Remove `key` if its current version is `expected`; the result is 0.
    ///
    /// Deleting an absent key expecting 0 succeeds (a no-op returning 0): the
    /// caller's belief "this key is absent" holds, so it is not a conflict.
    ///
    /// A delete leaves no tombstone, so a key deleted and created again starts
    /// over at version 1. A writer still holding version 1 from before the
    /// delete would then match the new record (ABA). Callers that delete and
    /// recreate the same key while stale writers may exist must keep a
    /// generation in the key or value.
    Delete { key: Vec<u8>, expected: Version },
}

/// A record written along with a [`WriteOp::Put`] (its "owner"), under the
/// owner's condition instead of one of its own: how an entity keeps a large
/// collection beside its snapshot, one record per element, writing only the
/// elements that changed. A side record is stored with the owner's new
/// version; `value: None` removes it. Side keys must be keys that nothing
/// writes with conditions of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideWrite {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl WriteOp {
    /// A conditional put with no side writes.
    pub fn put(key: impl Into<Vec<u8>>, value: Vec<u8>, expected: Version) -> Self {
        WriteOp::Put { key: key.into(), value, expected, side: Vec::new() }
    }

    pub fn key(&self) -> &[u8] {
        match self {
            WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } => key,
        }
    }

    /// Bytes of keys and values the op hands to the store, side writes
    /// included: what the write volume (and an LSM backend's compaction,
    /// which rewrites it) is measured in.
    pub fn payload_bytes(&self) -> usize {
        match self {
            WriteOp::Put { key, value, side, .. } => {
                key.len()
                    + value.len()
                    + side.iter().map(|s| s.key.len() + s.value.as_ref().map_or(0, Vec::len)).sum::<usize>()
            }
            WriteOp::Delete { key, .. } => key.len(),
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The record's version is not the one the write expected: someone else
    /// wrote it since it was read. The writer must not retry blindly.
    #[error("version conflict: expected {expected}, found {actual}")]
    Conflict { expected: Version, actual: Version },
    /// The backend failed (disk, corruption, connection).
    #[error("store backend: {0}")]
    Backend(String),
}

/// A versioned key-value store. Implementations must be safe to share between
/// tasks; operations may block on disk, so backends move blocking work off the
/// async executor.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The record under `key`, if any.
    async fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError>;

    /// Applies a batch of conditional writes as one durable unit of I/O (one
    /// commit, one fsync). Each op's condition is checked on its own: ops whose
    /// condition holds are applied, the others report [`StoreError::Conflict`];
    /// one stale writer does not fail its neighbours' writes. The result has
    /// one entry per op, in order: the new version (0 after a delete).
    /// Two ops on the same key in one batch are checked in order, each seeing
    /// the effect of the one before. A [`StoreError::Backend`] failure fails
    /// every op of the batch and applies none.
    async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Version, StoreError>>, StoreError>;

    /// [`Store::write_batch`] without waiting for the disk: the batch is
    /// applied and visible when this returns, and reaches the disk with the
    /// next synced batch or [`Store::sync`], whichever comes first. A crash
    /// of the machine before then may lose it; it never loses a synced batch,
    /// and a synced batch makes every batch before it durable too (the
    /// durable history is always a prefix of the written one). For
    /// write-behind state, which is already allowed to lag memory. Backends
    /// that can't defer their sync write through [`Store::write_batch`].
    async fn write_batch_buffered(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Version, StoreError>>, StoreError> {
        self.write_batch(ops).await
    }

    /// Makes every batch written so far durable (see
    /// [`Store::write_batch_buffered`]).
    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Every record whose key starts with `prefix`, in key order.
    async fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Record)>, StoreError>;

    /// The backend's own figures, as (metric name, value) gauges an operator
    /// reads next to the server's: for an LSM engine, its compaction time
    /// and table counts, which tell whether it keeps up with the writes.
    /// Cheap (no disk access); empty for backends with nothing to say.
    fn stats(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// Conditional single put; see [`WriteOp::Put`].
    async fn put(&self, key: &[u8], value: Vec<u8>, expected: Version) -> Result<Version, StoreError> {
        let op = WriteOp::put(key, value, expected);
        single_result(self.write_batch(vec![op]).await?)
    }

    /// Conditional delete; see [`WriteOp::Delete`].
    async fn delete(&self, key: &[u8], expected: Version) -> Result<Version, StoreError> {
        let op = WriteOp::Delete { key: key.to_vec(), expected };
        single_result(self.write_batch(vec![op]).await?)
    }
}

/// The one result of a one-op batch. A backend that breaks the "one result
/// per op" contract is reported as a backend failure rather than a panic.
fn single_result(mut results: Vec<Result<Version, StoreError>>) -> Result<Version, StoreError> {
    match (results.pop(), results.is_empty()) {
        (Some(result), true) => result,
        _ => Err(StoreError::Backend("backend returned a wrong number of results for a one-op batch".into())),
    }
}

/// Checks `op`'s condition against the key's `current` version (0 = absent)
/// and returns the version the key has after the op (0 = absent). Shared by
/// every backend so they cannot disagree on the rules.
pub(crate) fn check_op(op: &WriteOp, current: Version) -> Result<Version, StoreError> {
    let expected = match op {
        WriteOp::Put { expected, .. } | WriteOp::Delete { expected, .. } => *expected,
    };
    if expected != current {
        return Err(StoreError::Conflict { expected, actual: current });
    }
    match op {
        // Unreachable in practice (2^64 writes to one key), but a wrapped
        // version would read as "absent" and must never be stored.
        WriteOp::Put { .. } => expected.checked_add(1).ok_or_else(|| StoreError::Backend("version overflow".into())),
        WriteOp::Delete { .. } => Ok(0),
    }
}

/// Shared conformance checks: every backend's tests call [`conformance::run_all`].
pub mod conformance;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_bytes_count_keys_values_and_side_writes() {
        let side = vec![
            SideWrite { key: b"k\0p1".to_vec(), value: Some(vec![0; 10]) },
            SideWrite { key: b"k\0p2".to_vec(), value: None },
        ];
        let put = WriteOp::Put { key: b"k".to_vec(), value: vec![0; 100], expected: 3, side };
        assert_eq!(put.payload_bytes(), 1 + 100 + (4 + 10) + 4);
        assert_eq!(WriteOp::Delete { key: b"abc".to_vec(), expected: 1 }.payload_bytes(), 3);
    }
}
