//! Embedded backend on fjall, an LSM-tree engine: the server's default. A
//! durable batch is one journal append and one `fdatasync`; under the game's
//! write pattern (hundreds of small durable commits a second) that costs less
//! CPU than redb's copy-on-write pages (BENCHMARKS.md, "Store backend: redb vs fjall").

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fjall::compaction::Leveled;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::{check_op, Record, Store, StoreError, Version, WriteOp};

/// Bytes of the little-endian version that prefixes every stored value.
const VERSION_LEN: usize = 8;

/// A [`Store`] in a fjall database directory, one keyspace holding
/// key -> (version u64 LE, payload), as the redb backend does.
///
/// fjall has no conditional write, so conditions are checked and the batch
/// written under one store-wide `Mutex`: no other writer of this store can
/// change a key between its check and its write. (Another process cannot open
/// the directory: fjall locks it.) Readers don't take the lock; fjall makes a
/// committed batch visible atomically.
///
/// A batch is one fjall write batch committed with [`PersistMode::SyncData`]:
/// one journal append and one `fdatasync`, the same guarantee redb's commit
/// gives (redb also syncs with `fdatasync`), so the two compare fairly. The
/// journal is append-only within a file, and `fdatasync` does flush the file
/// size, so `SyncData` suffices; fjall itself uses `SyncAll` when it rotates
/// journal files.
#[derive(Clone)]
pub struct FjallStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    records: Keyspace,
    /// Serialises check-and-write; see [`FjallStore`]. Holds the versions
    /// the checks need.
    write_lock: Mutex<Versions>,
}

/// The current version of keys this store checked or wrote, so that a
/// conditional write does not read its record back from the tree first.
/// That read missed the small block cache more and more as the data grew:
/// 5 % of the server's CPU late in a ten-minute run
/// (docs/bench-log/scaling-rounds.md, "Long runs"). Only this process writes the directory (fjall locks it), and
/// only under the lock that guards this map, so an entry is never stale;
/// an entry is set only after its batch committed. Bounded: when full it
/// starts over (a miss only costs the read it saves).
#[derive(Default)]
struct Versions {
    known: HashMap<Box<[u8]>, Version>,
}

/// Most keys [`Versions`] remembers: a few times the entities a busy node
/// keeps active (19,500 players and ~700 hubs in the scaling benchmark).
const VERSIONS_KEPT: usize = 65_536;

impl Versions {
    fn get(&self, key: &[u8]) -> Option<Version> {
        self.known.get(key).copied()
    }

    fn set(&mut self, key: &[u8], version: Version) {
        if self.known.len() >= VERSIONS_KEPT && !self.known.contains_key(key) {
            self.known.clear();
        }
        match self.known.get_mut(key) {
            Some(v) => *v = version,
            None => {
                self.known.insert(key.into(), version);
            }
        }
    }
}

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore").finish_non_exhaustive()
    }
}

fn backend(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("fjall: {what}: {err}"))
}

fn encode(version: Version, value: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(VERSION_LEN + value.len());
    buf.extend_from_slice(&version.to_le_bytes());
    buf.extend_from_slice(value);
    buf
}

fn decode<'a>(key: &[u8], stored: &'a [u8]) -> Result<(Version, &'a [u8]), StoreError> {
    match stored.split_first_chunk::<VERSION_LEN>() {
        Some((version, payload)) => Ok((Version::from_le_bytes(*version), payload)),
        None => Err(StoreError::Backend(format!(
            "fjall: corrupt record under key {key:?}: {} bytes, shorter than the version prefix",
            stored.len()
        ))),
    }
}

/// Memory bounds and compaction of a [`FjallStore`].
#[derive(Debug, Clone, Copy)]
pub struct FjallOptions {
    /// Block cache (fjall's default is 32 MiB).
    pub cache_bytes: u64,
    /// Size at which the memtable is sealed and flushed to a table (fjall's
    /// default is 64 MiB; a sealed one stays in memory until flushed).
    pub memtable_bytes: u64,
    /// Tables the first level collects before they are merged into the
    /// second (fjall's default is 4). Game records are keyed by entity, so
    /// every flushed table overlaps the whole second level, and each merge
    /// rewrites all of it: the bytes compaction writes per byte flushed
    /// grow with the data over `memtable_bytes × l0_threshold`
    /// (`store_write_amp` example). Reads check every first-level table's
    /// filter, which costs little next to that.
    pub l0_threshold: u8,
}

