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

    /// Least time a change waits in memory before the periodic flush writes
    /// it; the runtime's flush interval when that is longer. For a kind whose
    /// state is large, changes all the time, and holds nothing whose loss in
    /// a crash would cost a player value (the expedition hub's live points):
    /// written every flush interval, such a state can be most of what the
    /// store writes. Durable writes, passivation and shutdown still write at
    /// once.
    const WRITE_BEHIND_MS: u64 = 0;

    /// Whether this kind keeps parts (see [`Entity::take_part_changes`]): the
    /// runtime then reads them back on activation.
    const HAS_PARTS: bool = false;

    /// Parts are records kept beside the snapshot, one per element of a large
    /// collection (a market's listings), so that a write costs what changed
    /// rather than the whole collection. This returns, and forgets, the parts
    /// changed since the last call: name → new value, or `None` for a part
    /// removed. The runtime asks after every handler and writes the changes
    /// with the next snapshot, in the same commit and under the snapshot's
    /// version condition, so a stale instance can no more write a part than
    /// its snapshot. The snapshot should skip whatever lives in parts.
    fn take_part_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        Vec::new()
    }

    /// Whether part `name` is *cold*: stored apart and not read at
    /// activation, so that an instance holds in memory what it uses now, not
    /// everything it keeps (old chat, closed listings, outcomes past their
    /// retry window). The entity reads cold parts when it needs them, with
    /// [`Ctx::read_cold`], and may drop them from memory at will: only a
    /// change to `None` deletes one. Cold and hot names must not share a
    /// prefix that [`Ctx::read_cold`] is asked for.
    fn is_cold_part(_name: &str) -> bool {
        false
    }

    /// Whether this kind's handlers read parts back from the store
    /// ([`Ctx::read_cold`], [`Ctx::read_part`]): only then does a handler's
    /// context carry the unwritten changes those reads must see. A kind
    /// with cold parts reads them; a kind may also drop hot parts from
    /// memory and read them back.
    const READS_PARTS: bool = false;

    /// Gives the stored (hot) parts back, by name, after the snapshot loaded.
    fn load_parts(&mut self, _parts: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        Ok(())
    }

    /// The state as JSON, for introspection: by default the snapshot; kinds
    /// with parts add them.
    fn state_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The message an instance gets when its timer fires (see
    /// [`Ctx::set_timer`]): a hub's periodic work, run where the hub is
    /// hosted. `None`: this kind has no timer.
    fn timer_msg() -> Option<Self::Msg> {
        None
    }

    /// Called once after activation, before the first message.
    fn activated(&mut self, _ctx: &mut Ctx) {}

    /// Handles one message. The runtime runs at most one handler of an entity
    /// at a time, so the handler has the state to itself: atomicity holds
    /// within one entity (and only there). After the handler the state is
    /// marked dirty unless it called [`Ctx::unchanged`].
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Ctx) -> impl Future<Output = Self::Reply> + Send;
}
