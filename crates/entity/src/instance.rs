//! One live instance as its task sees it: its state, the version it
//! derives from, its unwritten part changes and the write in flight; how it
//! loads and how it writes.

use std::sync::atomic::Ordering;

use guildhall_store::{SideWrite, StoreError, Version, WriteOp};
use tokio::sync::oneshot;

use crate::host::Slot;
use crate::{CallError, Entity, EntityId, Runtime};

/// The storage key of part `name` of the entity stored under `storage_key`.
/// Entity keys hold no control characters (the runtime refuses them), so
/// parts never collide with another entity's snapshot, and one prefix scan
/// finds them all.
pub(crate) fn part_key(storage_key: &[u8], name: &str) -> Vec<u8> {
    separated(storage_key, 0, name)
}

/// The storage key of a *cold* part: under a separator of its own (1, not
/// 0), so that the scan that loads an instance's parts at activation never
/// reads them.
pub(crate) fn cold_part_key(storage_key: &[u8], name: &str) -> Vec<u8> {
    separated(storage_key, 1, name)
}

fn separated(storage_key: &[u8], separator: u8, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(storage_key.len() + 1 + name.len());
    key.extend_from_slice(storage_key);
    key.push(separator);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The storage key of part `name` of an instance of `E`, hot or cold.
fn part_key_of<E: Entity>(storage_key: &[u8], name: &str) -> Vec<u8> {
    if E::is_cold_part(name) {
        cold_part_key(storage_key, name)
    } else {
        part_key(storage_key, name)
    }
}

/// Loads the instance's snapshot (and parts), or creates fresh state if none
/// is stored.
pub(crate) async fn load<E: Entity>(rt: &Runtime, key: &str, storage_key: &[u8]) -> Result<(E, Version), CallError> {
    let fail = |e: String| CallError::Load(format!("{}/{key}: {e}", E::KIND));
    let (mut state, version) = match rt.store().get(storage_key).await {
        Ok(Some(record)) => serde_json::from_slice::<E>(&record.value)
            .map(|state| (state, record.version))
            .map_err(|e| fail(format!("snapshot does not decode: {e}")))?,
        Ok(None) => (E::create(key, rt.now_ms()), 0),
        Err(e) => return Err(fail(e.to_string())),
    };
    if E::HAS_PARTS && version > 0 {
        let prefix = part_key(storage_key, "");
        let records = rt.store().scan_prefix(&prefix).await.map_err(|e| fail(e.to_string()))?;
        let parts = records
            .into_iter()
            .map(|(k, r)| (String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), r.value))
            .collect();
        state.load_parts(parts).map_err(|e| fail(format!("parts do not decode: {e}")))?;
    }
    Ok((state, version))
}

/// [`load`] as a boxed [`Instance`], ready for its task.
pub(crate) async fn load_instance<E: Entity>(rt: &Runtime, id: &EntityId) -> Result<Box<Instance<E>>, CallError> {
    let storage_key = id.storage_key();
    let (state, version) = load::<E>(rt, &id.key, &storage_key).await?;
    Ok(Box::new(Instance {
        state,
        version,
        dirty: version == 0,
        storage_key,
        parts: Default::default(),
        inflight: None,
    }))
}

/// The state of one instance as its task sees it.
pub(crate) struct Instance<E: Entity> {
    pub(crate) state: E,
    /// Version of the stored snapshot this state derives from; the next write
    /// is conditional on it.
    pub(crate) version: Version,
    pub(crate) dirty: bool,
    pub(crate) storage_key: Vec<u8>,
    /// Part changes not yet written, newest per name (see
    /// [`Entity::take_part_changes`]).
    pub(crate) parts: SharedParts,
    /// The write-behind write handed to the flusher and not confirmed yet.
    pub(crate) inflight: Option<Box<Inflight>>,
}

pub(crate) type Parts = std::collections::BTreeMap<String, Option<Vec<u8>>>;

/// Unwritten part changes, shared with the handler's [`crate::Ctx`] while it
/// runs (for [`crate::Ctx::read_cold`]) without a copy: changed only once
/// the handler is done, when the instance holds the only reference.
pub(crate) type SharedParts = std::sync::Arc<Parts>;

/// A write-behind write in the flusher's hands. The instance does not wait
/// for it: it goes on handling letters, and the next write is conditional
/// on the version this one will produce. Waiting made every request that
/// reached a player while its periodic write was being committed wait for
/// that commit, a few milliseconds to tens under load: a steady share of
/// all requests, and the p99 (docs/bench-log/scaling-rounds.md, "Rounds").
pub(crate) struct Inflight {
    pub(crate) result: oneshot::Receiver<Result<Version, StoreError>>,
    /// The version the write is conditional on.
    pub(crate) expected: Version,
    /// Its part changes, taken back if the write fails.
    pub(crate) parts: SharedParts,
    /// A flush waiting for this write to be on disk.
    pub(crate) done: Option<oneshot::Sender<()>>,
}

pub(crate) fn stale_error(expected: Version, actual: Version) -> CallError {
    CallError::Persist {
        reason: format!("stale instance: wrote against version {expected}, store has {actual}"),
        stale: true,
    }
}

