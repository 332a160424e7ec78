//! The player entity: currencies, mana, experience, the card collection, and
//! the solo actions (open a chest, upgrade a card, battle).

mod cards;
mod error;
pub mod ops;
mod remembered;
mod snapshot_form;

pub use cards::CardStack;
pub use error::PlayerError;
pub use remembered::Remembered;

use crate::GuildError;
use std::collections::BTreeMap;

use guildhall_entity::{Ctx, Entity};
use serde::{Deserialize, Serialize};

use crate::catalogue::{card_def, kinds_of};
use crate::rng::SplitMix64;
use crate::rules::*;
use crate::txkey::TxKey;
use crate::{player_topic, GameError, GameEvent, Rarity};

/// Totals the rules have created or destroyed through this player, so that an
/// audit can check that value is conserved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub gold_minted: u64,
    pub gold_burnt: u64,
    pub gems_minted: u64,
    pub cards_minted: u64,
    pub cards_burnt: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Player {
    pub id: String,
    pub created_at_ms: u64,
    pub gold: u64,
    pub gems: u64,
    /// Mana at `mana_at_ms`; the current value adds what regenerated since.
    pub mana: u32,
    pub mana_at_ms: u64,
    pub level: u32,
    pub experience: u64,
    /// Stored compactly (`snapshot_form`).
    #[serde(with = "self::snapshot_form::cards")]
    pub cards: BTreeMap<u32, CardStack>,
    pub rng: SplitMix64,
    pub chests_opened: u64,
    pub battles: u64,
    pub wins: u64,
    #[serde(default)]
    pub expedition_points: u64,
    #[serde(default)]
    pub ledger: Ledger,
    /// Logins so far; the first one reports the player as created.
    #[serde(default)]
    pub logins: u64,
    /// The guild this player belongs to, as the guild last told it.
    #[serde(default)]
    pub guild: Option<String>,
    /// Generation of the player's session tokens: a token names the
    /// generation it was issued in, and a login with an older one is
    /// refused. A logout (or a ban) moves it on, which revokes every token
    /// issued before without a list of them.
    #[serde(default)]
    pub token_generation: u64,
    /// Why an operator banned the player, while the ban lasts: a banned
    /// player cannot log in, with a device id or a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned: Option<String>,
    /// Outcomes of recent transaction steps, by transaction id (hashed:
    /// [`TxKey`]), so that a retried step returns its first outcome and never
    /// applies twice. Stored as parts, one a step ([`Remembered`]); an
    /// older snapshot's inline list is read and moved.
    #[serde(default, skip_serializing, deserialize_with = "self::remembered::from_inline")]
    pub applied: Remembered,
}

/// How many transaction outcomes a player remembers. A hub retries an
/// unfinished step on its next tick (a market's within a second, a guild's
/// within 5 s, or at once after a restart), so a step is never retried
/// after more than a handful of the player's other steps: the standard
/// profile makes ~1,200 steps a second over 19,500 players, one a minute
/// each, and a busy player a few a second. 32 is a wide margin; 128 was
/// too, but filled over a long run it was 2 KiB of every player's memory
/// and 3 KB of every snapshot (docs/bench-log/scaling-rounds.md, "Long runs").
pub const REMEMBERED_TXS: usize = 32;

/// What a transaction step does to a player's holdings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub gold: i64,
    pub gems: i64,
    /// (card kind, copies): negative takes copies, positive gives them.
    pub cards: Vec<(u32, i64)>,
    pub kind: ChangeKind,
}

/// Where the value of a [`Change`] comes from or goes, for the audit ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// Value moves between entities (into or out of an escrow): the total in
    /// the world does not change.
    #[default]
    Transfer,
    /// The rules create value (donation rewards, expedition prizes).
    Reward,
    /// The rules destroy value (fees).
    Burn,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PlayerMsg {
    /// A session opens for this player: with the generation of the token
    /// it logs in with, if any (a stale one is refused).
    Login {
        token_generation: Option<u64>,
    },
    /// Revokes every session token issued so far (logout, ban).
    RevokeTokens,
    /// An operator bans the player (with the reason the player is told):
    /// logins are refused and every token is revoked. Refused for a player
    /// that never logged in, so that a mistyped id creates no account.
    Ban {
        reason: String,
    },
    /// An operator lifts a ban.
    Unban,
    Get,
    /// One step of a cross-entity transaction, applied at most once per `tx`
    /// and durable before the reply. `notify` pushes the new state (and the
    /// notice, if any) to the player's session: set it when the change comes
    /// from someone else (a sale, a donation, a prize).
    Apply {
        tx: String,
        change: Change,
        notify: bool,
        notice: Option<String>,
    },
    /// The guild hub tells the player which guild it is in.
    SetGuild {
        guild: Option<String>,
    },
    /// A guild claims the player before listing it as a member: granted only
    /// if the player is in no guild (or already in this one). The player's
    /// record is the one authority, so two guilds can never both admit it.
    ClaimGuild {
        guild: String,
    },
    /// A guild lets the player go: cleared only if the player is still in
    /// that guild (a late release never undoes a newer membership).
    ReleaseGuild {
        guild: String,
    },
    OpenChest,
    UpgradeCard {
        kind: u32,
    },
    Battle,
}

