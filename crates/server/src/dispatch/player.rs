//! Player methods: profile, chests, upgrades, battles.

use bytes::Bytes;
use guildhall_entity::Runtime;
use guildhall_game::{CardView, Player, PlayerMsg, PlayerReply, PlayerView, Rarity};
use guildhall_protocol::{method, pb, Status};
use prost::Message;

use super::{call_error, decode, game_error};
use crate::session::Answer;

/// Methods of this module.
pub const METHODS: &[&str] = &[method::PLAYER_GET, method::OPEN_CHEST, method::UPGRADE_CARD, method::BATTLE];

pub async fn run(rt: &Runtime, player_id: &str, m: &str, payload: &[u8]) -> Result<Bytes, Answer> {
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
        PlayerReply::Profile(p) | PlayerReply::Applied(p) => {
            pb::GetPlayerResponse { player: Some(player_pb(&p)) }.encode_to_vec()
        }
        PlayerReply::LoggedIn { player, .. } => {
            pb::GetPlayerResponse { player: Some(player_pb(&player)) }.encode_to_vec()
        }
        PlayerReply::Chest { cards, gold } => {
            pb::OpenChestResponse { cards: cards.iter().map(card_pb).collect(), gold }.encode_to_vec()
        }
        PlayerReply::Upgraded { card, gold } => {
            pb::UpgradeCardResponse { card: Some(card_pb(&card)), gold }.encode_to_vec()
        }
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
pub async fn login_player(rt: &Runtime, player_id: &str) -> Result<(PlayerView, bool), Answer> {
    match call_player(rt, player_id, PlayerMsg::Login).await? {
        PlayerReply::LoggedIn { player, created } => Ok((player, created)),
        other => Err(Answer::err(Status::Internal, format!("unexpected login reply {other:?}"))),
    }
}

pub async fn call_player(rt: &Runtime, player_id: &str, msg: PlayerMsg) -> Result<PlayerReply, Answer> {
    match rt.call::<Player>(player_id, msg).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(game)) => Err(game_error(&game)),
        Err(call) => Err(call_error(&call)),
    }
}

pub(super) fn rarity_pb(r: Rarity) -> pb::Rarity {
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
        guild_id: p.guild.clone().unwrap_or_default(),
    }
}
