//! The player's numbers: currencies, mana, chests, upgrades, battles,
//! levels. Each other area keeps its numbers in its own `rules.rs`
//! (`guild::rules`, `market::rules`) or at the top of its module
//! (`expedition`), so that a balance change is one diff in its area and
//! tests can name the rule they check.

use crate::Rarity;

pub const START_GOLD: u64 = 500;
pub const START_GEMS: u64 = 50;

pub const MANA_CAP: u32 = 50;
/// One point of mana regenerates every this many milliseconds.
pub const MANA_REGEN_MS: u64 = 3_000;

pub const CHEST_COST_GOLD: u64 = 100;
pub const CHEST_CARDS: usize = 3;
/// Chance weights of rarities in a chest, per thousand.
pub const CHEST_RARITY_WEIGHTS: &[(Rarity, u64)] =
    &[(Rarity::Common, 700), (Rarity::Rare, 220), (Rarity::Epic, 70), (Rarity::Legendary, 10)];

pub const MAX_CARD_LEVEL: u32 = 10;

/// Copies of a card spent to raise it from `level` to `level + 1`.
pub fn upgrade_copies(level: u32) -> u32 {
    2 * level
}

/// Gold spent to raise a card from `level` to `level + 1`.
pub fn upgrade_gold(level: u32) -> u64 {
    50 * level as u64
}

pub const BATTLE_MANA_COST: u32 = 5;
pub const WIN_GOLD: u64 = 20;
pub const WIN_GOLD_PER_LEVEL: u64 = 2;
pub const LOSS_GOLD: u64 = 5;
pub const WIN_XP: u64 = 10;
pub const LOSS_XP: u64 = 3;
pub const WIN_POINTS: u32 = 10;
pub const LOSS_POINTS: u32 = 2;

/// Experience needed to go from `level` to `level + 1`.
pub fn xp_for_next(level: u32) -> u64 {
    100 * level as u64
}

pub const LEVEL_UP_GEMS: u64 = 10;

/// Chance to win a battle, per thousand, from the deck's power (the sum of
/// the levels of the player's eight best cards).
pub fn win_chance_permille(deck_power: u32) -> u64 {
    (350 + 10 * deck_power as u64).min(850)
}
