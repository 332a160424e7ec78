//! Market shards inside the runtime, on the injected clock: the transaction
//! steps and their completion after a crash between steps.

use std::sync::Arc;
use std::time::Duration;

use guildhall_entity::{ManualClock, Runtime};
use guildhall_game::market::{
    sale_fee, ListingStatus, Market, MarketMsg, MarketReply, OpRef, CHEAPEST_IN_MEMORY, LISTING_TTL_MS,
};
use guildhall_game::rules::START_GOLD;
use guildhall_game::{Change, ChangeKind, GameError, MarketError, Player, PlayerMsg, PlayerReply};
use guildhall_store::{MemoryStore, Store};

fn runtime(store: Arc<dyn Store>, clock: &ManualClock) -> Runtime {
    guildhall_game::register(Runtime::builder(store, Arc::new(clock.clone()))).build()
}

async fn market(rt: &Runtime, msg: MarketMsg) -> Result<MarketReply, GameError> {
    rt.call::<Market>("9", msg).await.unwrap()
}

async fn settle(rt: &Runtime, op: OpRef) -> Result<MarketReply, GameError> {
    loop {
        match market(rt, MarketMsg::Settle { op }).await {
            Ok(MarketReply::Pending) => continue,
            other => return other,
        }
    }
}

async fn player(rt: &Runtime, id: &str) -> guildhall_game::PlayerView {
    match rt.call::<Player>(id, PlayerMsg::Get).await.unwrap().unwrap() {
        PlayerReply::Profile(v) => v,
        other => panic!("{other:?}"),
    }
}

fn count(v: &guildhall_game::PlayerView, kind: u32) -> u32 {
    v.cards.iter().find(|c| c.kind == kind).map_or(0, |c| c.count)
}

async fn give(rt: &Runtime, id: &str, kind: u32, n: i64) {
    let change = Change { cards: vec![(kind, n)], kind: ChangeKind::Reward, ..Change::default() };
    let msg = PlayerMsg::Apply { tx: format!("grant/{id}/{kind}"), change, notify: false, notice: None };
    rt.call::<Player>(id, msg).await.unwrap().unwrap();
}

async fn list(rt: &Runtime, seller: &str, count: u32, price: u64) -> String {
    let msg = MarketMsg::List { seller: seller.into(), count, price, others_active: 0 };
    let Ok(MarketReply::Started(op)) = market(rt, msg).await else { panic!("list starts") };
    let Ok(MarketReply::Done(view)) = settle(rt, op).await else { panic!("list completes") };
    view.listing_id
}

#[tokio::test]
async fn a_purchase_interrupted_after_the_hold_completes_after_a_restart_without_charging_twice() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    give(&rt, "seller", 9, 2).await;
    let id = list(&rt, "seller", 2, 200).await;
    assert_eq!(id, "9-1");
    assert_eq!(count(&player(&rt, "seller").await, 9), 0);

    // The intent is recorded; then the hold reaches the buyer, and the
    // process dies before the market records what happened.
    let Ok(MarketReply::Started(OpRef::Buy(op))) =
        market(&rt, MarketMsg::Buy { listing: 1, buyer: "buyer".into() }).await
    else {
        panic!("buy starts")
    };
    let hold = Change { gold: -200, ..Change::default() };
    let tx = format!("market/buy/9-1/buyer/{op}/hold");
    rt.call::<Player>("buyer", PlayerMsg::Apply { tx, change: hold, notify: false, notice: None })
        .await
        .unwrap()
        .unwrap();
    drop(rt);

    // A new process on the same store: the tick finishes the purchase.
    let rt = runtime(store.clone(), &clock);
    guildhall_game::start(&rt, &guildhall_game::GameConfig::default()).await.unwrap();
    rt.maintain().await;
    let buyer = player(&rt, "buyer").await;
    assert_eq!(buyer.gold, START_GOLD - 200, "the hold was applied once, not again");
    assert_eq!(count(&buyer, 9), 2);
    assert_eq!(player(&rt, "seller").await.gold, START_GOLD + 200 - sale_fee(200));
    let state = rt.state_json("market", "9").await.unwrap().unwrap();
    assert_eq!((state["gold_held"].as_u64(), state["fees_burnt"].as_u64()), (Some(0), Some(sale_fee(200))));
    // The retried request gets the first outcome.
    let Ok(MarketReply::Done(v)) = market(&rt, MarketMsg::Buy { listing: 1, buyer: "buyer".into() }).await else {
        panic!("a retry answers the success")
    };
    assert_eq!(v.buyer.as_deref(), Some("buyer"));
    assert_eq!(player(&rt, "buyer").await.gold, START_GOLD - 200);
}

