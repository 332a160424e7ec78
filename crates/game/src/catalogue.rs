//! The fixed catalogue of spell cards. A card's `kind` is its index here and
//! is stored in snapshots: append new cards, never reorder.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rarity {
    Common,
    Rare,
    Epic,
    Legendary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardDef {
    pub kind: u32,
    pub name: &'static str,
    pub rarity: Rarity,
}

const fn card(kind: u32, name: &'static str, rarity: Rarity) -> CardDef {
    CardDef { kind, name, rarity }
}

pub const CATALOGUE: &[CardDef] = &[
    card(0, "Fireball", Rarity::Common),
    card(1, "Frost Bolt", Rarity::Common),
    card(2, "Arcane Missile", Rarity::Common),
    card(3, "Stone Skin", Rarity::Common),
    card(4, "Healing Light", Rarity::Common),
    card(5, "Gust", Rarity::Common),
    card(6, "Spark", Rarity::Common),
    card(7, "Thorn Whip", Rarity::Common),
    card(8, "Chain Lightning", Rarity::Rare),
    card(9, "Blizzard", Rarity::Rare),
    card(10, "Mirror Image", Rarity::Rare),
    card(11, "Summon Golem", Rarity::Rare),
    card(12, "Meteor", Rarity::Epic),
    card(13, "Time Warp", Rarity::Epic),
    card(14, "Phoenix", Rarity::Epic),
    card(15, "Dragon's Breath", Rarity::Legendary),
];

/// The card of `kind`, if the catalogue has it.
pub fn card_def(kind: u32) -> Option<&'static CardDef> {
    CATALOGUE.get(kind as usize)
}

/// Kinds of one rarity.
pub fn kinds_of(rarity: Rarity) -> impl Iterator<Item = &'static CardDef> {
    CATALOGUE.iter().filter(move |c| c.rarity == rarity)
}
