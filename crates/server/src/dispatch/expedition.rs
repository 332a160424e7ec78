//! Expedition methods: status and sign-up.

use bytes::Bytes;
use guildhall_entity::Runtime;
use guildhall_game::expedition::{Expedition, ExpeditionEvent, ExpeditionMsg, ExpeditionReply, Standing, SEASON};
use guildhall_game::guild::{Guild, GuildMsg, GuildReply, GuildRole};
use guildhall_game::{GameError, PlayerMsg, PlayerReply};
use guildhall_protocol::{method, pb, Status};
use prost::Message;

use super::player::call_player;
use super::{call_error, decode, game_error};
use crate::session::Answer;

/// Methods of this module.
pub const METHODS: &[&str] = &[method::EXPEDITION_GET, method::EXPEDITION_SIGNUP];

pub async fn run(rt: &Runtime, player_id: &str, m: &str, payload: &[u8]) -> Result<Bytes, Answer> {
    let guild = match call_player(rt, player_id, PlayerMsg::Get).await? {
        PlayerReply::Profile(p) => p.guild,
        other => return Err(Answer::err(Status::Internal, format!("unexpected reply {other:?}"))),
    };
    let bytes = match m {
        method::EXPEDITION_GET => {
            decode::<pb::ExpeditionStatusRequest>(payload)?;
            match call(rt, ExpeditionMsg::Status { guild }).await? {
                ExpeditionReply::Status(s) => pb::ExpeditionStatusResponse {
                    period: s.period,
                    ends_at_ms: s.ends_at_ms,
                    signed_up: s.signed_up,
                    standings: standings_pb(&s.standings),
                    last_results: standings_pb(&s.last_results),
                }
                .encode_to_vec(),
                other => return Err(unexpected(other)),
            }
        }
        method::EXPEDITION_SIGNUP => {
            decode::<pb::ExpeditionSignUpRequest>(payload)?;
            let guild = guild.ok_or_else(|| game_error(&GameError::NoGuild))?;
            require_officer(rt, &guild, player_id).await?;
            match call(rt, ExpeditionMsg::SignUp { guild }).await? {
                ExpeditionReply::SignedUp { period, bracket } => {
                    pb::ExpeditionSignUpResponse { period, bracket }.encode_to_vec()
                }
                other => return Err(unexpected(other)),
            }
        }
        other => return Err(Answer::err(Status::UnknownMethod, format!("unknown method {other:?}"))),
    };
    Ok(bytes.into())
}

/// Only the leader or an officer signs the guild up.
async fn require_officer(rt: &Runtime, guild: &str, player_id: &str) -> Result<(), Answer> {
    let view = match rt.call::<Guild>(guild, GuildMsg::Get { viewer: player_id.to_string() }).await {
        Ok(Ok(GuildReply::View(view))) => view,
        Ok(Ok(other)) => return Err(Answer::err(Status::Internal, format!("unexpected guild reply {other:?}"))),
        Ok(Err(e)) => return Err(game_error(&e)),
        Err(e) => return Err(call_error(&e)),
    };
    match view.members.iter().find(|m| m.player_id == player_id) {
        Some(m) if m.role >= GuildRole::Officer => Ok(()),
        Some(_) => Err(game_error(&GameError::NotOfficer)),
        None => Err(game_error(&GameError::NoGuild)),
    }
}

async fn call(rt: &Runtime, msg: ExpeditionMsg) -> Result<ExpeditionReply, Answer> {
    match rt.call::<Expedition>(SEASON, msg).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(game_error(&e)),
        Err(e) => Err(call_error(&e)),
    }
}

fn unexpected(reply: ExpeditionReply) -> Answer {
    Answer::err(Status::Internal, format!("unexpected expedition reply {reply:?}"))
}

pub fn standings_pb(s: &[Standing]) -> Vec<pb::Standing> {
    s.iter().map(|s| pb::Standing { guild_id: s.guild.clone(), points: s.points, rank: s.rank }).collect()
}

pub fn event_pb(e: ExpeditionEvent) -> pb::event::Kind {
    match e {
        ExpeditionEvent::Standings { period, ends_at_ms, standings } => {
            pb::event::Kind::ExpeditionStandings(pb::ExpeditionStandings {
                period,
                ends_at_ms,
                standings: standings_pb(&standings),
            })
        }
        ExpeditionEvent::Ended { period, standings } => {
            pb::event::Kind::ExpeditionEnded(pb::ExpeditionEnded { period, standings: standings_pb(&standings) })
        }
    }
}