/// A card as shown to the player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardView {
    pub kind: u32,
    pub name: String,
    pub rarity: Rarity,
    pub count: u32,
    pub level: u32,
}

/// The player as shown to the player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerView {
    pub player_id: String,
    pub gold: u64,
    pub gems: u64,
    pub mana: u32,
    pub mana_cap: u32,
    pub next_mana_at_ms: u64,
    pub level: u32,
    pub experience: u64,
    pub cards: Vec<CardView>,
    pub chests_opened: u64,
    pub battles: u64,
    pub wins: u64,
    pub guild: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlayerReply {
    Applied(PlayerView),
    Profile(PlayerView),
    /// `token_generation` is the one to put in the session's token.
    LoggedIn {
        player: PlayerView,
        created: bool,
        token_generation: u64,
    },
    TokensRevoked {
        token_generation: u64,
    },
    Chest {
        cards: Vec<CardView>,
        gold: u64,
    },
    Upgraded {
        card: CardView,
        gold: u64,
    },
    Battle {
        won: bool,
        gold_earned: u64,
        experience_earned: u64,
        points: u32,
        leveled_up: bool,
        player: PlayerView,
    },
}

fn card_view(kind: u32, stack: CardStack) -> CardView {
    // A kind the catalogue lost (a bad snapshot) still shows, unnamed.
    let (name, rarity) = card_def(kind).map_or(("?", Rarity::Common), |d| (d.name, d.rarity));
    CardView { kind, name: name.to_string(), rarity, count: stack.count, level: stack.level }
}

impl Player {
    /// A new player: starting currencies, full mana, one copy of three commons.
    pub fn new(id: &str, now_ms: u64) -> Self {
        let cards = (0..3).map(|k| (k, CardStack { count: 1, level: 1 })).collect();
        Player {
            id: id.to_string(),
            created_at_ms: now_ms,
            gold: START_GOLD,
            gems: START_GEMS,
            mana: MANA_CAP,
            mana_at_ms: now_ms,
            level: 1,
            experience: 0,
            cards,
            rng: SplitMix64::seeded_from(id),
            chests_opened: 0,
            battles: 0,
            wins: 0,
            expedition_points: 0,
            ledger: Ledger { gold_minted: START_GOLD, gems_minted: START_GEMS, cards_minted: 3, ..Ledger::default() },
            logins: 0,
            guild: None,
            token_generation: 0,
            banned: None,
            applied: Remembered::default(),
        }
    }

    /// Mana now, with what regenerated since `mana_at_ms`.
    pub fn mana_now(&self, now_ms: u64) -> u32 {
        if self.mana >= MANA_CAP {
            return self.mana;
        }
        let gained = now_ms.saturating_sub(self.mana_at_ms) / MANA_REGEN_MS;
        (self.mana as u64 + gained).min(MANA_CAP as u64) as u32
    }

    /// Folds regenerated mana into `mana`, keeping partial progress towards
    /// the next point.
    fn settle_mana(&mut self, now_ms: u64) {
        let mana = self.mana_now(now_ms);
        if mana >= MANA_CAP {
            self.mana_at_ms = now_ms;
        } else {
            self.mana_at_ms += (mana - self.mana) as u64 * MANA_REGEN_MS;
        }
        self.mana = mana;
    }

    pub fn view(&self, now_ms: u64) -> PlayerView {
        let mana = self.mana_now(now_ms);
        let next_mana_at_ms = if mana >= MANA_CAP {
            0
        } else {
            let regen_from = self.mana_at_ms + (mana - self.mana) as u64 * MANA_REGEN_MS;
            regen_from + MANA_REGEN_MS
        };
        PlayerView {
            player_id: self.id.clone(),
            gold: self.gold,
            gems: self.gems,
            mana,
            mana_cap: MANA_CAP,
            next_mana_at_ms,
            level: self.level,
            experience: self.experience,
            cards: self.cards.iter().map(|(k, s)| card_view(*k, *s)).collect(),
            chests_opened: self.chests_opened,
            battles: self.battles,
            wins: self.wins,
            guild: self.guild.clone(),
        }
    }

