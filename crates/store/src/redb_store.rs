//! Embedded backend on redb: a copy-on-write B-tree in one file, with ACID
//! write transactions.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{check_op, Record, Store, StoreError, Version, WriteOp};

/// The one table: key bytes -> [`encode`]d record (version, then payload).
///
/// The version lives inside the value rather than in a second table so that a
/// get is one B-tree lookup and a conditional put reads and rewrites one entry.
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");

/// Bytes of the little-endian version that prefixes every stored value.
const VERSION_LEN: usize = 8;

/// A [`Store`] in a redb database file.
///
/// A batch is one redb write transaction and one commit with redb's default
/// (immediate) durability, so it is on disk when `write_batch` returns. redb
/// admits one write transaction at a time, which is what makes each op's
/// check-then-write atomic: no other writer can interleave. Readers see the
/// last committed snapshot and never wait for the writer.
///
/// All redb calls block on disk, so they run on tokio's blocking pool; the
/// database handle is in an `Arc` so each blocking task can own a clone.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

/// Default page cache: 64 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl RedbStore {
    /// Opens the database at `path`, creating it (and its parent directories)
    /// if it does not exist.
    ///
    /// This blocks on disk (and on recovery after an unclean shutdown), so call
    /// it at startup or from `spawn_blocking`, not in the middle of async work.
    /// A redb file can be open by one process at a time; a second open fails
    /// with a backend error.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Like [`RedbStore::open`] with a page cache of `cache_bytes`. redb's
    /// own default is 1 GiB, and a server that rewrites entity snapshots all
    /// day fills it: the cache is part of the server's RSS.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: usize) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Backend(format!("redb: creating directory {}: {e}", parent.display())))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| StoreError::Backend(format!("redb: opening {}: {e}", path.display())))?;
        // Create the table up front: a read transaction cannot create it, and
        // would otherwise fail with "table does not exist" on a fresh file.
        let txn = db.begin_write().map_err(|e| backend("begin write", e))?;
        txn.open_table(RECORDS).map_err(|e| backend("open table", e))?;
        txn.commit().map_err(|e| backend("commit", e))?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs blocking redb work on tokio's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("redb: blocking task failed: {e}")))?
    }
}

fn backend(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("redb: {what}: {err}"))
}

fn encode(version: Version, value: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(VERSION_LEN + value.len());
    buf.extend_from_slice(&version.to_le_bytes());
    buf.extend_from_slice(value);
    buf
}

/// Splits a stored value into version and payload. A value shorter than the
/// version prefix was not written by this code: report it, don't guess.
fn decode<'a>(key: &[u8], stored: &'a [u8]) -> Result<(Version, &'a [u8]), StoreError> {
    match stored.split_first_chunk::<VERSION_LEN>() {
        Some((version, payload)) => Ok((Version::from_le_bytes(*version), payload)),
        None => Err(StoreError::Backend(format!(
            "redb: corrupt record under key {key:?}: {} bytes, shorter than the version prefix",
            stored.len()
        ))),
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        let key = key.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin read", e))?;
            let table = txn.open_table(RECORDS).map_err(|e| backend("open table", e))?;
            let Some(guard) = table.get(key.as_slice()).map_err(|e| backend("get", e))? else {
                return Ok(None);
            };
            let (version, payload) = decode(&key, guard.value())?;
            Ok(Some(Record { version, value: payload.to_vec() }))
        })
        .await
    }

    async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Version, StoreError>>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.blocking(move |db| {
            // Any `?` below drops `txn` uncommitted, which aborts it: a
            // backend failure applies none of the batch.
            let txn = db.begin_write().map_err(|e| backend("begin write", e))?;
            let mut results = Vec::with_capacity(ops.len());
            let mut changed = false;
            {
                let mut table = txn.open_table(RECORDS).map_err(|e| backend("open table", e))?;
                for op in &ops {
                    let key = op.key();
                    // Reads inside the write transaction see this batch's
                    // earlier ops, so two ops on one key chain correctly.
                    let current = match table.get(key).map_err(|e| backend("get", e))? {
                        Some(guard) => decode(key, guard.value())?.0,
                        None => 0,
                    };
                    let result = check_op(op, current);
                    match (&result, op) {
                        (Ok(version), WriteOp::Put { value, side, .. }) => {
                            table.insert(key, encode(*version, value).as_slice()).map_err(|e| backend("insert", e))?;
                            for s in side {
                                match &s.value {
                                    Some(v) => table
                                        .insert(s.key.as_slice(), encode(*version, v).as_slice())
                                        .map(drop)
                                        .map_err(|e| backend("insert side", e))?,
                                    None => {
                                        table.remove(s.key.as_slice()).map_err(|e| backend("remove side", e))?;
                                    }
                                }
                            }
                            changed = true;
                        }
                        // current == 0: deleting an absent key, nothing to do.
                        (Ok(_), WriteOp::Delete { .. }) if current != 0 => {
                            table.remove(key).map_err(|e| backend("remove", e))?;
                            changed = true;
                        }
                        _ => {}
                    }
                    results.push(result);
                }
            }
            if !changed {
                // Every op conflicted or was a delete of an absent key:
                // nothing to make durable, so skip the commit and its fsync.
                txn.abort().map_err(|e| backend("abort", e))?;
            } else {
                txn.commit().map_err(|e| backend("commit", e))?;
            }
            Ok(results)
        })
        .await
    }

    async fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Record)>, StoreError> {
        let prefix = prefix.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| backend("begin read", e))?;
            let table = txn.open_table(RECORDS).map_err(|e| backend("open table", e))?;
            let range = table.range::<&[u8]>(prefix.as_slice()..).map_err(|e| backend("range", e))?;
            let mut out = Vec::new();
            for entry in range {
                let (key, value) = entry.map_err(|e| backend("range next", e))?;
                let key = key.value();
                // Keys are in byte order, so the first key without the prefix
                // ends the match; no need to compute an upper bound.
                if !key.starts_with(&prefix) {
                    break;
                }
                let (version, payload) = decode(key, value.value())?;
                out.push((key.to_vec(), Record { version, value: payload.to_vec() }));
            }
            Ok(out)
        })
        .await
    }
}
