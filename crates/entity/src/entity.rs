use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Ctx;

/// A kind of entity. The implementing type *is* the entity's state: it is
/// serialised as the snapshot that the runtime stores, so a field added later
/// must carry `#[serde(default)]` for old snapshots to keep loading.
pub trait Entity: Serialize + DeserializeOwned + Send + 'static {
    /// The kind name, part of every id and storage key. Never change it.
    const KIND: &'static str;
    /// Messages this entity handles. Serialisable so that a call to an entity
    /// on another node is the same call.
    type Msg: Serialize + DeserializeOwned + Send + 'static;
    /// Replies to [`Entity::Msg`].
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// The state of an entity that has never been stored.
    fn create(key: &str, now_ms: u64) -> Self;

    /// Called once after activation, before the first message.
    fn activated(&mut self, _ctx: &mut Ctx) {}

    /// Handles one message. The runtime runs at most one handler of an entity
    /// at a time, so the handler has the state to itself: atomicity holds
    /// within one entity (and only there). After the handler the state is
    /// marked dirty unless it called [`Ctx::unchanged`].
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Ctx) -> impl Future<Output = Self::Reply> + Send;
}
