//! Guild methods: create, get, join, decide_join, leave, kick, promote,
//! demote, chat, help requests and donations, directory search and
//! recommendations.
//!
//! Most methods act on the caller's own guild, which the player's record
//! names (`Player.guild`); the guild entity checks membership and roles
//! itself, so a stale record can never grant a permission. Two operations
//! are driven from here in steps, because a step must be durable before the
//! next one starts:
//!
//! * **create**: the directory reserves name and tag (and hands out the id),
//!   then the guild charges the founder and founds itself, then the
//!   directory confirms (or releases the name when the founder could not
//!   pay). A retry after a crash finds the reservation and goes on with the
//!   same id, so the founder is charged at most once.
//! * **donate**: the guild records the donation's intent durably
//!   (`PrepareDonation`), then runs its steps (`ContinueDonation`). If this
//!   request dies in between, the game tick finishes the donation.

use bytes::Bytes;
use guildhall_entity::Runtime;
use guildhall_game::guild::{
    self as game_guild, ChatMessage, Guild, GuildEvent, GuildMsg, GuildReply, GuildRole, GuildSummary, GuildView,
    HelpClose, HelpRequest,
};
use guildhall_game::guild_directory::{DirectoryMsg, DirectoryReply, GuildDirectory, SearchQuery, DIRECTORY_KEY};
use guildhall_game::{GameError, PlayerMsg, PlayerReply, PlayerView};
use guildhall_protocol::{method, pb, Status};
use prost::Message;

use super::player::{call_player, player_pb};
use super::{call_error, decode, game_error};
use crate::session::Answer;

/// Methods of this module.
pub const METHODS: &[&str] = &[
    method::GUILD_CREATE,
    method::GUILD_GET,
    method::GUILD_JOIN,
    method::GUILD_DECIDE_JOIN,
    method::GUILD_LEAVE,
    method::GUILD_KICK,
    method::GUILD_PROMOTE,
    method::GUILD_DEMOTE,
    method::GUILD_CHAT_POST,
    method::GUILD_CHAT_HISTORY,
    method::GUILD_HELP_ASK,
    method::GUILD_HELP_DONATE,
    method::GUILD_SEARCH,
    method::GUILD_RECOMMEND,
];

