//! Guild methods: create, get, join, decide_join, leave, kick, promote,
//! demote, chat, help requests and donations, directory search and
//! recommendations. Each decodes, calls `guildhall_game::guild::ops`, and
//! encodes; the operations' steps are described there.

use bytes::Bytes;
use guildhall_entity::Runtime;
use guildhall_game::guild::directory::SearchQuery;
use guildhall_game::guild::{
    ops, ChatMessage, GuildError, GuildEvent, GuildInput, GuildRole, GuildSummary, GuildView, HelpClose, HelpRequest,
};
use guildhall_protocol::{method, pb, Status};
use prost::Message;

use super::player::player_pb;
use super::{decode, op_error};
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
    let me = player_id;
    let bytes = match m {
        method::GUILD_CREATE => {
            let req = decode::<pb::GuildCreateRequest>(payload)?;
            let input = GuildInput {
                name: req.name,
                tag: req.tag,
                language: req.language,
                open: req.open,
                description: req.description,
            };
            let (view, player) = ops::create(rt, me, input).await.map_err(op_error)?;
            pb::GuildCreateResponse { guild: Some(guild_pb(&view)), player: Some(player_pb(&player)) }.encode_to_vec()
        }
        method::GUILD_GET => {
            let req = decode::<pb::GuildGetRequest>(payload)?;
            let id = (!req.guild_id.is_empty()).then_some(req.guild_id.as_str());
            let view = ops::get(rt, me, id).await.map_err(op_error)?;
            pb::GuildGetResponse { guild: Some(guild_pb(&view)) }.encode_to_vec()
        }
        method::GUILD_JOIN => {
            let req = decode::<pb::GuildJoinRequest>(payload)?;
            let (joined, view) = ops::join(rt, me, &req.guild_id).await.map_err(op_error)?;
            pb::GuildJoinResponse { joined, guild: Some(guild_pb(&view)) }.encode_to_vec()
        }
        method::GUILD_DECIDE_JOIN => {
            let req = decode::<pb::GuildDecideJoinRequest>(payload)?;
            let view = ops::decide_join(rt, me, &req.player_id, req.approve).await.map_err(op_error)?;
            pb::GuildDecideJoinResponse { guild: Some(guild_pb(&view)) }.encode_to_vec()
        }
        method::GUILD_LEAVE => {
            decode::<pb::GuildLeaveRequest>(payload)?;
            let (new_leader, disbanded) = ops::leave(rt, me).await.map_err(op_error)?;
            pb::GuildLeaveResponse { new_leader_id: new_leader.unwrap_or_default(), disbanded }.encode_to_vec()
        }
        method::GUILD_KICK => {
            let req = decode::<pb::GuildKickRequest>(payload)?;
            let view = ops::kick(rt, me, &req.player_id).await.map_err(op_error)?;
            pb::GuildKickResponse { guild: Some(guild_pb(&view)) }.encode_to_vec()
        }
        method::GUILD_PROMOTE | method::GUILD_DEMOTE => {
            let req = decode::<pb::GuildSetRoleRequest>(payload)?;
            let promote = m == method::GUILD_PROMOTE;
            let view = ops::set_role(rt, me, &req.player_id, promote).await.map_err(op_error)?;
            pb::GuildSetRoleResponse { guild: Some(guild_pb(&view)) }.encode_to_vec()
        }
        method::GUILD_CHAT_POST => {
            let req = decode::<pb::GuildChatPostRequest>(payload)?;
            let message = ops::post_chat(rt, me, req.text).await.map_err(op_error)?;
            pb::GuildChatPostResponse { message: Some(chat_pb(&message)) }.encode_to_vec()
        }
        method::GUILD_CHAT_HISTORY => {
            let req = decode::<pb::GuildChatHistoryRequest>(payload)?;
            let messages = ops::chat_history(rt, me, req.limit as usize).await.map_err(op_error)?;
            pb::GuildChatHistoryResponse { messages: messages.iter().map(chat_pb).collect() }.encode_to_vec()
        }
        method::GUILD_HELP_ASK => {
            let req = decode::<pb::GuildHelpAskRequest>(payload)?;
            let request = ops::ask_help(rt, me, req.kind, req.count).await.map_err(op_error)?;
            pb::GuildHelpAskResponse { request: Some(help_pb(&request)) }.encode_to_vec()
        }
        method::GUILD_HELP_DONATE => {
            let req = decode::<pb::GuildHelpDonateRequest>(payload)?;
            let d = ops::donate(rt, me, &req.requester_id, req.count).await.map_err(op_error)?;
            pb::GuildHelpDonateResponse {
                donated: d.donated,
                reward_gold: d.reward_gold,
                request: Some(help_pb(&d.request)),
                player: d.donor.as_ref().map(player_pb),
            }
            .encode_to_vec()
        }
        method::GUILD_SEARCH => {
            let req = decode::<pb::GuildSearchRequest>(payload)?;
            let query = SearchQuery {
                prefix: req.prefix,
                open_only: req.open_only,
                has_room: req.has_room,
                language: req.language,
                min_members: req.min_members,
                max_members: req.max_members,
                limit: req.limit as usize,
            };
            let guilds = ops::search(rt, query).await.map_err(op_error)?;
            pb::GuildSearchResponse { guilds: guilds.iter().map(summary_pb).collect() }.encode_to_vec()
        }
        method::GUILD_RECOMMEND => {
            let req = decode::<pb::GuildRecommendRequest>(payload)?;
            let guilds = ops::recommend(rt, me, req.language, req.limit as usize).await.map_err(op_error)?;
            pb::GuildRecommendResponse { guilds: guilds.iter().map(summary_pb).collect() }.encode_to_vec()
        }
        other => return Err(Answer::err(Status::UnknownMethod, format!("unknown method {other:?}"))),
    };
    Ok(bytes.into())
}

/// The protocol status of each refusal of guilds and the directory.
pub(super) fn status(e: &GuildError) -> Status {
    match e {
        GuildError::GuildNotFound(_) => Status::GuildNotFound,
        GuildError::NotGuildMember(_) => Status::NotGuildMember,
        GuildError::NoGuildPermission(_) => Status::NoGuildPermission,
        GuildError::GuildFull(_) => Status::GuildFull,
        GuildError::AlreadyInGuild(_) => Status::AlreadyInGuild,
        GuildError::GuildNameTaken(_) => Status::GuildNameTaken,
        GuildError::GuildTagTaken(_) => Status::GuildTagTaken,
        GuildError::InvalidGuildInput(_) => Status::InvalidGuildInput,
        GuildError::JoinRequestNotFound(_) => Status::JoinRequestNotFound,
        GuildError::GuildRoleUnchanged(_) => Status::GuildRoleUnchanged,
        GuildError::ChatTooLong { .. } => Status::ChatTooLong,
        GuildError::ChatRateLimited { .. } => Status::ChatRateLimited,
        GuildError::HelpCooldown { .. } => Status::HelpCooldown,
        GuildError::HelpAlreadyOpen => Status::HelpAlreadyOpen,
        GuildError::HelpRequestClosed => Status::HelpRequestClosed,
        GuildError::CardNotRequestable(_) => Status::CardNotRequestable,
        GuildError::CannotDonateToSelf => Status::CannotDonateToSelf,
        // The step completes later (from the guild's tick): retry reads.
        GuildError::GuildRetryLater(_) => Status::Unavailable,
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
