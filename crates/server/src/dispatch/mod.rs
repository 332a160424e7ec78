//! The wire edge: decodes a request's protobuf payload, calls the game's
//! entities with domain messages, and encodes the domain reply back to
//! protobuf. The only place where protobuf types and game types meet.
//!
//! One module per area of the game; each exports `METHODS`, `run` (decode,
//! call the area's operations in `guildhall_game`, encode), `status` (the
//! protocol status of each of the area's refusals) and `event_pb`. The
//! game's multi-step operations live in the game crate, where any caller
//! (this edge, an admin console, another node) runs the same code.

mod expedition;
mod guild;
mod market;
mod player;

pub use player::{login_player, player_pb, revoke_tokens};

use guildhall_entity::{CallError, Event, Runtime};
use guildhall_game::op::OpError;
use guildhall_game::{GameError, GameEvent};
use guildhall_protocol::{method, pb, PushBody, Status};
use prost::Message;

use std::sync::Arc;

use crate::session::{Answer, Delivery, Resubscribe, Session};

/// Methods that need a session and run through [`dispatch`].
pub fn is_game_method(m: &str) -> bool {
    player::METHODS.contains(&m)
        || guild::METHODS.contains(&m)
        || market::METHODS.contains(&m)
        || expedition::METHODS.contains(&m)
}

/// A bounded label for metrics: known methods by name, anything else "other".
pub fn metric_name(m: &str) -> &'static str {
    method::ALL.iter().find(|k| **k == m).copied().unwrap_or("other")
}

/// Runs one game request of `session`'s player. Areas that stream (market
/// offers) may change the session's subscriptions with
/// `session.resubscribe(slot, topic, rt, deliver_event)`.
pub async fn dispatch(rt: &Runtime, session: &Arc<Session>, m: &str, payload: &[u8]) -> Answer {
    let player_id: &str = &session.player_id;
    let result = if player::METHODS.contains(&m) {
        player::run(rt, player_id, m, payload).await
    } else if guild::METHODS.contains(&m) {
        guild::run(rt, player_id, m, payload).await
    } else if market::METHODS.contains(&m) {
        market::run(rt, session, m, payload).await
    } else if expedition::METHODS.contains(&m) {
        expedition::run(rt, player_id, m, payload).await
    } else {
        Err(Answer::err(Status::UnknownMethod, format!("unknown method {m:?}")))
    };
    match result {
        Ok(bytes) => Answer::ok(bytes),
        Err(answer) => answer,
    }
}

pub(crate) fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, Answer> {
    M::decode(payload).map_err(|e| {
        let name = std::any::type_name::<M>().rsplit("::").next().unwrap_or("payload");
        Answer::err(Status::BadRequest, format!("{name} does not decode: {e}"))
    })
}

/// The documented status of each game refusal.
pub fn game_error(e: &GameError) -> Answer {
    let status = match e {
        GameError::Player(e) => player::status(e),
        GameError::Guild(e) => guild::status(e),
        GameError::Market(e) => market::status(e),
        GameError::Expedition(e) => expedition::status(e),
    };
    Answer::err(status, e.to_string())
}

/// The answer to an operation that did not complete.
pub(crate) fn op_error(e: OpError) -> Answer {
    match e {
        OpError::Refused(game) => game_error(&game),
        OpError::Call(call) => call_error(&call),
        OpError::InProgress(why) => Answer::err(Status::Unavailable, why),
        OpError::Unexpected(what) => {
            tracing::error!(what, "an entity answered with an unexpected reply");
            Answer::err(Status::Internal, format!("unexpected reply: {what}"))
        }
    }
}

pub(crate) fn call_error(e: &CallError) -> Answer {
    if let CallError::BadKey(_) = e {
        // A client's made-up id, not a fault: no log line.
        return Answer::err(Status::BadRequest, e.to_string());
    }
    tracing::warn!(error = %e, "entity call failed");
    let status = match e {
        CallError::Timeout | CallError::Unreachable(_) | CallError::Stopped | CallError::ShuttingDown => {
            Status::Unavailable
        }
        CallError::Persist { stale: true, .. } => Status::Unavailable,
        _ => Status::Internal,
    };
    Answer::err(status, format!("{e}; retry later"))
}

/// Turns a published game event into what a session does with it: usually a
/// push; for a guild change also a new guild subscription.
pub fn deliver_event(event: &Event) -> Delivery {
    let game = match GameEvent::decode(&event.payload) {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(topic = %event.topic, error = %e, "undecodable event dropped");
            return Delivery::default();
        }
    };
    let mut resubscribe = None;
    let kind = match game {
        GameEvent::PlayerUpdated(p) => {
            pb::event::Kind::PlayerUpdated(pb::PlayerUpdated { player: Some(player_pb(&p)) })
        }
        GameEvent::Notice { text } => pb::event::Kind::Notice(pb::Notice { text }),
        GameEvent::GuildChanged { guild } => {
            resubscribe = Some(Resubscribe { slot: "guild", topic: guild.as_deref().map(guildhall_game::guild_topic) });
            pb::event::Kind::GuildChanged(pb::GuildChanged { guild_id: guild.unwrap_or_default() })
        }
        GameEvent::Guild(e) => guild::event_pb(e),
        GameEvent::Market(event) => market::event_pb(event),
        GameEvent::Expedition(e) => expedition::event_pb(e),
    };
    // Encoded here, once per event: every subscribed session shares it.
    Delivery { push: Some(PushBody::encode(&event.topic, &pb::Event { kind: Some(kind) })), resubscribe }
}