pub async fn run(rt: &Runtime, player_id: &str, m: &str, payload: &[u8]) -> Result<Bytes, Answer> {
    let me = player_id.to_string();
    let bytes = match m {
        method::GUILD_CREATE => {
            let req = decode::<pb::GuildCreateRequest>(payload)?;
            if let Some(g) = profile(rt, player_id).await?.guild {
                return Err(game_error(&GameError::AlreadyInGuild(g)));
            }
            let reserve = DirectoryMsg::Reserve {
                founder: me,
                name: req.name,
                tag: req.tag,
                language: req.language,
                open: req.open,
                description: req.description.chars().take(500).collect(),
            };
            let reservation = match call_directory(rt, reserve).await? {
                DirectoryReply::Reserved(r) => r,
                other => return Err(unexpected(other)),
            };
            let view = game_guild::found(rt, reservation).await.map_err(|e| game_error(&e))?;
            let player = profile(rt, player_id).await?;
            pb::GuildCreateResponse { guild: Some(guild_pb(&view)), player: Some(player_pb(&player)) }.encode_to_vec()
        }
        method::GUILD_GET => {
            let req = decode::<pb::GuildGetRequest>(payload)?;
            let id = if req.guild_id.is_empty() { own_guild(rt, player_id).await? } else { checked_id(req.guild_id)? };
            let view = expect_view(call_guild(rt, &id, GuildMsg::Get { viewer: me }).await?)?;
            pb::GuildGetResponse { guild: Some(guild_pb(&view)) }.encode_to_vec()
        }
        method::GUILD_JOIN => {
            let req = decode::<pb::GuildJoinRequest>(payload)?;
            let id = checked_id(req.guild_id)?;
            match call_guild(rt, &id, GuildMsg::Join { player: me }).await? {
                GuildReply::Joined { joined, view } => {
                    pb::GuildJoinResponse { joined, guild: Some(guild_pb(&view)) }.encode_to_vec()
                }
                other => return Err(unexpected(other)),
            }
        }
        method::GUILD_DECIDE_JOIN => {
            let req = decode::<pb::GuildDecideJoinRequest>(payload)?;
            let id = own_guild(rt, player_id).await?;
            let msg = GuildMsg::DecideJoin { officer: me, player: req.player_id, approve: req.approve };
            let view = expect_view(call_guild(rt, &id, msg).await?)?;
            pb::GuildDecideJoinResponse { guild: Some(guild_pb(&view)) }.encode_to_vec()
        }
        method::GUILD_LEAVE => {
            decode::<pb::GuildLeaveRequest>(payload)?;
            let id = own_guild(rt, player_id).await?;
            match call_guild(rt, &id, GuildMsg::Leave { player: me }).await? {
                GuildReply::Left { new_leader, disbanded } => {
                    pb::GuildLeaveResponse { new_leader_id: new_leader.unwrap_or_default(), disbanded }.encode_to_vec()
                }
                other => return Err(unexpected(other)),
            }
        }
        method::GUILD_KICK => {
            let req = decode::<pb::GuildKickRequest>(payload)?;
            let id = own_guild(rt, player_id).await?;
            let view = expect_view(call_guild(rt, &id, GuildMsg::Kick { by: me, player: req.player_id }).await?)?;
            pb::GuildKickResponse { guild: Some(guild_pb(&view)) }.encode_to_vec()
        }
        method::GUILD_PROMOTE | method::GUILD_DEMOTE => {
            let req = decode::<pb::GuildSetRoleRequest>(payload)?;
            let id = own_guild(rt, player_id).await?;
            let msg = if m == method::GUILD_PROMOTE {
                GuildMsg::Promote { by: me, player: req.player_id }
            } else {
                GuildMsg::Demote { by: me, player: req.player_id }
            };
            let view = expect_view(call_guild(rt, &id, msg).await?)?;
            pb::GuildSetRoleResponse { guild: Some(guild_pb(&view)) }.encode_to_vec()
        }
        method::GUILD_CHAT_POST => {
            let req = decode::<pb::GuildChatPostRequest>(payload)?;
            let id = own_guild(rt, player_id).await?;
            match call_guild(rt, &id, GuildMsg::PostChat { player: me, text: req.text }).await? {
                GuildReply::Chat(msg) => pb::GuildChatPostResponse { message: Some(chat_pb(&msg)) }.encode_to_vec(),
                other => return Err(unexpected(other)),
            }
        }
        method::GUILD_CHAT_HISTORY => {
            let req = decode::<pb::GuildChatHistoryRequest>(payload)?;
            let id = own_guild(rt, player_id).await?;
            match call_guild(rt, &id, GuildMsg::ChatHistory { player: me, limit: req.limit as usize }).await? {
                GuildReply::History(msgs) => {
                    pb::GuildChatHistoryResponse { messages: msgs.iter().map(chat_pb).collect() }.encode_to_vec()
                }
                other => return Err(unexpected(other)),
            }
        }
        method::GUILD_HELP_ASK => {
            let req = decode::<pb::GuildHelpAskRequest>(payload)?;
            let id = own_guild(rt, player_id).await?;
            match call_guild(rt, &id, GuildMsg::AskHelp { player: me, kind: req.kind, count: req.count }).await? {
                GuildReply::Help(h) => pb::GuildHelpAskResponse { request: Some(help_pb(&h)) }.encode_to_vec(),
                other => return Err(unexpected(other)),
            }
        }
        method::GUILD_HELP_DONATE => {
            let req = decode::<pb::GuildHelpDonateRequest>(payload)?;
            let id = own_guild(rt, player_id).await?;
            let prepare = GuildMsg::PrepareDonation { donor: me, requester: req.requester_id, count: req.count };
            let n = match call_guild(rt, &id, prepare).await? {
                GuildReply::Prepared { n } => n,
                other => return Err(unexpected(other)),
            };
            // The intent is durable: from here on, if this request fails or
            // dies, the guild's tick finishes the donation.
            match call_guild(rt, &id, GuildMsg::ContinueDonation { n }).await? {
                GuildReply::Donated(d) => {
                    // A remembered outcome has no profile: read it now.
                    let donor = match d.donor {
                        Some(p) => p,
                        None => profile(rt, player_id).await?,
                    };
                    pb::GuildHelpDonateResponse {
                        donated: d.donated,
                        reward_gold: d.reward_gold,
                        request: Some(help_pb(&d.request)),
                        player: Some(player_pb(&donor)),
                    }
                    .encode_to_vec()
                }
                other => return Err(unexpected(other)),
            }
        }
        method::GUILD_SEARCH => {
            let req = decode::<pb::GuildSearchRequest>(payload)?;
            let q = SearchQuery {
                prefix: req.prefix,
                open_only: req.open_only,
                has_room: req.has_room,
                language: req.language,
                min_members: req.min_members,
                max_members: req.max_members,
                limit: req.limit as usize,
            };
            let guilds = expect_guilds(call_directory(rt, DirectoryMsg::Search(q)).await?)?;
            pb::GuildSearchResponse { guilds: guilds.iter().map(summary_pb).collect() }.encode_to_vec()
        }
        method::GUILD_RECOMMEND => {
            let req = decode::<pb::GuildRecommendRequest>(payload)?;
            let exclude = profile(rt, player_id).await?.guild;
            let msg = DirectoryMsg::Recommend { language: req.language, exclude, limit: req.limit as usize };
            let guilds = expect_guilds(call_directory(rt, msg).await?)?;
            pb::GuildRecommendResponse { guilds: guilds.iter().map(summary_pb).collect() }.encode_to_vec()
        }
        other => return Err(Answer::err(Status::UnknownMethod, format!("unknown method {other:?}"))),
    };
    Ok(bytes.into())
}

