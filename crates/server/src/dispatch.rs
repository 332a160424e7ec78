//! The wire edge: decodes a request's protobuf payload, calls the game's
//! entities with domain messages, and encodes the domain reply back to
//! protobuf. The only place where protobuf types and game types meet.

use bytes::Bytes;
use guildhall_entity::{CallError, Event, Runtime};
use guildhall_game::{CardView, GameError, GameEvent, Player, PlayerMsg, PlayerReply, PlayerView, Rarity};
use guildhall_protocol::{method, pb, Status};
use prost::Message;

use crate::session::Answer;

/// Methods that need a session and run through [`dispatch`].
pub fn is_game_method(m: &str) -> bool {
    matches!(m, method::PLAYER_GET | method::OPEN_CHEST | method::UPGRADE_CARD | method::BATTLE)
}

/// A bounded label for metrics: known methods by name, anything else "other".
pub fn metric_name(m: &str) -> &'static str {
    method::ALL.iter().find(|k| **k == m).copied().unwrap_or("other")
}

/// Runs one game request for `player_id`.
pub async fn dispatch(rt: &Runtime, player_id: &str, m: &str, payload: &[u8]) -> Answer {
    match run(rt, player_id, m, payload).await {
        Ok(bytes) => Answer::ok(bytes),
        Err(answer) => answer,
    }
}

async fn run(rt: &Runtime, player_id: &str, m: &str, payload: &[u8]) -> Result<Bytes, Answer> {
    let reply = match m {
        method::PLAYER_GET => {
            decode::<pb::GetPlayerRequest>(payload)?;
            call_player(rt, player_id, PlayerMsg::Get).await?
        }
        method::OPEN_CHEST => {
            decode::<pb::OpenChestRequest>(payload)?;
            call_player(rt, player_id, PlayerMsg::OpenChest).await?
        }
        method::UPGRADE_CARD => {
            let req = decode::<pb::UpgradeCardRequest>(payload)?;
            call_player(rt, player_id, PlayerMsg::UpgradeCard { kind: req.kind }).await?
        }
        method::BATTLE => {
            decode::<pb::BattleRequest>(payload)?;
            call_player(rt, player_id, PlayerMsg::Battle).await?
        }
        other => return Err(Answer::err(Status::UnknownMethod, format!("unknown method {other:?}"))),
    };
    Ok(encode_reply(reply))
}

fn encode_reply(reply: PlayerReply) -> Bytes {
    let bytes = match reply {
        PlayerReply::Profile(p) => pb::GetPlayerResponse { player: Some(player_pb(&p)) }.encode_to_vec(),
        PlayerReply::LoggedIn { player, .. } => pb::GetPlayerResponse { player: Some(player_pb(&player)) }.encode_to_vec(),
        PlayerReply::Chest { cards, gold } => {
            pb::OpenChestResponse { cards: cards.iter().map(card_pb).collect(), gold }.encode_to_vec()
        }
        PlayerReply::Upgraded { card, gold } => pb::UpgradeCardResponse { card: Some(card_pb(&card)), gold }.encode_to_vec(),
        PlayerReply::Battle { won, gold_earned, experience_earned, points, leveled_up, player } => pb::BattleResponse {
            won,
            gold_earned,
            experience_earned,
            points,
            leveled_up,
            player: Some(player_pb(&player)),
        }
        .encode_to_vec(),
    };
    bytes.into()
}

/// Logs a player in: activates (or creates) it and returns its state.
pub async fn login_player(rt: &Runtime, player_id: &str) -> Result<(pb::Player, bool), Answer> {
    match call_player(rt, player_id, PlayerMsg::Login).await? {
        PlayerReply::LoggedIn { player, created } => Ok((player_pb(&player), created)),
        other => Err(Answer::err(Status::Internal, format!("unexpected login reply {other:?}"))),
    }
}

async fn call_player(rt: &Runtime, player_id: &str, msg: PlayerMsg) -> Result<PlayerReply, Answer> {
    match rt.call::<Player>(player_id, msg).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(game)) => Err(game_error(&game)),
        Err(call) => Err(call_error(&call)),
    }
}

fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, Answer> {
    M::decode(payload).map_err(|e| {
        let name = std::any::type_name::<M>().rsplit("::").next().unwrap_or("payload");
        Answer::err(Status::BadRequest, format!("{name} does not decode: {e}"))
    })
}

/// The documented status of each game refusal.
pub fn game_error(e: &GameError) -> Answer {
    let status = match e {
        GameError::NotEnoughGold { .. } => Status::NotEnoughGold,
        GameError::NotEnoughGems { .. } => Status::NotEnoughGems,
        GameError::NotEnoughMana { .. } => Status::NotEnoughMana,
        GameError::NotEnoughCards { .. } => Status::NotEnoughCards,
        GameError::UnknownCard(_) => Status::UnknownCard,
        GameError::MaxLevel(_) => Status::MaxLevel,
    };
    Answer::err(status, e.to_string())
}

fn call_error(e: &CallError) -> Answer {
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

fn rarity_pb(r: Rarity) -> pb::Rarity {
    match r {
        Rarity::Common => pb::Rarity::Common,
        Rarity::Rare => pb::Rarity::Rare,
        Rarity::Epic => pb::Rarity::Epic,
        Rarity::Legendary => pb::Rarity::Legendary,
    }
}

pub fn card_pb(c: &CardView) -> pb::Card {
    pb::Card { kind: c.kind, name: c.name.clone(), rarity: rarity_pb(c.rarity) as i32, count: c.count, level: c.level }
}

pub fn player_pb(p: &PlayerView) -> pb::Player {
    pb::Player {
        player_id: p.player_id.clone(),
        gold: p.gold,
        gems: p.gems,
        mana: p.mana,
        mana_cap: p.mana_cap,
        level: p.level,
        experience: p.experience,
        cards: p.cards.iter().map(card_pb).collect(),
        chests_opened: p.chests_opened,
        battles: p.battles,
        wins: p.wins,
        next_mana_at_ms: p.next_mana_at_ms,
    }
}

/// Converts a published game event into the payload of a push.
pub fn event_to_push(event: &Event) -> Option<pb::Event> {
    let game = match GameEvent::decode(&event.payload) {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(topic = %event.topic, error = %e, "undecodable event dropped");
            return None;
        }
    };
    let kind = match game {
        GameEvent::PlayerUpdated(p) => pb::event::Kind::PlayerUpdated(pb::PlayerUpdated { player: Some(player_pb(&p)) }),
        GameEvent::Notice { text } => pb::event::Kind::Notice(pb::Notice { text }),
    };
    Some(pb::Event { kind: Some(kind) })
}
