//! Player operations for callers outside the entities.

use guildhall_entity::Runtime;

use super::{Player, PlayerMsg, PlayerReply, PlayerView};
use crate::op::{call, unexpected, OpError};

/// Runs one of the player's own actions (`Get`, `OpenChest`,
/// `UpgradeCard`, `Battle`) and returns its reply.
pub async fn act(rt: &Runtime, player: &str, msg: PlayerMsg) -> Result<PlayerReply, OpError> {
    call::<Player, _>(rt, player, msg).await
}

/// The player's current state.
pub async fn profile(rt: &Runtime, player: &str) -> Result<PlayerView, OpError> {
    match act(rt, player, PlayerMsg::Get).await? {
        PlayerReply::Profile(p) | PlayerReply::Applied(p) => Ok(p),
        other => Err(unexpected(other)),
    }
}

/// Logs a player in: activates (or creates) it; returns its state and
/// whether it was created now.
pub async fn login(rt: &Runtime, player: &str) -> Result<(PlayerView, bool), OpError> {
    match act(rt, player, PlayerMsg::Login).await? {
        PlayerReply::LoggedIn { player, created } => Ok((player, created)),
        other => Err(unexpected(other)),
    }
}
