//! The guild entity (one per guild, key = guild id "g1", "g2", ...):
//! membership and roles, join requests, chat, and help requests with card
//! donations routed between members.
//!
//! The guild is a *hub*: it calls players (`PlayerMsg::Apply`, `SetGuild`,
//! `Get`) and never the other way round, and it only *casts* to the
//! directory, so no call cycle can form. Every value it moves goes through
//! an intent recorded in its own state first ([`Donation`]), with
//! deterministic transaction ids, so that a crash between two steps is
//! completed by re-running the same steps (idempotent on the player) from
//! `Tick` after the restart: no card is created or lost.

mod chat;
mod chat_log;
mod cooldown;
pub mod directory;
mod directory_parts;
mod donation;
mod error;
mod handle;
mod help;
mod members;
mod model;
mod msg;
pub mod ops;
pub mod rules;
mod state;
mod tick;
pub mod waker;

#[cfg(test)]
mod tests;

pub use error::GuildError;
pub use model::*;
pub use msg::{GuildEvent, GuildMsg, GuildReply};
pub use ops::found;
pub use rules::*;
pub use state::Guild;
pub use waker::GuildWaker;
