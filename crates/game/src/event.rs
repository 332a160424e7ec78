//! Events the game publishes on topics. Serialised as JSON into the pub/sub
//! payload; the server maps them to protocol pushes.

use serde::{Deserialize, Serialize};

use crate::PlayerView;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GameEvent {
    /// The player's state changed in a way its session should show.
    PlayerUpdated(PlayerView),
    /// A message for the player (level-up, announcements from operators).
    Notice {
        text: String,
    },
    /// The player joined, left or was removed from a guild. The session
    /// follows it: it subscribes to the new guild's topic.
    GuildChanged {
        guild: Option<String>,
    },
    /// Guild updates (joins, leaves, roles, chat, help), on the guild topic.
    Guild(crate::guild::GuildEvent),
    /// Market offers and closed listings, on the card kind's market topic.
    Market(crate::market::MarketEvent),
    Expedition(crate::expedition::ExpeditionEvent),
}

impl GameEvent {
    pub fn encode(&self) -> bytes::Bytes {
        serde_json::to_vec(self).expect("game events serialise").into()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
