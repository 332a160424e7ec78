//! Player operations for callers outside the entities.

use guildhall_entity::Runtime;

use super::{Player, PlayerMsg, PlayerReply, PlayerView};
use crate::expedition::{Expedition, ExpeditionMsg, SEASON};
use crate::op::{call, unexpected, OpError};

/// Runs one of the player's own actions (`Get`, `OpenChest`,
/// `UpgradeCard`, `Battle`) and returns its reply. A battle's expedition
/// points go to the player's guild in the expedition hub: cast, never
/// called, so that no player's request waits on the hub, and sent from
/// here rather than from the player's handler, so that the player entity
/// knows nothing of the expedition (which pays players).
pub async fn act(rt: &Runtime, player: &str, msg: PlayerMsg) -> Result<PlayerReply, OpError> {
    let reply = call::<Player, _>(rt, player, msg).await?;
    if let PlayerReply::Battle { points, player: view, .. } = &reply {
        if let Some(guild) = &view.guild {
            let msg =
                ExpeditionMsg::AddPoints { guild: guild.clone(), player: view.player_id.clone(), points: *points };
            rt.spawn_cast::<Expedition>(SEASON, msg);
        }
    }
    Ok(reply)
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