    /// The remembered outcome of transaction step `tx`, if it was applied.
    pub fn outcome_of(&self, tx: &str) -> Option<Result<(), GameError>> {
        self.applied.outcome_of(TxKey::of(tx))
    }

    /// Applies `change` unless it would take more than the player has; all
    /// or nothing. Does not remember `tx`: see [`Player::apply_once`].
    pub fn apply(&mut self, change: &Change) -> Result<(), GameError> {
        let gold = self.gold as i64 + change.gold;
        if gold < 0 {
            return Err(PlayerError::NotEnoughGold { need: (-change.gold) as u64, have: self.gold }.into());
        }
        let gems = self.gems as i64 + change.gems;
        if gems < 0 {
            return Err(PlayerError::NotEnoughGems { need: (-change.gems) as u64, have: self.gems }.into());
        }
        for (kind, n) in &change.cards {
            if card_def(*kind).is_none() {
                return Err(PlayerError::UnknownCard(*kind).into());
            }
            let have = self.cards.get(kind).map_or(0, |s| s.count) as i64;
            if have + n < 0 {
                return Err(PlayerError::NotEnoughCards { kind: *kind, need: (-n) as u32, have: have as u32 }.into());
            }
        }
        self.gold = gold as u64;
        self.gems = gems as u64;
        for (kind, n) in &change.cards {
            let stack = self.cards.entry(*kind).or_insert(CardStack { count: 0, level: 1 });
            stack.count = (stack.count as i64 + n) as u32;
        }
        let cards: i64 = change.cards.iter().map(|(_, n)| n).sum();
        match change.kind {
            ChangeKind::Transfer => {}
            ChangeKind::Reward => {
                self.ledger.gold_minted += change.gold.max(0) as u64;
                self.ledger.gems_minted += change.gems.max(0) as u64;
                self.ledger.cards_minted += cards.max(0) as u64;
            }
            ChangeKind::Burn => {
                self.ledger.gold_burnt += (-change.gold).max(0) as u64;
                self.ledger.cards_burnt += (-cards).max(0) as u64;
            }
        }
        Ok(())
    }

    /// Applies transaction step `tx` at most once: a repeat returns the
    /// first outcome (success or refusal) without touching anything.
    pub fn apply_once(&mut self, tx: &str, change: &Change) -> Result<(), GameError> {
        if let Some(outcome) = self.outcome_of(tx) {
            return outcome;
        }
        let outcome = self.apply(change);
        self.applied.remember(TxKey::of(tx), outcome.clone());
        outcome
    }

    /// Opens a chest: pays gold, draws cards from the player's own generator.
    pub fn open_chest(&mut self) -> Result<Vec<CardView>, GameError> {
        if self.gold < CHEST_COST_GOLD {
            return Err(PlayerError::NotEnoughGold { need: CHEST_COST_GOLD, have: self.gold }.into());
        }
        self.gold -= CHEST_COST_GOLD;
        self.ledger.gold_burnt += CHEST_COST_GOLD;
        self.chests_opened += 1;
        let mut drawn = Vec::with_capacity(CHEST_CARDS);
        for _ in 0..CHEST_CARDS {
            let kind = self.draw_kind();
            let stack = self.cards.entry(kind).or_insert(CardStack { count: 0, level: 1 });
            stack.count += 1;
            self.ledger.cards_minted += 1;
            drawn.push(card_view(kind, CardStack { count: 1, level: stack.level }));
        }
        Ok(drawn)
    }

    fn draw_kind(&mut self) -> u32 {
        let total: u64 = CHEST_RARITY_WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.below(total);
        let mut rarity = Rarity::Common;
        for (r, w) in CHEST_RARITY_WEIGHTS {
            if roll < *w {
                rarity = *r;
                break;
            }
            roll -= w;
        }
        let pool: Vec<u32> = kinds_of(rarity).map(|c| c.kind).collect();
        pool[self.rng.below(pool.len() as u64) as usize]
    }

