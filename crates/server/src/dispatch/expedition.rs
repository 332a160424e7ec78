//! Expedition methods: status and sign-up.

use bytes::Bytes;
use guildhall_entity::Runtime;
use guildhall_game::expedition::{ops, ExpeditionEvent, Standing};
use guildhall_game::ExpeditionError;
use guildhall_protocol::{method, pb, Status};
use prost::Message;

use super::{decode, op_error};
use crate::session::Answer;

/// Methods of this module.
pub const METHODS: &[&str] = &[method::EXPEDITION_GET, method::EXPEDITION_SIGNUP];

pub async fn run(rt: &Runtime, player_id: &str, m: &str, payload: &[u8]) -> Result<Bytes, Answer> {
    let bytes = match m {
        method::EXPEDITION_GET => {
            decode::<pb::ExpeditionStatusRequest>(payload)?;
            let s = ops::status(rt, player_id).await.map_err(op_error)?;
            pb::ExpeditionStatusResponse {
                period: s.period,
                ends_at_ms: s.ends_at_ms,
                signed_up: s.signed_up,
                standings: standings_pb(&s.standings),
                last_results: standings_pb(&s.last_results),
            }
            .encode_to_vec()
        }
        method::EXPEDITION_SIGNUP => {
            decode::<pb::ExpeditionSignUpRequest>(payload)?;
            let (period, bracket) = ops::sign_up(rt, player_id).await.map_err(op_error)?;
            pb::ExpeditionSignUpResponse { period, bracket }.encode_to_vec()
        }
        other => return Err(Answer::err(Status::UnknownMethod, format!("unknown method {other:?}"))),
    };
    Ok(bytes.into())
}

/// The protocol status of each refusal of the expedition.
pub(super) fn status(e: &ExpeditionError) -> Status {
    match e {
        ExpeditionError::NoGuild => Status::ExpeditionNoGuild,
        ExpeditionError::NotOfficer => Status::ExpeditionNotOfficer,
    }
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
