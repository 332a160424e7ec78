//! Why the game refused an action: one error type per area of the game,
//! gathered in [`GameError`] the way [`crate::GameEvent`] gathers events,
//! so that a feature adds its refusals in its own area.

use serde::{Deserialize, Serialize};

pub use crate::expedition::ExpeditionError;
pub use crate::guild::GuildError;
pub use crate::market::MarketError;
pub use crate::player::PlayerError;

/// A refusal of the game. Every variant of every area maps to a documented
/// status code of the protocol.
///
/// Stored (remembered outcomes of transaction steps, donations and market
/// operations) in the form every area's variant had before the areas were
/// split: untagged, since variant names are unique across areas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GameError {
    #[error(transparent)]
    Player(#[from] PlayerError),
    #[error(transparent)]
    Guild(#[from] GuildError),
    #[error(transparent)]
    Market(#[from] MarketError),
    #[error(transparent)]
    Expedition(#[from] ExpeditionError),
}
