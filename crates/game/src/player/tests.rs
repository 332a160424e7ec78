use super::*;

const T0: u64 = 1_767_225_600_000;

#[test]
fn a_new_player_starts_with_the_rules_numbers() {
    let p = Player::new("p", T0);
    let v = p.view(T0);
    assert_eq!((v.gold, v.gems, v.mana, v.level), (START_GOLD, START_GEMS, MANA_CAP, 1));
    assert_eq!(v.cards.len(), 3);
    assert_eq!(v.next_mana_at_ms, 0, "full mana does not regenerate");
}

#[test]
fn chests_cost_gold_and_are_deterministic_per_player() {
    let mut a = Player::new("same", T0);
    let mut b = Player::new("same", T0);
    let ca = a.open_chest().unwrap();
    assert_eq!(ca, b.open_chest().unwrap(), "same seed, same chest");
    assert_eq!(ca.len(), CHEST_CARDS);
    assert_eq!(a.gold, START_GOLD - CHEST_COST_GOLD);
    let total: u32 = a.cards.values().map(|s| s.count).sum();
    assert_eq!(total, 3 + CHEST_CARDS as u32);

    let mut poor = Player::new("poor", T0);
    poor.gold = CHEST_COST_GOLD - 1;
    assert_eq!(poor.open_chest(), Err(PlayerError::NotEnoughGold { need: CHEST_COST_GOLD, have: 99 }.into()));
    assert_eq!(poor.chests_opened, 0);
}

#[test]
fn chest_rarities_follow_the_weights() {
    let mut p = Player::new("stats", T0);
    p.gold = u64::MAX / 2;
    let mut commons = 0;
    for _ in 0..2000 {
        for c in p.open_chest().unwrap() {
            commons += (c.rarity == Rarity::Common) as u32;
        }
    }
    // 6000 draws at 70 %: 4200 expected; allow a wide margin.
    assert!((3900..4500).contains(&commons), "{commons} commons");
}

#[test]
fn upgrade_spends_copies_and_gold_and_refuses_what_it_cannot() {
    let mut p = Player::new("u", T0);
    assert_eq!(p.upgrade_card(0), Err(PlayerError::NotEnoughCards { kind: 0, need: 3, have: 1 }.into()));
    assert_eq!(p.upgrade_card(999), Err(PlayerError::UnknownCard(999).into()));
    p.cards.insert(0, CardStack { count: 3, level: 1 });
    let card = p.upgrade_card(0).unwrap();
    assert_eq!((card.level, card.count), (2, 1));
    assert_eq!(p.gold, START_GOLD - upgrade_gold(1));

    p.cards.insert(1, CardStack { count: 50, level: MAX_CARD_LEVEL });
    assert_eq!(p.upgrade_card(1), Err(PlayerError::MaxLevel(1).into()));
    p.cards.insert(2, CardStack { count: 50, level: 1 });
    p.gold = 10;
    assert_eq!(p.upgrade_card(2), Err(PlayerError::NotEnoughGold { need: 50, have: 10 }.into()));
    assert_eq!(p.cards[&2].count, 50, "a refused upgrade spends nothing");
}

#[test]
fn mana_regenerates_to_the_cap_with_the_clock() {
    let mut p = Player::new("m", T0);
    for _ in 0..(MANA_CAP / BATTLE_MANA_COST) {
        p.battle(T0).unwrap();
    }
    assert_eq!(p.mana_now(T0), 0);
    assert_eq!(p.battle(T0), Err(PlayerError::NotEnoughMana { need: BATTLE_MANA_COST, have: 0 }.into()));
    assert_eq!(p.view(T0).next_mana_at_ms, T0 + MANA_REGEN_MS);
    // Partial progress is kept: 2.5 regen periods give 2 points ...
    let t = T0 + MANA_REGEN_MS * 5 / 2;
    assert_eq!(p.mana_now(t), 2);
    // ... and the next point comes exactly at 3 periods.
    assert_eq!(p.view(t).next_mana_at_ms, T0 + 3 * MANA_REGEN_MS);
    assert_eq!(p.mana_now(T0 + 3 * MANA_REGEN_MS - 1), 2);
    assert_eq!(p.mana_now(T0 + 3 * MANA_REGEN_MS), 3);
    assert_eq!(p.mana_now(T0 + 1000 * MANA_REGEN_MS), MANA_CAP, "capped");
    // Regeneration progress survives a battle in between.
    let t = T0 + MANA_REGEN_MS * 11 / 2; // 5 points, half way to the 6th
    p.battle(t).unwrap();
    assert_eq!(p.mana_now(t), 0);
    assert_eq!(p.mana_now(T0 + 6 * MANA_REGEN_MS), 1);
}

#[test]
fn transaction_steps_apply_once_all_or_nothing() {
    let mut p = Player::new("t", T0);
    let take = Change { gold: -300, cards: vec![(0, -1)], ..Change::default() };
    assert_eq!(p.apply_once("tx1", &take), Ok(()));
    assert_eq!(p.apply_once("tx1", &take), Ok(()), "a repeat reports the first outcome");
    assert_eq!((p.gold, p.cards[&0].count), (200, 0), "and applies nothing again");
    let too_much = Change { gold: -100, cards: vec![(1, -2)], ..Change::default() };
    assert_eq!(p.apply_once("tx2", &too_much), Err(PlayerError::NotEnoughCards { kind: 1, need: 2, have: 1 }.into()));
    assert_eq!(p.gold, 200, "all or nothing");
    p.gold = 10_000;
    assert!(p.apply_once("tx2", &Change::default()).is_err(), "the refusal is remembered too");
    let prize = Change { gems: 5, cards: vec![(15, 1)], kind: ChangeKind::Reward, ..Change::default() };
    p.apply_once("tx3", &prize).unwrap();
    assert_eq!((p.gems, p.cards[&15].count), (START_GEMS + 5, 1));
    assert_eq!((p.ledger.gems_minted, p.ledger.cards_minted), (START_GEMS + 5, 4));
    for i in 0..(REMEMBERED_TXS + 10) {
        p.apply_once(&format!("fill{i}"), &Change::default()).unwrap();
    }
    assert_eq!(p.applied.len(), REMEMBERED_TXS, "bounded memory");
}

#[test]
fn battles_earn_gold_experience_points_and_levels() {
    let mut p = Player::new("b", T0);
    let mut now = T0;
    let mut leveled = false;
    for _ in 0..40 {
        now += MANA_REGEN_MS * BATTLE_MANA_COST as u64;
        let (won, gold, xp, points, up) = p.battle(now).unwrap();
        assert_eq!(gold, if won { WIN_GOLD + WIN_GOLD_PER_LEVEL * (p.level as u64 - up as u64) } else { LOSS_GOLD });
        assert_eq!(xp, if won { WIN_XP } else { LOSS_XP });
        assert_eq!(points, if won { WIN_POINTS } else { LOSS_POINTS });
        leveled |= up;
    }
    assert!(leveled, "40 battles earn at least 120 xp, past level 1's 100");
    assert!(p.level >= 2);
    assert_eq!(p.gems, START_GEMS + LEVEL_UP_GEMS * (p.level as u64 - 1));
    assert!(p.wins > 0 && p.wins < 40, "the win chance is neither 0 nor 1");
    assert_eq!(p.gold, START_GOLD + p.ledger.gold_minted - START_GOLD - p.ledger.gold_burnt);
}