impl Default for FjallOptions {
    fn default() -> Self {
        Self { cache_bytes: 32 << 20, memtable_bytes: 64 << 20, l0_threshold: 4 }
    }
}

impl FjallStore {
    /// Opens the database directory at `path`, creating it (and its parents)
    /// if needed. Blocks on disk and journal recovery; call it at startup or
    /// from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, FjallOptions::default())
    }

    /// [`FjallStore::open`] with the engine's memory bounded and its
    /// compaction set as given: the block cache and the memtable are most
    /// of what fjall adds to RSS.
    pub fn open_with(path: impl AsRef<Path>, options: FjallOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)
            .map_err(|e| StoreError::Backend(format!("fjall: creating directory {}: {e}", path.display())))?;
        let db = Database::builder(path)
            .cache_size(options.cache_bytes)
            // The least fjall allows: the journal is what a restart replays.
            .max_journaling_size(64 << 20)
            .open()
            .map_err(|e| StoreError::Backend(format!("fjall: opening {}: {e}", path.display())))?;
        let FjallOptions { memtable_bytes, l0_threshold, .. } = options;
        let compaction = Arc::new(Leveled::default().with_l0_threshold(l0_threshold.max(1)));
        let records = db
            .keyspace("records", move || {
                KeyspaceCreateOptions::default()
                    .max_memtable_size(memtable_bytes)
                    .compaction_strategy(compaction.clone())
            })
            .map_err(|e| backend("opening keyspace", e))?;
        Ok(Self { inner: Arc::new(Inner { db, records, write_lock: Mutex::new(Versions::default()) }) })
    }

    /// One batch, persisted as `mode` says; an empty batch touches nothing.
    async fn write(
        &self,
        ops: Vec<WriteOp>,
        mode: PersistMode,
    ) -> Result<Vec<Result<Version, StoreError>>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.blocking(move |inner| inner.write_batch(&ops, mode)).await
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| StoreError::Backend(format!("fjall: blocking task failed: {e}")))?
    }
}

impl Inner {
    fn version_of(&self, key: &[u8]) -> Result<Version, StoreError> {
        match self.records.get(key).map_err(|e| backend("get", e))? {
            Some(stored) => Ok(decode(key, &stored)?.0),
            None => Ok(0),
        }
    }

    fn write_batch(&self, ops: &[WriteOp], mode: PersistMode) -> Result<Vec<Result<Version, StoreError>>, StoreError> {
        // A poisoned lock only means another batch panicked before its
        // commit; fjall applied none of that batch, so the store is intact.
        let mut versions = self.write_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());

        // The batch's own effects, newest per key, so that later ops on a key
        // see earlier ones (fjall can't read an uncommitted batch). None =
        // deleted. Writing one entry per key also avoids relying on how fjall
        // orders two entries for one key that share a sequence number.
        let mut pending: BTreeMap<&[u8], Option<(Version, &[u8])>> = BTreeMap::new();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let key = op.key();
            let current = match pending.get(key) {
                Some(state) => state.map_or(0, |(version, _)| version),
                None => match versions.get(key) {
                    Some(v) => v,
                    None => self.version_of(key)?,
                },
            };
            let result = check_op(op, current);
            match (&result, op) {
                (Ok(version), WriteOp::Put { value, side, .. }) => {
                    pending.insert(key, Some((*version, value.as_slice())));
                    for s in side {
                        pending.insert(s.key.as_slice(), s.value.as_deref().map(|v| (*version, v)));
                    }
                }
                (Ok(_), WriteOp::Delete { .. }) if current != 0 => {
                    pending.insert(key, None);
                }
                _ => {}
            }
            results.push(result);
        }

        if pending.is_empty() {
            // Nothing changed: no journal write. A synced batch still syncs,
            // for the buffered batches before it (see `write_batch_buffered`).
            if !matches!(mode, PersistMode::Buffer) {
                self.db.persist(mode).map_err(|e| backend("sync", e))?;
            }
            return Ok(results);
        }
        let mut batch = self.db.batch().durability(Some(mode));
        for (key, state) in pending {
            match state {
                Some((version, value)) => batch.insert(&self.records, key, encode(version, value)),
                None => batch.remove(&self.records, key),
            }
        }
        batch.commit().map_err(|e| backend("commit", e))?;
        // Committed: the checked keys now have these versions (a refused op
        // left its key as it was; a delete leaves 0).
        for (op, result) in ops.iter().zip(&results) {
            if let Ok(version) = result {
                versions.set(op.key(), *version);
            }
        }
        Ok(results)
    }
}

