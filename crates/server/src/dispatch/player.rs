//! Player methods: profile, chests, upgrades, battles.

use bytes::Bytes;
use guildhall_entity::Runtime;
use guildhall_game::player::ops;
use guildhall_game::{CardView, PlayerError, PlayerMsg, PlayerReply, PlayerView, Rarity};
use guildhall_protocol::{method, pb, Status};
use prost::Message;

use super::{decode, op_error};
use crate::session::Answer;

/// Methods of this module.
pub const METHODS: &[&str] = &[method::PLAYER_GET, method::OPEN_CHEST, method::UPGRADE_CARD, method::BATTLE];

pub async fn run(rt: &Runtime, player_id: &str, m: &str, payload: &[u8]) -> Result<Bytes, Answer> {
    let msg = match m {
        method::PLAYER_GET => {
            decode::<pb::GetPlayerRequest>(payload)?;
            PlayerMsg::Get
        }
        method::OPEN_CHEST => {
            decode::<pb::OpenChestRequest>(payload)?;
            PlayerMsg::OpenChest
        }
        method::UPGRADE_CARD => PlayerMsg::UpgradeCard { kind: decode::<pb::UpgradeCardRequest>(payload)?.kind },
        method::BATTLE => {
            decode::<pb::BattleRequest>(payload)?;
            PlayerMsg::Battle
        }
        other => return Err(Answer::err(Status::UnknownMethod, format!("unknown method {other:?}"))),
    };
    let reply = ops::act(rt, player_id, msg).await.map_err(op_error)?;
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
        // Not the answer of a player method; a logout answers so.
        PlayerReply::TokensRevoked { .. } => pb::LogoutResponse {}.encode_to_vec(),
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
pub async fn login_player(rt: &Runtime, player_id: &str, token_generation: Option<u64>) -> Result<ops::Login, Answer> {
    ops::login(rt, player_id, token_generation).await.map_err(op_error)
}

/// Revokes the player's session tokens (a logout).
pub async fn revoke_tokens(rt: &Runtime, player_id: &str) -> Result<u64, Answer> {
    ops::revoke_tokens(rt, player_id).await.map_err(op_error)
}

/// The protocol status of each refusal of a player's action.
pub(super) fn status(e: &PlayerError) -> Status {
    match e {
        PlayerError::NotEnoughGold { .. } => Status::NotEnoughGold,
        PlayerError::NotEnoughGems { .. } => Status::NotEnoughGems,
        PlayerError::NotEnoughMana { .. } => Status::NotEnoughMana,
        PlayerError::NotEnoughCards { .. } => Status::NotEnoughCards,
        PlayerError::UnknownCard(_) => Status::UnknownCard,
        PlayerError::MaxLevel(_) => Status::MaxLevel,
        PlayerError::TokenRevoked => Status::TokenRevoked,
        PlayerError::Banned { .. } => Status::Banned,
        // Only an operator's ban of an unknown id meets this.
        PlayerError::NoSuchPlayer => Status::BadRequest,
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
