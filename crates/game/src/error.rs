use serde::{Deserialize, Serialize};

/// Why the game refused an action. Every variant maps to a documented status
/// code of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum GameError {
    #[error("not enough gold: need {need}, have {have}")]
    NotEnoughGold { need: u64, have: u64 },
    #[error("not enough gems: need {need}, have {have}")]
    NotEnoughGems { need: u64, have: u64 },
    #[error("not enough mana: need {need}, have {have}")]
    NotEnoughMana { need: u32, have: u32 },
    #[error("not enough copies of card {kind}: need {need}, have {have}")]
    NotEnoughCards { kind: u32, need: u32, have: u32 },
    #[error("no card of kind {0} in the catalogue")]
    UnknownCard(u32),
    #[error("card {0} is at its maximum level")]
    MaxLevel(u32),
    // @guild-errors
    // @market-errors
    #[error("join a guild first: expeditions are for guilds")]
    NoGuild,
    #[error("only the guild's leader or officers can sign it up")]
    NotOfficer,
    // @expedition-errors
}
