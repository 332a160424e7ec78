use serde::{Deserialize, Serialize};

/// Refusals of a player's own actions and of steps on its holdings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PlayerError {
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
    #[error("the token was revoked (logged out); log in with the device id")]
    TokenRevoked,
    #[error("the account is banned: {reason}")]
    Banned { reason: String },
    #[error("no such player")]
    NoSuchPlayer,
}
