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

/// Logs a player in: activates (or creates) it; returns its state, whether
/// it was created now, and the generation for the session's token. A login
/// with a token passes the token's generation, and is refused with
/// [`PlayerError::TokenRevoked`](super::PlayerError) once it is stale.
pub async fn login(rt: &Runtime, player: &str, token_generation: Option<u64>) -> Result<Login, OpError> {
    match act(rt, player, PlayerMsg::Login { token_generation }).await? {
        PlayerReply::LoggedIn { player, created, token_generation } => Ok(Login { player, created, token_generation }),
        other => Err(unexpected(other)),
    }
}

/// A player's state at login.
#[derive(Debug, Clone)]
pub struct Login {
    pub player: PlayerView,
    pub created: bool,
    pub token_generation: u64,
}

/// Revokes every session token of `player` issued so far; returns the new
/// generation.
pub async fn revoke_tokens(rt: &Runtime, player: &str) -> Result<u64, OpError> {
    match act(rt, player, PlayerMsg::RevokeTokens).await? {
        PlayerReply::TokensRevoked { token_generation } => Ok(token_generation),
        other => Err(unexpected(other)),
    }
}

/// Bans a player (an operator's act): every token is revoked and logins are
/// refused until [`unban`]. Ending the player's live session is the caller's
/// part: the game knows nothing of connections.
pub async fn ban(rt: &Runtime, player: &str, reason: &str) -> Result<(), OpError> {
    match call::<Player, _>(rt, player, PlayerMsg::Ban { reason: reason.to_string() }).await? {
        PlayerReply::TokensRevoked { .. } => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// Lifts a player's ban.
pub async fn unban(rt: &Runtime, player: &str) -> Result<(), OpError> {
    match call::<Player, _>(rt, player, PlayerMsg::Unban).await? {
        PlayerReply::Profile(_) => Ok(()),
        other => Err(unexpected(other)),
    }
}