fn unexpected(reply: impl std::fmt::Debug) -> Answer {
    Answer::err(Status::Internal, format!("unexpected guild reply {reply:?}"))
}

fn expect_view(reply: GuildReply) -> Result<GuildView, Answer> {
    match reply {
        GuildReply::View(v) => Ok(v),
        other => Err(unexpected(other)),
    }
}

fn expect_guilds(reply: DirectoryReply) -> Result<Vec<GuildSummary>, Answer> {
    match reply {
        DirectoryReply::Guilds(g) => Ok(g),
        other => Err(unexpected(other)),
    }
}

/// Guild ids are "g" and a number; anything else names no guild (and must
/// not activate an entity under a made-up key).
fn checked_id(id: String) -> Result<String, Answer> {
    let ok = id.len() <= 20 && id.starts_with('g') && id.len() > 1 && id[1..].bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(id)
    } else {
        Err(game_error(&GameError::GuildNotFound(id)))
    }
}

async fn profile(rt: &Runtime, player_id: &str) -> Result<PlayerView, Answer> {
    match call_player(rt, player_id, PlayerMsg::Get).await? {
        PlayerReply::Profile(p) => Ok(p),
        other => Err(Answer::err(Status::Internal, format!("unexpected player reply {other:?}"))),
    }
}

/// The caller's guild, as its record names it.
async fn own_guild(rt: &Runtime, player_id: &str) -> Result<String, Answer> {
    profile(rt, player_id).await?.guild.ok_or_else(|| game_error(&GameError::NotGuildMember(player_id.to_string())))
}

async fn call_guild(rt: &Runtime, id: &str, msg: GuildMsg) -> Result<GuildReply, Answer> {
    match rt.call::<Guild>(id, msg).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(game_error(&e)),
        Err(e) => Err(call_error(&e)),
    }
}

async fn call_directory(rt: &Runtime, msg: DirectoryMsg) -> Result<DirectoryReply, Answer> {
    match rt.call::<GuildDirectory>(DIRECTORY_KEY, msg).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(game_error(&e)),
        Err(e) => Err(call_error(&e)),
    }
}

