//! The player entity inside the runtime, on the injected clock.

use std::sync::Arc;
use std::time::Duration;

use guildhall_entity::{ManualClock, Runtime};
use guildhall_game::rules::{BATTLE_MANA_COST, MANA_CAP, MANA_REGEN_MS};
use guildhall_game::{GuildError, Player, PlayerError, PlayerMsg, PlayerReply};
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
