//! The game's operations called directly, the way an admin console or
//! another node calls them: domain types in and out, no protobuf, no server.

use std::sync::Arc;

use guildhall_entity::{ManualClock, Runtime};
use guildhall_game::guild::{self, GuildInput, GuildRole};
use guildhall_game::market::{self, sale_fee, ListingStatus};
use guildhall_game::op::OpError;
use guildhall_game::rules::START_GOLD;
use guildhall_game::tx::{self, StepError, TxStep};
use guildhall_game::{player, Change, ChangeKind, GameError, GuildError, MarketError, PlayerError};
use guildhall_store::MemoryStore;

fn runtime() -> Runtime {
    let clock = ManualClock::default();
    guildhall_game::register(Runtime::builder(Arc::new(MemoryStore::new()), Arc::new(clock))).build()
}

fn count(v: &guildhall_game::PlayerView, kind: u32) -> u32 {
    v.cards.iter().find(|c| c.kind == kind).map_or(0, |c| c.count)
}

fn input(name: &str, tag: &str) -> GuildInput {
    GuildInput { name: name.into(), tag: tag.into(), language: "en".into(), open: true, description: "hi".into() }
}

#[tokio::test]
async fn a_market_purchase_runs_through_the_game_operations() {
    let rt = runtime();
    let grant = Change { cards: vec![(3, 4)], kind: ChangeKind::Reward, ..Change::default() };
    tx::apply(&rt, "seller", TxStep::new("grant/seller", grant)).await.unwrap();

    let (listing, seller) = market::ops::list(&rt, "seller", 3, 4, 300).await.unwrap();
    assert_eq!(listing.status, ListingStatus::Open);
    assert_eq!(count(&seller, 3), 0, "the cards are in escrow");
    assert_eq!(market::ops::listings_of(&rt, "seller").await.unwrap(), vec![listing.clone()]);

    let query = market::ops::BrowseQuery { kinds: vec![3], ..Default::default() };
    let (page, total) = market::ops::browse(&rt, &query).await.unwrap();
    assert_eq!((page.len(), total), (1, 1));

    let (sold, buyer) = market::ops::buy(&rt, "buyer", &listing.listing_id).await.unwrap();
    assert_eq!(sold.status, ListingStatus::Sold);
    assert_eq!(buyer.gold, START_GOLD - 300);
    assert_eq!(count(&buyer, 3), 4);
    let seller = player::ops::profile(&rt, "seller").await.unwrap();
    assert_eq!(seller.gold, START_GOLD + 300 - sale_fee(300), "paid, less the burnt fee");

    // A second buyer is refused with the market's own error.
    let again = market::ops::buy(&rt, "late", &listing.listing_id).await;
    assert_eq!(again, Err(OpError::Refused(MarketError::AlreadySold(listing.listing_id.clone()).into())));
    assert_eq!(player::ops::profile(&rt, "late").await.unwrap().gold, START_GOLD, "the loser is refunded");
    let bad = market::ops::list(&rt, "seller", 99, 1, 1).await;
    assert_eq!(bad, Err(OpError::Refused(PlayerError::UnknownCard(99).into())));
}

#[tokio::test]
async fn a_guild_creation_runs_through_the_game_operations() {
    let rt = runtime();
    let (view, founder) = guild::ops::create(&rt, "f", input("Dragons", "DRG")).await.unwrap();
    assert_eq!(view.summary.name, "Dragons");
    assert_eq!(view.members.len(), 1);
    assert_eq!(view.members[0].role, GuildRole::Leader);
    assert_eq!(founder.guild.as_deref(), Some(view.summary.id.as_str()));
    assert_eq!(founder.gold, START_GOLD - guild::GUILD_CREATE_COST, "the fee is burnt");

    let taken = guild::ops::create(&rt, "g", input("dragons", "OTH")).await;
    assert_eq!(taken, Err(OpError::Refused(GuildError::GuildNameTaken("dragons".into()).into())));
    let (joined, view) = guild::ops::join(&rt, "g", &view.summary.id).await.unwrap();
    assert!(joined);
    assert_eq!(view.members.len(), 2);
    let again = guild::ops::create(&rt, "g", input("Wolves", "WLF")).await;
    assert!(matches!(again, Err(OpError::Refused(GameError::Guild(GuildError::AlreadyInGuild(_))))));
    let found = guild::ops::search(&rt, guild::directory::SearchQuery { prefix: "drag".into(), ..Default::default() });
    assert_eq!(found.await.unwrap().iter().map(|s| s.members).collect::<Vec<_>>(), vec![2]);
    assert_eq!(
        guild::ops::get(&rt, "x", Some("not-a-guild")).await,
        Err(OpError::Refused(GuildError::GuildNotFound("not-a-guild".into()).into()))
    );
}

#[tokio::test]
async fn a_transaction_step_applies_once_and_tells_a_refusal_from_an_unknown_outcome() {
    let rt = runtime();
    let pay = Change { gold: 5, kind: ChangeKind::Reward, ..Change::default() };
    let first = tx::apply(&rt, "p", TxStep::new("reward/1", pay.clone())).await.unwrap();
    let again = tx::apply(&rt, "p", TxStep::new("reward/1", pay)).await.unwrap();
    assert_eq!((first.gold, again.gold), (START_GOLD + 5, START_GOLD + 5), "applied once");
    let take = Change { gold: -(START_GOLD as i64) - 100, kind: ChangeKind::Burn, ..Change::default() };
    let refused = tx::apply(&rt, "p", TxStep::new("burn/1", take)).await;
    assert!(matches!(refused, Err(StepError::Refused(GameError::Player(PlayerError::NotEnoughGold { .. })))));
    rt.shutdown().await;
    let late = tx::apply(&rt, "p", TxStep::new("reward/2", Change::default())).await;
    assert!(matches!(late, Err(StepError::Unknown(_))), "{late:?}");
}
