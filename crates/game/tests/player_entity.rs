//! The player entity inside the runtime, on the injected clock.

use std::sync::Arc;
use std::time::Duration;

use guildhall_entity::{ManualClock, Runtime};
use guildhall_game::rules::{BATTLE_MANA_COST, MANA_CAP, MANA_REGEN_MS, START_GOLD};
use guildhall_game::{
    Change, ChangeKind, GameError, GuildError, Player, PlayerError, PlayerMsg, PlayerReply, REMEMBERED_TXS,
};
use guildhall_store::{MemoryStore, Store};

fn runtime(store: Arc<dyn Store>, clock: &ManualClock) -> Runtime {
    guildhall_game::register(Runtime::builder(store, Arc::new(clock.clone()))).build()
}

#[tokio::test]
async fn mana_regenerates_with_the_injected_clock() {
    let clock = ManualClock::default();
    let rt = runtime(Arc::new(MemoryStore::new()), &clock);
    let battles = MANA_CAP / BATTLE_MANA_COST;
    for _ in 0..battles {
        rt.call::<Player>("p", PlayerMsg::Battle).await.unwrap().unwrap();
    }
    assert_eq!(
        rt.call::<Player>("p", PlayerMsg::Battle).await.unwrap(),
        Err(PlayerError::NotEnoughMana { need: BATTLE_MANA_COST, have: 0 }.into())
    );
    clock.advance(Duration::from_millis(MANA_REGEN_MS * BATTLE_MANA_COST as u64 - 1));
    assert!(rt.call::<Player>("p", PlayerMsg::Battle).await.unwrap().is_err(), "one millisecond short");
    clock.advance(Duration::from_millis(1));
    assert!(rt.call::<Player>("p", PlayerMsg::Battle).await.unwrap().is_ok());
}

#[tokio::test]
async fn chests_are_durable_before_the_reply_and_battles_are_write_behind() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    let Ok(PlayerReply::Chest { cards, .. }) = rt.call::<Player>("d", PlayerMsg::OpenChest).await.unwrap() else {
        panic!("chest")
    };
    assert_eq!(cards.len(), 3);
    rt.call::<Player>("d", PlayerMsg::Battle).await.unwrap().unwrap();
    let stored: Player = serde_json::from_slice(&store.get(b"e/player/d").await.unwrap().unwrap().value).unwrap();
    assert_eq!((stored.chests_opened, stored.battles), (1, 0), "the chest is stored, the battle not yet");
    clock.advance(rt.config().flush_interval);
    rt.maintain().await;
    let stored: Player = serde_json::from_slice(&store.get(b"e/player/d").await.unwrap().unwrap().value).unwrap();
    assert_eq!(stored.battles, 1, "written after the flush interval");
}

#[tokio::test]
async fn a_player_can_be_claimed_by_one_guild_only() {
    let clock = ManualClock::default();
    let rt = runtime(Arc::new(MemoryStore::new()), &clock);
    let claim = |g: &str| PlayerMsg::ClaimGuild { guild: g.into() };
    assert!(rt.call::<Player>("p", claim("g1")).await.unwrap().is_ok());
    assert!(rt.call::<Player>("p", claim("g1")).await.unwrap().is_ok(), "the same guild again: fine");
    assert_eq!(rt.call::<Player>("p", claim("g2")).await.unwrap(), Err(GuildError::AlreadyInGuild("g1".into()).into()));
    // A late release from a guild the player is not in changes nothing ...
    rt.call::<Player>("p", PlayerMsg::ReleaseGuild { guild: "g2".into() }).await.unwrap().unwrap();
    assert_eq!(rt.call::<Player>("p", claim("g2")).await.unwrap(), Err(GuildError::AlreadyInGuild("g1".into()).into()));
    // ... the right one frees the player.
    rt.call::<Player>("p", PlayerMsg::ReleaseGuild { guild: "g1".into() }).await.unwrap().unwrap();
    assert!(rt.call::<Player>("p", claim("g2")).await.unwrap().is_ok());
}

async fn gold(rt: &Runtime, id: &str) -> u64 {
    match rt.call::<Player>(id, PlayerMsg::Get).await.unwrap().unwrap() {
        PlayerReply::Profile(v) => v.gold,
        other => panic!("{other:?}"),
    }
}

fn step(tx: &str, gold: i64) -> PlayerMsg {
    let change = Change { gold, kind: ChangeKind::Reward, ..Change::default() };
    PlayerMsg::Apply { tx: tx.into(), change, notify: false, notice: None }
}

#[tokio::test]
async fn remembered_steps_are_parts_one_a_step_and_survive_a_restart() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    for i in 0..40 {
        rt.call::<Player>("r", step(&format!("step/{i}"), 1)).await.unwrap().unwrap();
    }
    let too_dear = step("step/refused", -(START_GOLD as i64 + 1_000));
    let refused = rt.call::<Player>("r", too_dear.clone()).await.unwrap();
    assert!(matches!(refused, Err(GameError::Player(PlayerError::NotEnoughGold { .. }))), "{refused:?}");
    rt.flush_all().await;
    let snapshot: serde_json::Value =
        serde_json::from_slice(&store.get(b"e/player/r").await.unwrap().unwrap().value).unwrap();
    assert!(snapshot.get("applied").is_none(), "the snapshot carries no outcomes: {snapshot}");
    let parts = store.scan_prefix(b"e/player/r\0").await.unwrap();
    assert_eq!(parts.len(), REMEMBERED_TXS, "a ring: one part a slot");

    drop(rt);
    let rt = runtime(store.clone(), &clock);
    assert_eq!(gold(&rt, "r").await, START_GOLD + 40);
    rt.call::<Player>("r", step("step/39", 1)).await.unwrap().unwrap();
    assert_eq!(gold(&rt, "r").await, START_GOLD + 40, "a retry is not applied again");
    rt.call::<Player>("r", step("rich", 10_000)).await.unwrap().unwrap();
    assert_eq!(rt.call::<Player>("r", too_dear).await.unwrap(), refused, "a refusal is remembered too");
    rt.call::<Player>("r", step("step/0", 1)).await.unwrap().unwrap();
    assert_eq!(gold(&rt, "r").await, START_GOLD + 10_041, "the oldest steps are forgotten");
}

#[tokio::test]
async fn an_older_snapshot_with_its_outcomes_inline_moves_them_into_parts() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut old = serde_json::to_value(Player::new("o", 0)).unwrap();
    old["applied"] = serde_json::json!([["old/1", null]]);
    store.put(b"e/player/o", serde_json::to_vec(&old).unwrap(), 0).await.unwrap();
    let rt = runtime(store.clone(), &clock);
    rt.call::<Player>("o", step("old/1", 1)).await.unwrap().unwrap();
    assert_eq!(gold(&rt, "o").await, START_GOLD, "the step was already applied");
    rt.flush_all().await;
    let parts = store.scan_prefix(b"e/player/o\0").await.unwrap();
    assert_eq!(parts.len(), 1, "{parts:?}");
    drop(rt);
    let rt = runtime(store.clone(), &clock);
    rt.call::<Player>("o", step("old/1", 1)).await.unwrap().unwrap();
    assert_eq!(gold(&rt, "o").await, START_GOLD, "still known after the move");
}