#[async_trait]
impl Store for FjallStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        let key = key.to_vec();
        self.blocking(move |inner| {
            let Some(stored) = inner.records.get(&key).map_err(|e| backend("get", e))? else {
                return Ok(None);
            };
            let (version, payload) = decode(&key, &stored)?;
            Ok(Some(Record { version, value: payload.to_vec() }))
        })
        .await
    }

    async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Version, StoreError>>, StoreError> {
        self.write(ops, PersistMode::SyncData).await
    }

    /// Written to the OS's buffers (`PersistMode::Buffer`): a crash of the
    /// process loses nothing, one of the machine may lose what the next
    /// `fdatasync` of the journal would have covered. The journal is one
    /// append-only file at a time and fjall syncs it whole before rotating,
    /// so a later synced batch covers every earlier buffered one.
    async fn write_batch_buffered(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Version, StoreError>>, StoreError> {
        self.write(ops, PersistMode::Buffer).await
    }

    async fn sync(&self) -> Result<(), StoreError> {
        self.blocking(|inner| inner.db.persist(PersistMode::SyncData).map_err(|e| backend("sync", e))).await
    }

    async fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Record)>, StoreError> {
        let prefix = prefix.to_vec();
        self.blocking(move |inner| {
            let mut out = Vec::new();
            for guard in inner.records.prefix(&prefix) {
                let (key, stored) = guard.into_inner().map_err(|e| backend("prefix scan", e))?;
                let (version, payload) = decode(&key, &stored)?;
                out.push((key.to_vec(), Record { version, value: payload.to_vec() }));
            }
            Ok(out)
        })
        .await
    }

    fn stats(&self) -> Vec<(&'static str, f64)> {
        let db = &self.inner.db;
        let records = &self.inner.records;
        vec![
            ("guildhall_store_compaction_seconds", db.time_compacting().as_secs_f64()),
            ("guildhall_store_compactions_total", db.compactions_completed() as f64),
            ("guildhall_store_write_buffer_bytes", db.write_buffer_size() as f64),
            ("guildhall_store_outstanding_flushes", db.outstanding_flushes() as f64),
            ("guildhall_store_tables", records.table_count() as f64),
            ("guildhall_store_l0_tables", records.l0_table_count() as f64),
            ("guildhall_store_disk_bytes", records.disk_space() as f64),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_versions_are_bounded_and_updated_in_place() {
        let mut v = Versions::default();
        v.set(b"a", 1);
        v.set(b"a", 2);
        assert_eq!((v.get(b"a"), v.known.len()), (Some(2), 1));
        for i in 1..VERSIONS_KEPT {
            v.set(format!("k{i}").as_bytes(), 1);
        }
        assert_eq!(v.known.len(), VERSIONS_KEPT);
        v.set(b"a", 3);
        assert_eq!(v.known.len(), VERSIONS_KEPT, "a known key is updated, not added");
        v.set(b"new", 1);
        assert_eq!((v.known.len(), v.get(b"a"), v.get(b"new")), (1, None, Some(1)), "full: starts over");
    }
}
