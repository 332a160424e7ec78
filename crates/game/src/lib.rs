//! The Guildhall game domain, as entities of the entity runtime.
//!
//! Architecture invariant: nothing here touches a socket or a protobuf type.
//! The server maps these domain types to the wire at its edge.

pub mod catalogue;
pub mod error;
pub mod event;
pub mod expedition;
pub mod guild;
pub mod market;
pub mod op;
pub mod parts;
pub mod player;
pub mod rng;
pub mod rules;
pub mod text;
pub mod tx;
pub mod txkey;

pub use catalogue::{CardDef, Rarity, CATALOGUE};
pub use error::{ExpeditionError, GameError, GuildError, MarketError, PlayerError};
pub use event::GameEvent;
pub use player::{CardView, Change, ChangeKind, Player, PlayerMsg, PlayerReply, PlayerView, REMEMBERED_TXS};

use guildhall_entity::{CallError, Runtime, RuntimeBuilder};

/// Registers every entity kind of the game with a runtime builder.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .register::<Player>()
        .register::<guild::Guild>()
        .register::<guild::directory::GuildDirectory>()
        .register::<guild::GuildWaker>()
        .register::<market::Market>()
        .register::<expedition::Expedition>()
}

/// Topic of a guild's events (joins, chat, help, standings); members'
/// sessions subscribe to it.
pub fn guild_topic(guild_id: &str) -> String {
    format!("guild/{guild_id}")
}

/// Topic on which a player's own events are published; the player's session
/// subscribes to it.
pub fn player_topic(player_id: &str) -> String {
    format!("player/{player_id}")
}

/// Settings of the game that come from the server's configuration.
#[derive(Debug, Clone)]
pub struct GameConfig {
    /// Length of an expedition period (a "week"; short for demos and tests).
    pub expedition_period_ms: u64,
    /// Expedition rewards paid per tick.
    pub expedition_payouts_per_tick: usize,
}

impl Default for GameConfig {
    fn default() -> Self {
        Self {
            expedition_period_ms: expedition::DEFAULT_PERIOD_MS,
            expedition_payouts_per_tick: expedition::DEFAULT_PAYOUTS_PER_TICK,
        }
    }
}

/// Starts the game on a runtime: hands the hubs their configuration and
/// activates those with periodic work (the market's shards, the
/// expedition, the guilds' waker), whose timers then run on the node that
/// hosts each. The server calls it at start; calling it again (another
/// node, a restart) does no harm.
pub async fn start(rt: &Runtime, config: &GameConfig) -> Result<(), CallError> {
    let msg = expedition::ExpeditionMsg::Configure {
        period_ms: config.expedition_period_ms,
        payouts_per_tick: config.expedition_payouts_per_tick,
    };
    rt.call::<expedition::Expedition>(expedition::SEASON, msg).await?.map_err(|e| CallError::Load(e.to_string()))?;
    for kind in 0..market::MARKET_SHARDS {
        rt.call::<market::Market>(&market::shard_key(kind), market::MarketMsg::Wake)
            .await?
            .map_err(|e| CallError::Load(e.to_string()))?;
    }
    rt.call::<guild::GuildWaker>(guild::waker::WAKER_KEY, guild::waker::WakerMsg::Wake).await
}
