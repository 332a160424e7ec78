use std::collections::BTreeMap;

use bytes::Bytes;

use crate::instance::{cold_part_key, part_key, SharedParts};
use crate::{CallError, EntityId, Runtime};

/// What a handler may ask of the runtime while it handles one message.
pub struct Ctx {
    id: EntityId,
    runtime: Runtime,
    /// The instance's part changes not yet on disk (waiting for the next
    /// write, and in the write in flight), for [`Ctx::read_cold`].
    unwritten: [Option<SharedParts>; 2],
    /// The kind's [`crate::Entity::is_cold_part`]: where a part is stored.
    is_cold: fn(&str) -> bool,
    pub(crate) changed: bool,
    pub(crate) durable: bool,
    pub(crate) stop: bool,
    pub(crate) timer: Option<u64>,
}

impl Ctx {
    pub(crate) fn new(
        id: EntityId,
        runtime: Runtime,
        timer: Option<u64>,
        unwritten: [Option<SharedParts>; 2],
        is_cold: fn(&str) -> bool,
    ) -> Self {
        Self { id, runtime, unwritten, is_cold, changed: true, durable: false, stop: false, timer }
    }

    /// Part `name` of this entity, hot or cold, as the entity last wrote it
    /// (as [`Ctx::read_cold`] reads): for a kind that keeps an index of a
    /// large collection in memory and drops the records themselves, reading
    /// one back when a request needs it (a market listing being bought).
    /// `None`: no such part, or it was deleted.
    pub async fn read_part(&self, name: &str) -> Result<Option<Vec<u8>>, CallError> {
        for unwritten in self.unwritten.iter().flatten() {
            if let Some(value) = unwritten.get(name) {
                return Ok(value.clone());
            }
        }
        let storage_key = self.id.storage_key();
        let key = if (self.is_cold)(name) { cold_part_key(&storage_key, name) } else { part_key(&storage_key, name) };
        let stored = self
            .runtime
            .store()
            .get(&key)
            .await
            .map_err(|e| CallError::Load(format!("{}: part {name:?}: {e}", self.id)))?;
        Ok(stored.map(|r| r.value))
    }

    /// This entity's cold parts (see [`crate::Entity::is_cold_part`]) whose
    /// names start with `prefix`, in name order, as the entity last wrote
    /// them: changes not yet on disk included, except those of the handler
    /// now running (the entity has those in hand). Reads the store: for what
    /// a player asks for now and then (an old page of chat), never on a hot
    /// path.
    pub async fn read_cold(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, CallError> {
        let key = cold_part_key(&self.id.storage_key(), prefix);
        let base = key.len() - prefix.len();
        let stored = self
            .runtime
            .store()
            .scan_prefix(&key)
            .await
            .map_err(|e| CallError::Load(format!("{}: cold parts {prefix:?}: {e}", self.id)))?;
        let mut parts: BTreeMap<String, Vec<u8>> =
            stored.into_iter().map(|(k, r)| (String::from_utf8_lossy(&k[base..]).into_owned(), r.value)).collect();
        // The write in flight is older than the changes waiting for the next.
        for unwritten in self.unwritten.iter().rev().flatten() {
            for (name, value) in unwritten.range(prefix.to_string()..).take_while(|(n, _)| n.starts_with(prefix)) {
                match value {
                    Some(v) => parts.insert(name.clone(), v.clone()),
                    None => parts.remove(name),
                };
            }
        }
        Ok(parts.into_iter().collect())
    }

    /// This entity's id.
    pub fn id(&self) -> &EntityId {
        &self.id
    }

    /// This entity's key.
    pub fn key(&self) -> &str {
        &self.id.key
    }

    /// The injected clock's time, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.runtime.now_ms()
    }

    /// The runtime, to call or cast other entities. Beware of call cycles
    /// (A calls B while B calls A): each waits for the other's mailbox until
    /// the call timeout. Cross-entity flows should go one way.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Publishes an event on a topic; every subscriber receives it.
    pub fn publish(&self, topic: &str, payload: Bytes) {
        self.runtime.pubsub().publish(topic, payload);
    }

    /// The message changed nothing: do not mark the state dirty.
    pub fn unchanged(&mut self) {
        self.changed = false;
    }

    /// Write the state durably before the reply is sent (purchases, trades).
    /// If the write fails the caller gets an error instead of the reply.
    pub fn durable(&mut self) {
        self.durable = true;
    }

    /// Passivate this entity after this message (state flushed first).
    pub fn stop(&mut self) {
        self.stop = true;
    }

    /// When this instance's timer fires next, if it is set. A timer that
    /// fired is cleared before its message is handled: a handler that
    /// wants the next one sets it again.
    pub fn timer(&self) -> Option<u64> {
        self.timer
    }

    /// Sets this instance's timer: at `at_ms` on the injected clock (at the
    /// first maintenance after it), this node's runtime sends the entity
    /// its [`crate::Entity::timer_msg`]. Only the node that hosts the
    /// instance fires it, and an instance with a timer set is not
    /// passivated for idleness. A timer lives in memory: a kind whose work
    /// must outlive a restart keeps what is due in its state.
    pub fn set_timer(&mut self, at_ms: u64) {
        self.timer = Some(at_ms);
    }

    /// Clears this instance's timer.
    pub fn clear_timer(&mut self) {
        self.timer = None;
    }
}
