use crate::NodeId;

/// Why a call to an entity did not produce a reply.
/// Serialisable, so that a node can tell another why a call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallError {
    /// No entity kind of that name is registered with the runtime.
    #[error("unknown entity kind {0:?}")]
    UnknownKind(String),
    /// The entity did not answer within the call timeout. The message may
    /// still be handled later.
    #[error("entity did not answer in time")]
    Timeout,
    /// The runtime is shutting down and activates nothing new.
    #[error("runtime is shutting down")]
    ShuttingDown,
    /// The entity's stored snapshot could not be loaded or decoded. The
    /// runtime refuses to activate it rather than overwrite data it cannot read.
    #[error("entity state could not be loaded: {0}")]
    Load(String),
    /// A durable write failed. When `stale` is true another activation wrote
    /// newer state; this instance stepped down and its change was discarded.
    #[error("entity state could not be persisted: {reason}")]
    Persist { reason: String, stale: bool },
    /// The entity lives on another node and no transport reaches it.
    #[error("entity lives on node {0} which is not reachable")]
    Unreachable(NodeId),
    /// The entity stopped before it answered (stepped down or failed).
    #[error("entity stopped before replying")]
    Stopped,
    /// An entity key with a control character: refused, because the store
    /// keys of an entity's parts are its key, a control byte and the part's
    /// name, and a key holding one could name another entity's part.
    #[error("entity key {0:?} holds a control character")]
    BadKey(String),
    /// A message or reply for another node did not (de)serialise.
    #[error("message does not (de)serialise: {0}")]
    Codec(String),
}

impl CallError {
    /// Another activation wrote newer state: the instance must step down.
    pub fn is_stale(&self) -> bool {
        matches!(self, CallError::Persist { stale: true, .. })
    }
}
