use serde::{Deserialize, Serialize};

/// Refusals of the weekly expedition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ExpeditionError {
    #[error("join a guild first: expeditions are for guilds")]
    NoGuild,
    #[error("only the guild's leader or officers can sign it up")]
    NotOfficer,
}