    /// Spends copies of a card and gold to raise its level by one.
    pub fn upgrade_card(&mut self, kind: u32) -> Result<CardView, GameError> {
        if card_def(kind).is_none() {
            return Err(PlayerError::UnknownCard(kind).into());
        }
        let stack = self.cards.get(&kind).copied().unwrap_or(CardStack { count: 0, level: 1 });
        if stack.level >= MAX_CARD_LEVEL {
            return Err(PlayerError::MaxLevel(kind).into());
        }
        let copies = upgrade_copies(stack.level);
        // The card being upgraded is one copy that stays; the others are spent.
        if stack.count < copies + 1 {
            return Err(PlayerError::NotEnoughCards { kind, need: copies + 1, have: stack.count }.into());
        }
        let gold = upgrade_gold(stack.level);
        if self.gold < gold {
            return Err(PlayerError::NotEnoughGold { need: gold, have: self.gold }.into());
        }
        self.gold -= gold;
        self.ledger.gold_burnt += gold;
        self.ledger.cards_burnt += copies as u64;
        let upgraded = CardStack { count: stack.count - copies, level: stack.level + 1 };
        self.cards.insert(kind, upgraded);
        Ok(card_view(kind, upgraded))
    }

    /// Sum of the levels of the eight best cards.
    pub fn deck_power(&self) -> u32 {
        let mut levels: Vec<u32> = self.cards.values().map(|s| s.level).collect();
        levels.sort_unstable_by(|a, b| b.cmp(a));
        levels.iter().take(8).sum()
    }

    /// Fights one battle: spends mana; a win earns more gold, experience and
    /// expedition points than a loss. Returns (won, gold, xp, points, leveled_up).
    pub fn battle(&mut self, now_ms: u64) -> Result<(bool, u64, u64, u32, bool), GameError> {
        self.settle_mana(now_ms);
        if self.mana < BATTLE_MANA_COST {
            return Err(PlayerError::NotEnoughMana { need: BATTLE_MANA_COST, have: self.mana }.into());
        }
        if self.mana >= MANA_CAP {
            // Regeneration starts when mana drops below the cap.
            self.mana_at_ms = now_ms;
        }
        self.mana -= BATTLE_MANA_COST;
        self.battles += 1;
        let won = self.rng.below(1000) < win_chance_permille(self.deck_power());
        let (gold, xp, points) = if won {
            self.wins += 1;
            (WIN_GOLD + WIN_GOLD_PER_LEVEL * self.level as u64, WIN_XP, WIN_POINTS)
        } else {
            (LOSS_GOLD, LOSS_XP, LOSS_POINTS)
        };
        self.gold += gold;
        self.ledger.gold_minted += gold;
        self.experience += xp;
        self.expedition_points += points as u64;
        let mut leveled_up = false;
        while self.experience >= xp_for_next(self.level) {
            self.experience -= xp_for_next(self.level);
            self.level += 1;
            self.gems += LEVEL_UP_GEMS;
            self.ledger.gems_minted += LEVEL_UP_GEMS;
            leveled_up = true;
        }
        Ok((won, gold, xp, points, leveled_up))
    }
}

impl Entity for Player {
    const KIND: &'static str = "player";
    type Msg = PlayerMsg;
    type Reply = Result<PlayerReply, GameError>;

    fn create(key: &str, now_ms: u64) -> Self {
        Player::new(key, now_ms)
    }

    const HAS_PARTS: bool = true;

