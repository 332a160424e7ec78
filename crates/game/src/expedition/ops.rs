//! Expedition operations for callers outside the expedition hub.

use guildhall_entity::Runtime;

use super::{Expedition, ExpeditionMsg, ExpeditionReply, ExpeditionStatus, SEASON};
use crate::guild::{self, GuildRole};
use crate::op::{call, unexpected, OpError};
use crate::player;
use crate::ExpeditionError;

/// The current period as `player`'s guild sees it.
pub async fn status(rt: &Runtime, player: &str) -> Result<ExpeditionStatus, OpError> {
    let guild = player::ops::profile(rt, player).await?.guild;
    match call::<Expedition, _>(rt, SEASON, ExpeditionMsg::Status { guild }).await? {
        ExpeditionReply::Status(s) => Ok(s),
        other => Err(unexpected(other)),
    }
}

/// Signs `player`'s guild up for the current period: the leader or an
/// officer only. Returns the period and the guild's bracket.
pub async fn sign_up(rt: &Runtime, player: &str) -> Result<(u64, u32), OpError> {
    let guild = player::ops::profile(rt, player).await?.guild.ok_or(ExpeditionError::NoGuild)?;
    let view = guild::ops::get(rt, player, Some(&guild)).await?;
    match view.members.iter().find(|m| m.player_id == player) {
        Some(m) if m.role >= GuildRole::Officer => {}
        Some(_) => return Err(ExpeditionError::NotOfficer.into()),
        None => return Err(ExpeditionError::NoGuild.into()),
    }
    match call::<Expedition, _>(rt, SEASON, ExpeditionMsg::SignUp { guild }).await? {
        ExpeditionReply::SignedUp { period, bracket } => Ok((period, bracket)),
        other => Err(unexpected(other)),
    }
}