fn role_pb(r: GuildRole) -> pb::GuildRole {
    match r {
        GuildRole::Member => pb::GuildRole::GuildMember,
        GuildRole::Officer => pb::GuildRole::GuildOfficer,
        GuildRole::Leader => pb::GuildRole::GuildLeader,
    }
}

pub fn summary_pb(s: &GuildSummary) -> pb::GuildSummary {
    pb::GuildSummary {
        guild_id: s.id.clone(),
        name: s.name.clone(),
        tag: s.tag.clone(),
        members: s.members,
        capacity: s.capacity,
        open: s.open,
        language: s.language.clone(),
        weekly_activity: s.activity,
    }
}

pub fn guild_pb(v: &GuildView) -> pb::Guild {
    pb::Guild {
        summary: Some(summary_pb(&v.summary)),
        description: v.description.clone(),
        members: v
            .members
            .iter()
            .map(|m| pb::GuildMember {
                player_id: m.player_id.clone(),
                role: role_pb(m.role) as i32,
                joined_at_ms: m.joined_at_ms,
            })
            .collect(),
        join_requests: v.join_requests.clone(),
        help: v.help.iter().map(help_pb).collect(),
    }
}

fn chat_pb(m: &ChatMessage) -> pb::GuildChatMessage {
    pb::GuildChatMessage { id: m.id, player_id: m.player_id.clone(), text: m.text.clone(), at_ms: m.at_ms }
}

fn help_pb(h: &HelpRequest) -> pb::GuildHelpRequest {
    pb::GuildHelpRequest {
        id: h.id,
        requester_id: h.requester.clone(),
        kind: h.kind,
        wanted: h.wanted,
        received: h.received,
        pledged: h.pledged,
        opened_at_ms: h.opened_at_ms,
        expires_at_ms: h.expires_at_ms,
        donors: h.donors.iter().map(|(p, n)| pb::GuildDonor { player_id: p.clone(), count: *n }).collect(),
    }
}

/// The protocol push of a guild event.
pub fn event_pb(e: GuildEvent) -> pb::event::Kind {
    use pb::event::Kind;
    match e {
        GuildEvent::MemberJoined { guild_id, player_id, role } => {
            Kind::GuildMemberJoined(pb::GuildMemberJoined { guild_id, player_id, role: role_pb(role) as i32 })
        }
        GuildEvent::MemberLeft { guild_id, player_id, kicked_by, new_leader } => {
            Kind::GuildMemberLeft(pb::GuildMemberLeft {
                guild_id,
                player_id,
                kicked_by: kicked_by.unwrap_or_default(),
                new_leader_id: new_leader.unwrap_or_default(),
            })
        }
        GuildEvent::RoleChanged { guild_id, player_id, role, by } => {
            Kind::GuildRoleChanged(pb::GuildRoleChanged { guild_id, player_id, role: role_pb(role) as i32, by })
        }
        GuildEvent::JoinRequested { guild_id, player_id } => {
            Kind::GuildJoinRequested(pb::GuildJoinRequested { guild_id, player_id })
        }
        GuildEvent::Chat { guild_id, message } => {
            Kind::GuildChat(pb::GuildChat { guild_id, message: Some(chat_pb(&message)) })
        }
        GuildEvent::HelpOpened { guild_id, request } => {
            Kind::GuildHelpOpened(pb::GuildHelpOpened { guild_id, request: Some(help_pb(&request)) })
        }
        GuildEvent::HelpDonated { guild_id, request, donor, count } => Kind::GuildHelpDonated(pb::GuildHelpDonated {
            guild_id,
            request: Some(help_pb(&request)),
            donor_id: donor,
            count,
        }),
        GuildEvent::HelpClosed { guild_id, request, reason } => {
            let reason = match reason {
                HelpClose::Filled => pb::GuildHelpCloseReason::HelpFilled,
                HelpClose::Expired => pb::GuildHelpCloseReason::HelpExpired,
                HelpClose::Left => pb::GuildHelpCloseReason::HelpRequesterLeft,
            };
            Kind::GuildHelpClosed(pb::GuildHelpClosed {
                guild_id,
                request: Some(help_pb(&request)),
                reason: reason as i32,
            })
        }
    }
}