    fn take_part_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        self.applied.take_changes(&mut out);
        out
    }

    fn load_parts(&mut self, parts: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        if let Some(name) = parts.iter().map(|(n, _)| n).find(|n| !Remembered::is_part(n)) {
            return Err(format!("unknown part {name:?}"));
        }
        if let Some(applied) = Remembered::from_parts(&parts)? {
            self.applied = applied;
        }
        Ok(())
    }

    /// The readable forms of the collections the snapshot stores compactly.
    fn state_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("cards".into(), serde_json::json!(self.cards));
            obj.insert("applied".into(), self.applied.readable());
        }
        v
    }

    async fn handle(&mut self, msg: PlayerMsg, ctx: &mut Ctx) -> Self::Reply {
        let now = ctx.now_ms();
        match msg {
            PlayerMsg::Login { token_generation } => {
                if let Some(reason) = &self.banned {
                    ctx.unchanged();
                    return Err(PlayerError::Banned { reason: reason.clone() }.into());
                }
                if token_generation.is_some_and(|g| g != self.token_generation) {
                    ctx.unchanged();
                    return Err(PlayerError::TokenRevoked.into());
                }
                self.logins += 1;
                if self.logins == 1 {
                    // The account exists from the first reply on.
                    ctx.durable();
                }
                let token_generation = self.token_generation;
                Ok(PlayerReply::LoggedIn { player: self.view(now), created: self.logins == 1, token_generation })
            }
            PlayerMsg::RevokeTokens => {
                self.token_generation += 1;
                // A revocation lost in a crash would revive the tokens.
                ctx.durable();
                Ok(PlayerReply::TokensRevoked { token_generation: self.token_generation })
            }
            PlayerMsg::Ban { reason } => {
                if self.logins == 0 {
                    ctx.unchanged();
                    return Err(PlayerError::NoSuchPlayer.into());
                }
                self.banned = Some(reason);
                self.token_generation += 1;
                ctx.durable();
                Ok(PlayerReply::TokensRevoked { token_generation: self.token_generation })
            }
            PlayerMsg::Unban => {
                if self.logins == 0 {
                    ctx.unchanged();
                    return Err(PlayerError::NoSuchPlayer.into());
                }
                self.banned = None;
                ctx.durable();
                Ok(PlayerReply::Profile(self.view(now)))
            }
            PlayerMsg::Get => {
                ctx.unchanged();
                Ok(PlayerReply::Profile(self.view(now)))
            }
            PlayerMsg::Apply { tx, change, notify, notice } => {
                let repeat = self.outcome_of(&tx).is_some();
                let outcome = self.apply_once(&tx, &change);
                if repeat {
                    ctx.unchanged();
                } else {
                    // A step of a transaction: the hub moves on only once
                    // this is on disk.
                    ctx.durable();
                }
                outcome?;
                let view = self.view(now);
                if notify && !repeat {
                    let topic = player_topic(&self.id);
                    if let Some(text) = notice {
                        ctx.publish(&topic, GameEvent::Notice { text }.encode());
                    }
                    ctx.publish(&topic, GameEvent::PlayerUpdated(view.clone()).encode());
                }
                Ok(PlayerReply::Applied(view))
            }
            PlayerMsg::ClaimGuild { guild } => match self.guild.clone() {
                Some(current) if current != guild => {
                    ctx.unchanged();
                    Err(GuildError::AlreadyInGuild(current).into())
                }
                Some(_) => {
                    ctx.unchanged();
                    Ok(PlayerReply::Profile(self.view(now)))
                }
                None => {
                    self.guild = Some(guild.clone());
                    ctx.durable();
                    ctx.publish(&player_topic(&self.id), GameEvent::GuildChanged { guild: Some(guild) }.encode());
                    Ok(PlayerReply::Profile(self.view(now)))
                }
            },
            PlayerMsg::ReleaseGuild { guild } => {
                if self.guild.as_deref() == Some(guild.as_str()) {
                    self.guild = None;
                    ctx.durable();
                    ctx.publish(&player_topic(&self.id), GameEvent::GuildChanged { guild: None }.encode());
                } else {
                    ctx.unchanged();
                }
                Ok(PlayerReply::Profile(self.view(now)))
            }
            PlayerMsg::SetGuild { guild } => {
                if self.guild == guild {
                    ctx.unchanged();
                } else {
                    self.guild = guild.clone();
                    ctx.durable();
                    ctx.publish(&player_topic(&self.id), GameEvent::GuildChanged { guild }.encode());
                }
                Ok(PlayerReply::Profile(self.view(now)))
            }
            PlayerMsg::OpenChest => {
                let cards = self.open_chest().inspect_err(|_| ctx.unchanged())?;
                // A purchase: durable before the player sees the cards.
                ctx.durable();
                Ok(PlayerReply::Chest { cards, gold: self.gold })
            }
            PlayerMsg::UpgradeCard { kind } => {
                let card = self.upgrade_card(kind).inspect_err(|_| ctx.unchanged())?;
                ctx.durable();
                Ok(PlayerReply::Upgraded { card, gold: self.gold })
            }
            PlayerMsg::Battle => {
                let (won, gold_earned, experience_earned, points, leveled_up) =
                    self.battle(now).inspect_err(|_| ctx.unchanged())?;
                let player = self.view(now);
                if leveled_up {
                    let topic = player_topic(&self.id);
                    ctx.publish(&topic, GameEvent::Notice { text: format!("Level {} reached!", self.level) }.encode());
                    ctx.publish(&topic, GameEvent::PlayerUpdated(player.clone()).encode());
                }
                Ok(PlayerReply::Battle { won, gold_earned, experience_earned, points, leveled_up, player })
            }
        }
    }
}

#[cfg(test)]
mod tests;