#[tokio::test]
async fn two_buyers_one_listing_the_second_is_refunded() {
    let clock = ManualClock::default();
    let rt = runtime(Arc::new(MemoryStore::new()), &clock);
    give(&rt, "s", 9, 1).await;
    list(&rt, "s", 1, 100).await;
    let Ok(MarketReply::Started(a)) = market(&rt, MarketMsg::Buy { listing: 1, buyer: "a".into() }).await else {
        panic!()
    };
    let Ok(MarketReply::Started(b)) = market(&rt, MarketMsg::Buy { listing: 1, buyer: "b".into() }).await else {
        panic!()
    };
    // b's steps run first: b wins, a's hold is refunded.
    assert!(matches!(settle(&rt, b).await, Ok(MarketReply::Done(_))));
    assert_eq!(settle(&rt, a).await, Err(MarketError::AlreadySold("9-1".into()).into()));
    assert_eq!(player(&rt, "a").await.gold, START_GOLD, "refunded");
    assert_eq!(player(&rt, "b").await.gold, START_GOLD - 100);
    assert_eq!(count(&player(&rt, "b").await, 9), 1);
}

#[tokio::test]
async fn a_listing_expires_by_the_injected_clock_and_returns_its_cards() {
    let clock = ManualClock::default();
    let rt = runtime(Arc::new(MemoryStore::new()), &clock);
    give(&rt, "s", 9, 3).await;
    list(&rt, "s", 3, 100).await;
    clock.advance(Duration::from_millis(LISTING_TTL_MS - 1));
    rt.maintain().await;
    assert_eq!(count(&player(&rt, "s").await, 9), 0);
    clock.advance(Duration::from_millis(1));
    rt.maintain().await;
    assert_eq!(count(&player(&rt, "s").await, 9), 3);
    assert_eq!(
        market(&rt, MarketMsg::Buy { listing: 1, buyer: "b".into() }).await,
        Err(MarketError::ListingGone("9-1".into()).into())
    );
}

#[tokio::test]
async fn listings_are_parts_one_record_each_and_old_inline_snapshots_move_into_them() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    give(&rt, "seller", 9, 3).await;
    list(&rt, "seller", 1, 100).await;
    list(&rt, "seller", 2, 150).await;
    rt.shutdown().await;

    // The snapshot no longer carries the listings; each is its own record.
    let snapshot = store.get(b"e/market/9").await.unwrap().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&snapshot.value).unwrap();
    assert!(json.get("listings").is_none(), "listings are not inline: {json}");
    let names: Vec<String> = store
        .scan_prefix(b"e/market/9\0")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k[b"e/market/9\0".len()..]).into_owned())
        .collect();
    assert_eq!(names, ["f/1", "f/2", "l/1", "l/2"], "two listings and the two list operations' outcomes");

    // An old snapshot (listings inline, closed and finished as lists) loads,
    // and its first write moves the listings into parts.
    let mut old = json.clone();
    old["listings"] = serde_json::json!({ "7": {
        "n": 7, "seller": "old-seller", "kind": 9, "count": 4, "price": 70,
        "created_at_ms": 0, "expires_at_ms": LISTING_TTL_MS, "state": "Open" } });
    old["closed"] = serde_json::json!([]);
    old["finished"] = serde_json::json!([]);
    let old_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    old_store.put(b"e/market/9", serde_json::to_vec(&old).unwrap(), 0).await.unwrap();
    let rt = runtime(old_store.clone(), &clock);
    let Ok(MarketReply::Listings { listings, .. }) =
        market(&rt, MarketMsg::Browse { max_price: None, limit: 10 }).await
    else {
        panic!("browse")
    };
    assert_eq!(listings.iter().map(|l| l.listing_id.as_str()).collect::<Vec<_>>(), ["9-7"]);
    rt.shutdown().await;
    assert!(old_store.get(b"e/market/9\0l/7").await.unwrap().is_some(), "moved into its part");
    let rt = runtime(old_store, &clock);
    let Ok(MarketReply::Listings { total, .. }) = market(&rt, MarketMsg::Browse { max_price: None, limit: 10 }).await
    else {
        panic!("browse")
    };
    assert_eq!(total, 1, "and read back from there");
    let Ok(MarketReply::Listings { listings, .. }) =
        market(&rt, MarketMsg::ListingsOf { player: "old-seller".into() }).await
    else {
        panic!("listings of")
    };
    assert_eq!(listings.len(), 1, "the seller index is rebuilt on activation");
}

