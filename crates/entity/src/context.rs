use bytes::Bytes;

use crate::{EntityId, Runtime};

/// What a handler may ask of the runtime while it handles one message.
pub struct Ctx {
    id: EntityId,
    runtime: Runtime,
    pub(crate) changed: bool,
    pub(crate) durable: bool,
    pub(crate) stop: bool,
}

impl Ctx {
    pub(crate) fn new(id: EntityId, runtime: Runtime) -> Self {
        Self { id, runtime, changed: true, durable: false, stop: false }
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
}
