//! In-memory backend, for tests and as a speed floor in benchmarks.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::{check_op, Record, Store, StoreError, Version, WriteOp};

/// A [`Store`] kept in a `BTreeMap`; nothing survives the process.
///
/// Every operation takes one std `Mutex`. It is never held across an `.await`
/// and each critical section is a handful of map operations, so blocking the
/// executor thread for it is cheaper than an async lock would be. Holding the
/// lock for a whole batch is what makes a batch atomic with respect to other
/// writers and readers.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<Vec<u8>, Record>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<Vec<u8>, Record>>, StoreError> {
        // A poisoned lock means a panic while the map was held. Batches are
        // applied op by op, so the map may hold half a batch: refuse to serve
        // it rather than pretend nothing happened.
        self.records.lock().map_err(|_| StoreError::Backend("memory store lock poisoned by an earlier panic".into()))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        Ok(self.lock()?.get(key).cloned())
    }

    async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Version, StoreError>>, StoreError> {
        let mut records = self.lock()?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let current = records.get(op.key()).map_or(0, |r| r.version);
            let result = check_op(&op, current);
            if let Ok(version) = result {
                match op {
                    WriteOp::Put { key, value, side, .. } => {
                        records.insert(key, Record { version, value });
                        for s in side {
                            match s.value {
                                Some(value) => records.insert(s.key, Record { version, value }),
                                None => records.remove(&s.key),
                            };
                        }
                    }
                    WriteOp::Delete { key, .. } => {
                        records.remove(&key);
                    }
                }
            }
            results.push(result);
        }
        Ok(results)
    }

    async fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Record)>, StoreError> {
        let records = self.lock()?;
        Ok(records
            .range::<[u8], _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, record)| (key.clone(), record.clone()))
            .collect())
    }
}