/// The listings of shard 9 whose records are not in memory, by number.
async fn not_in_memory(rt: &Runtime) -> Vec<u64> {
    let m = rt.state_json("market", "9").await.unwrap().unwrap();
    let listings = m["listings"].as_object().unwrap();
    listings.values().filter(|l| l["in_memory"] == false).map(|l| l["n"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn only_the_cheapest_open_listings_stay_in_memory_the_others_are_read_back_when_used() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    // Listing n is seller s{n}'s, at 100 + n gold: the dearest are listed last.
    let total = CHEAPEST_IN_MEMORY as u64 + 60;
    for n in 1..=total {
        give(&rt, &format!("s{n}"), 9, 1).await;
        list(&rt, &format!("s{n}"), 1, 100 + n).await;
    }
    let mut cold = not_in_memory(&rt).await;
    cold.sort();
    assert!(cold.len() >= 20, "dear listings leave memory: {cold:?}");
    assert!(cold.iter().all(|n| *n > CHEAPEST_IN_MEMORY as u64), "never one of the cheapest: {cold:?}");
    let (a, b, c) = (cold[0], cold[1], cold[2]);

    // A purchase, a cancellation and a seller's own listings read them back.
    let buy = market(&rt, MarketMsg::Buy { listing: a, buyer: "buyer".into() }).await.unwrap();
    let MarketReply::Started(op) = buy else { panic!("{buy:?}") };
    let Ok(MarketReply::Done(sold)) = settle(&rt, op).await else { panic!("the purchase completes") };
    assert_eq!((sold.seller.as_str(), sold.status), (format!("s{a}").as_str(), ListingStatus::Sold));
    assert_eq!(count(&player(&rt, "buyer").await, 9), 1);
    assert_eq!(player(&rt, &format!("s{a}")).await.gold, START_GOLD + 100 + a - sale_fee(100 + a));
    let cancel = market(&rt, MarketMsg::Cancel { listing: b, player: format!("s{b}") }).await.unwrap();
    let MarketReply::Started(op) = cancel else { panic!("{cancel:?}") };
    let Ok(MarketReply::Done(cancelled)) = settle(&rt, op).await else { panic!("the cancellation completes") };
    assert_eq!(cancelled.status, ListingStatus::Cancelled);
    assert_eq!(count(&player(&rt, &format!("s{b}")).await, 9), 1, "the card is back");
    let mine = market(&rt, MarketMsg::ListingsOf { player: format!("s{c}") }).await.unwrap();
    let MarketReply::Listings { listings, total: 1 } = mine else { panic!("{mine:?}") };
    assert_eq!(listings[0].listing_id, format!("9-{c}"));
    let browse = market(&rt, MarketMsg::Browse { max_price: None, limit: 1 }).await.unwrap();
    assert!(matches!(browse, MarketReply::Listings { total: t, .. } if t == total - 2), "{browse:?}");

    // After a restart, the book is whole and the dear records stay out.
    rt.flush_all().await;
    drop(rt);
    let rt = runtime(store.clone(), &clock);
    let browse = market(&rt, MarketMsg::Browse { max_price: Some(100 + c), limit: 100 }).await.unwrap();
    let MarketReply::Listings { listings, total: open } = browse else { panic!("{browse:?}") };
    assert_eq!(open, c - 2, "listings up to c's price, but a's and b's");
    assert_eq!(listings.len(), 100);
    assert!(!not_in_memory(&rt).await.is_empty());

    // Expiry reads them back too: every seller but a's gets the card back.
    clock.advance(Duration::from_millis(LISTING_TTL_MS));
    for _ in 0..10 {
        rt.maintain().await;
    }
    for n in (1..=total).filter(|n| *n != a) {
        assert_eq!(count(&player(&rt, &format!("s{n}")).await, 9), 1, "s{n}");
    }
    let m = rt.state_json("market", "9").await.unwrap().unwrap();
    assert!(m["listings"].as_object().unwrap().is_empty(), "{m}");
    assert_eq!(m["cards_held"], 0);
}
