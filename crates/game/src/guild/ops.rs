//! Guild operations for callers outside the guild entities: the server's
//! wire edge, an admin console, a test, another node. Plain async functions
//! over domain types.
//!
//! Most act on the caller's own guild, which the player's record names
//! (`Player.guild`); the guild entity checks membership and roles itself,
//! so a stale record can never grant a permission. Two operations run in
//! steps, each durable before the next starts:
//!
//! * **create**: the directory reserves name and tag (and hands out the id),
//!   then the guild charges the founder and founds itself, then the
//!   directory confirms (or releases the name when the founder could not
//!   pay). A retry after a crash finds the reservation and goes on with the
//!   same id, so the founder is charged at most once.
//! * **donate**: the guild records the donation's intent durably, then runs
//!   its steps. If the caller dies in between, the guild's tick finishes it.

use guildhall_entity::Runtime;

use super::directory::{DirectoryMsg, DirectoryReply, GuildDirectory, Reservation, SearchQuery, DIRECTORY_KEY};
use super::model::*;
use super::msg::{GuildMsg, GuildReply};
use super::rules::GUILD_DESCRIPTION;
use super::state::Guild;
use crate::op::{call, unexpected, OpError};
use crate::player::{self, PlayerView};
use crate::text::clean;
use crate::{GameError, GuildError};

/// Creates a guild founded by `founder`, who pays for it and leads it;
/// returns it and the founder's profile after the fee.
pub async fn create(rt: &Runtime, founder: &str, input: GuildInput) -> Result<(GuildView, PlayerView), OpError> {
    if let Some(g) = player::ops::profile(rt, founder).await?.guild {
        return Err(GuildError::AlreadyInGuild(g).into());
    }
    let GuildInput { name, tag, language, open, description } = input;
    let description =
        clean(&GUILD_DESCRIPTION, &description).map_err(|e| GuildError::InvalidGuildInput(e.to_string()))?;
    let reserve = DirectoryMsg::Reserve { founder: founder.to_string(), name, tag, language, open, description };
    let reservation = match call::<GuildDirectory, _>(rt, DIRECTORY_KEY, reserve).await? {
        DirectoryReply::Reserved(r) => r,
        other => return Err(unexpected(other)),
    };
    let view = found(rt, reservation).await?;
    Ok((view, player::ops::profile(rt, founder).await?))
}

/// Founds the guild of reservation `r` and tells the directory the outcome.
/// Shared by [`create`] and the tick's clean-up of reservations a crash
/// left behind.
pub async fn found(rt: &Runtime, r: Reservation) -> Result<GuildView, GameError> {
    let input = GuildInput { name: r.name, tag: r.tag, language: r.language, open: r.open, description: r.description };
    let msg = GuildMsg::Found { founder: r.founder.clone(), input };
    let outcome = match rt.call::<Guild>(&r.guild_id, msg).await {
        Ok(Ok(GuildReply::View(v))) => Ok(v),
        Ok(Ok(other)) => Err(GuildError::GuildRetryLater(format!("unexpected reply {other:?}")).into()),
        // Not decided yet: the reservation stays, and the tick finishes it.
        Ok(Err(e @ GameError::Guild(GuildError::GuildRetryLater(_)))) => return Err(e),
        Ok(Err(e)) => Err(e),
        Err(e) => return Err(GuildError::GuildRetryLater(e.to_string()).into()),
    };
    let (founder, guild_id) = (r.founder, r.guild_id);
    let msg = match &outcome {
        Ok(_) => DirectoryMsg::Confirm { founder, guild_id },
        Err(_) => DirectoryMsg::Release { founder, guild_id },
    };
    // Lost only by a crash; the tick's clean-up repeats it.
    let _ = rt.call::<GuildDirectory>(DIRECTORY_KEY, msg).await;
    outcome
}

/// Guild ids are "g" and a number; anything else names no guild (and must
/// not activate an entity under a made-up key).
pub fn checked_id(id: &str) -> Result<&str, GuildError> {
    let digits = id.strip_prefix('g').filter(|d| !d.is_empty() && d.len() < 20);
    match digits {
        Some(d) if d.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(GuildError::GuildNotFound(id.to_string())),
    }
}

/// The guild `player`'s record names.
pub async fn own_guild(rt: &Runtime, player: &str) -> Result<String, OpError> {
    player::ops::profile(rt, player).await?.guild.ok_or_else(|| GuildError::NotGuildMember(player.into()).into())
}

async fn call_guild(rt: &Runtime, id: &str, msg: GuildMsg) -> Result<GuildReply, OpError> {
    call::<Guild, _>(rt, id, msg).await
}

async fn view_of(rt: &Runtime, id: &str, msg: GuildMsg) -> Result<GuildView, OpError> {
    match call_guild(rt, id, msg).await? {
        GuildReply::View(v) => Ok(v),
        other => Err(unexpected(other)),
    }
}

/// Guild `guild_id` (the viewer's own when `None`) as `viewer` may see it.
pub async fn get(rt: &Runtime, viewer: &str, guild_id: Option<&str>) -> Result<GuildView, OpError> {
    let id = match guild_id {
        Some(id) => checked_id(id)?.to_string(),
        None => own_guild(rt, viewer).await?,
    };
    view_of(rt, &id, GuildMsg::Get { viewer: viewer.into() }).await
}