impl<E: Entity> Instance<E> {
    /// The conditional write of the current state and part changes.
    pub(crate) fn write_op(&self) -> Result<WriteOp, CallError> {
        let value = serde_json::to_vec(&self.state)
            .map_err(|e| CallError::Persist { reason: format!("snapshot does not encode: {e}"), stale: false })?;
        let side = self
            .parts
            .iter()
            .map(|(name, value)| SideWrite { key: part_key_of::<E>(&self.storage_key, name), value: value.clone() })
            .collect();
        let op = WriteOp::Put { key: self.storage_key.clone(), value, expected: self.version, side };
        // Per kind, to tell which entities make the store's write volume (an
        // LSM store rewrites it in compaction: docs/bench-log/scaling-rounds.md, "Long runs").
        metrics::counter!("guildhall_entity_written_bytes_total", "kind" => E::KIND)
            .increment(op.payload_bytes() as u64);
        metrics::counter!("guildhall_entity_writes_total", "kind" => E::KIND).increment(1);
        Ok(op)
    }

    pub(crate) fn mark_clean(&mut self, slot: &Slot<E>) {
        self.dirty = false;
        slot.dirty.store(false, Ordering::Relaxed);
        slot.dirty_since.store(0, Ordering::Relaxed);
    }

    pub(crate) fn mark_dirty(&mut self, rt: &Runtime, slot: &Slot<E>) {
        if !self.dirty {
            slot.dirty_since.store(rt.now_ms().max(1), Ordering::Relaxed);
        }
        self.dirty = true;
        slot.dirty.store(true, Ordering::Relaxed);
    }

    /// Writes the state conditionally on `version` and waits for the commit
    /// (durable-before-reply, passivation).
    pub(crate) async fn persist(&mut self, rt: &Runtime, slot: &Slot<E>) -> Result<(), CallError> {
        // A failed write-behind left the state dirty again: this write covers it.
        if let Err(e @ CallError::Persist { stale: true, .. }) = self.settle(rt, slot).await {
            return Err(e);
        }
        let op = self.write_op()?;
        match rt.flusher().write(op).await {
            Ok(v) => {
                self.parts = SharedParts::default();
                self.version = v;
                self.mark_clean(slot);
                Ok(())
            }
            Err(StoreError::Conflict { expected, actual }) => {
                metrics::counter!("guildhall_entity_stale_writes_total", "kind" => E::KIND).increment(1);
                Err(stale_error(expected, actual))
            }
            Err(e) => Err(CallError::Persist { reason: e.to_string(), stale: false }),
        }
    }

    /// Write-behind: hands the state to the flusher without waiting (see
    /// [`Inflight`]); `done` is answered once it is on disk. At most one such
    /// write is in flight: the caller settles the previous one first.
    pub(crate) fn submit(
        &mut self,
        rt: &Runtime,
        slot: &Slot<E>,
        done: Option<oneshot::Sender<()>>,
    ) -> Result<(), CallError> {
        debug_assert!(self.inflight.is_none());
        let op = self.write_op()?;
        let expected = self.version;
        let result = rt.flusher().submit(op);
        self.inflight = Some(Box::new(Inflight { result, expected, parts: std::mem::take(&mut self.parts), done }));
        self.version = expected + 1;
        self.mark_clean(slot);
        Ok(())
    }

    /// Takes in the outcome of the write in flight.
    pub(crate) fn confirm(
        &mut self,
        outcome: Result<Result<Version, StoreError>, oneshot::error::RecvError>,
        rt: &Runtime,
        slot: &Slot<E>,
    ) -> Result<(), CallError> {
        let Some(f) = self.inflight.take() else { return Ok(()) };
        let outcome = outcome.unwrap_or_else(|_| Err(StoreError::Backend("flusher dropped the write".into())));
        let result = match outcome {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { expected, actual }) => {
                metrics::counter!("guildhall_entity_stale_writes_total", "kind" => E::KIND).increment(1);
                Err(stale_error(expected, actual))
            }
            Err(e) => {
                // Not written (a backend failure applies none of a batch):
                // the state is dirty again, with the parts it carried under
                // any newer change of the same part.
                self.version = f.expected;
                let parts = std::sync::Arc::make_mut(&mut self.parts);
                for (name, value) in std::sync::Arc::unwrap_or_clone(f.parts) {
                    parts.entry(name).or_insert(value);
                }
                self.mark_dirty(rt, slot);
                Err(CallError::Persist { reason: e.to_string(), stale: false })
            }
        };
        if let Some(done) = f.done {
            let _ = done.send(());
        }
        result
    }

    /// Waits for the write in flight, if any, and takes in its outcome.
    pub(crate) async fn settle(&mut self, rt: &Runtime, slot: &Slot<E>) -> Result<(), CallError> {
        let Some(f) = self.inflight.as_mut() else { return Ok(()) };
        let outcome = (&mut f.result).await;
        self.confirm(outcome, rt, slot)
    }
}

/// Logs a failed write-behind; true if it failed because the instance is stale.
pub(crate) fn write_behind_stale(id: &EntityId, result: Result<(), CallError>) -> bool {
    match result {
        Ok(()) => false,
        Err(e) => {
            tracing::warn!(entity = %id, error = %e, "write-behind failed");
            e.is_stale()
        }
    }
}