/// Joins an open guild (true), or files a join request for a closed one
/// (false).
pub async fn join(rt: &Runtime, player: &str, guild_id: &str) -> Result<(bool, GuildView), OpError> {
    let id = checked_id(guild_id)?;
    match call_guild(rt, id, GuildMsg::Join { player: player.into() }).await? {
        GuildReply::Joined { joined, view } => Ok((joined, view)),
        other => Err(unexpected(other)),
    }
}

/// An officer of the caller's guild approves or declines `player`'s request.
pub async fn decide_join(rt: &Runtime, officer: &str, player: &str, approve: bool) -> Result<GuildView, OpError> {
    let id = own_guild(rt, officer).await?;
    view_of(rt, &id, GuildMsg::DecideJoin { officer: officer.into(), player: player.into(), approve }).await
}

/// Leaves the caller's guild: the new leader if leadership passed on, and
/// whether the guild disbanded.
pub async fn leave(rt: &Runtime, player: &str) -> Result<(Option<String>, bool), OpError> {
    let id = own_guild(rt, player).await?;
    match call_guild(rt, &id, GuildMsg::Leave { player: player.into() }).await? {
        GuildReply::Left { new_leader, disbanded } => Ok((new_leader, disbanded)),
        other => Err(unexpected(other)),
    }
}

/// Kicks `player` from the caller's guild.
pub async fn kick(rt: &Runtime, by: &str, player: &str) -> Result<GuildView, OpError> {
    let id = own_guild(rt, by).await?;
    view_of(rt, &id, GuildMsg::Kick { by: by.into(), player: player.into() }).await
}

/// Promotes a member to officer (`promote`) or demotes an officer.
pub async fn set_role(rt: &Runtime, by: &str, player: &str, promote: bool) -> Result<GuildView, OpError> {
    let id = own_guild(rt, by).await?;
    let msg = if promote {
        GuildMsg::Promote { by: by.into(), player: player.into() }
    } else {
        GuildMsg::Demote { by: by.into(), player: player.into() }
    };
    view_of(rt, &id, msg).await
}

/// Posts to the caller's guild chat.
pub async fn post_chat(rt: &Runtime, player: &str, text: String) -> Result<ChatMessage, OpError> {
    let id = own_guild(rt, player).await?;
    match call_guild(rt, &id, GuildMsg::PostChat { player: player.into(), text }).await? {
        GuildReply::Chat(m) => Ok(m),
        other => Err(unexpected(other)),
    }
}

/// The last `limit` messages of the caller's guild chat (0: all it keeps).
pub async fn chat_history(rt: &Runtime, player: &str, limit: usize) -> Result<Vec<ChatMessage>, OpError> {
    let id = own_guild(rt, player).await?;
    match call_guild(rt, &id, GuildMsg::ChatHistory { player: player.into(), limit }).await? {
        GuildReply::History(m) => Ok(m),
        other => Err(unexpected(other)),
    }
}

/// Opens a help request for `count` cards of `kind` (0: as many as allowed).
pub async fn ask_help(rt: &Runtime, player: &str, kind: u32, count: u32) -> Result<HelpRequest, OpError> {
    let id = own_guild(rt, player).await?;
    match call_guild(rt, &id, GuildMsg::AskHelp { player: player.into(), kind, count }).await? {
        GuildReply::Help(h) => Ok(h),
        other => Err(unexpected(other)),
    }
}

/// Donates `count` cards to `requester`'s open help request; the outcome
/// carries the donor's profile after the reward.
pub async fn donate(rt: &Runtime, donor: &str, requester: &str, count: u32) -> Result<DonationOutcome, OpError> {
    let id = own_guild(rt, donor).await?;
    let prepare = GuildMsg::PrepareDonation { donor: donor.into(), requester: requester.into(), count };
    let n = match call_guild(rt, &id, prepare).await? {
        GuildReply::Prepared { n } => n,
        other => return Err(unexpected(other)),
    };
    // The intent is durable: from here on, if this call fails or its caller
    // dies, the guild's tick finishes the donation.
    let mut outcome = match call_guild(rt, &id, GuildMsg::ContinueDonation { n }).await? {
        GuildReply::Donated(d) => d,
        other => return Err(unexpected(other)),
    };
    if outcome.donor.is_none() {
        // A remembered outcome has no profile: read it now.
        outcome.donor = Some(player::ops::profile(rt, donor).await?);
    }
    Ok(outcome)
}

/// Guilds that match `query`, from the directory.
pub async fn search(rt: &Runtime, query: SearchQuery) -> Result<Vec<GuildSummary>, OpError> {
    match call::<GuildDirectory, _>(rt, DIRECTORY_KEY, DirectoryMsg::Search(query)).await? {
        DirectoryReply::Guilds(g) => Ok(g),
        other => Err(unexpected(other)),
    }
}

/// Guilds with room that fit `player` (never its own).
pub async fn recommend(
    rt: &Runtime,
    player: &str,
    language: String,
    limit: usize,
) -> Result<Vec<GuildSummary>, OpError> {
    let exclude = player::ops::profile(rt, player).await?.guild;
    match call::<GuildDirectory, _>(rt, DIRECTORY_KEY, DirectoryMsg::Recommend { language, exclude, limit }).await? {
        DirectoryReply::Guilds(g) => Ok(g),
        other => Err(unexpected(other)),
    }
}
