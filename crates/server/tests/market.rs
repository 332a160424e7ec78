//! The market through the real client SDK over real sockets:
//! listings with escrow, browse, the offer stream, buys (one winner under
//! concurrency, the seller paid while offline, retries that never pay twice),
//! cancel, expiry, and a conservation audit over random play with a restart.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{start, start_on, TestServer, WAIT};
use guildhall_client::{Client, ClientError};
use guildhall_entity::ManualClock;
use guildhall_game::market::{sale_fee, FEED_EVERY_MS, LISTING_TTL_MS, MARKET_SHARDS, MAX_ACTIVE_LISTINGS};
use guildhall_game::rng::SplitMix64;
use guildhall_game::{Change, ChangeKind, Player, PlayerMsg};
use guildhall_protocol::method;
use guildhall_protocol::pb::{self, Status};
use guildhall_server::Config;
use guildhall_store::{MemoryStore, Store};
use serde_json::Value;
use tokio::sync::Barrier;

/// Tests send many requests on a clock that barely moves (no rate limit),
/// and move it by days to expire listings (tokens and detached sessions
/// must outlive that: sessions are not what these tests are about).
fn config() -> Config {
    let mut c = common::config();
    c.rate_limit_burst = 1_000_000;
    c.token_ttl_secs = 10 * 365 * 86_400;
    c.resume_window_secs = 10 * 365 * 86_400;
    c
}

async fn login(ts: &TestServer, device: &str) -> (Client, String) {
    let client = Client::connect_tcp(ts.tcp()).await.unwrap();
    let login = client.login_device(&common::device_id(device)).await.unwrap();
    (client, login.player_id)
}

/// Mints cards and gold for a player, through the ledger like any reward.
async fn grant(ts: &TestServer, player: &str, cards: &[(u32, i64)], gold: i64) {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let change = Change { gold, cards: cards.to_vec(), kind: ChangeKind::Reward, ..Change::default() };
    let msg = PlayerMsg::Apply { tx: format!("test/grant/{n}"), change, notify: false, notice: None };
    ts.server.runtime().call::<Player>(player, msg).await.unwrap().unwrap();
}

async fn me(client: &Client) -> pb::Player {
    client.get_player().await.unwrap().player.unwrap()
}

fn count_of(p: &pb::Player, kind: u32) -> u32 {
    p.cards.iter().find(|c| c.kind == kind).map_or(0, |c| c.count)
}

fn status(e: &ClientError) -> Status {
    match e {
        ClientError::Status { status, .. } => *status,
        other => panic!("expected a refusal, got {other}"),
    }
}

async fn market_state(ts: &TestServer, kind: u32) -> Value {
    ts.server.runtime().state_json("market", &kind.to_string()).await.unwrap().unwrap_or(Value::Null)
}

async fn next_push(pushes: &mut tokio::sync::mpsc::UnboundedReceiver<pb::Push>) -> pb::Push {
    tokio::time::timeout(WAIT, pushes.recv()).await.expect("push in time").expect("push channel")
}

/// The next push that `pick` accepts, skipping others (player updates).
async fn push_where<T>(
    pushes: &mut tokio::sync::mpsc::UnboundedReceiver<pb::Push>,
    pick: impl Fn(&pb::event::Kind) -> Option<T>,
) -> (String, T) {
    loop {
        let push = next_push(pushes).await;
        if let Some(t) = push.event.as_ref().and_then(|e| e.kind.as_ref()).and_then(&pick) {
            return (push.topic, t);
        }
    }
}

#[tokio::test]
async fn listing_escrows_cards_browse_filters_and_cancel_returns_them() {
    let ts = start(config()).await;
    let (seller, seller_id) = login(&ts, "mk-seller").await;
    let (other, _) = login(&ts, "mk-other").await;
    grant(&ts, &seller_id, &[(9, 3), (12, 2), (4, 5)], 0).await;

    let listed = seller.market_list(9, 2, 120).await.unwrap();
    let l = listed.listing.unwrap();
    assert_eq!((l.listing_id.as_str(), l.count, l.price, l.fee), ("9-1", 2, 120, 6));
    assert_eq!(l.status(), pb::MarketListingStatus::ListingOpen);
    assert_eq!(l.seller_id, seller_id);
    assert_eq!(count_of(&listed.player.unwrap(), 9), 1, "the cards left the seller");
    assert_eq!(count_of(&me(&seller).await, 9), 1);
    let escrow = market_state(&ts, 9).await;
    assert_eq!(escrow["cards_held"], 2, "and are held by the market: {escrow}");

    seller.market_list(12, 1, 300).await.unwrap();
    seller.market_list(4, 1, 15).await.unwrap();
    seller.market_list(4, 2, 15).await.unwrap();
    seller.market_list(4, 1, 80).await.unwrap();

    // Refusals, each by its documented status; none leaves a listing behind.
    let e = seller.market_list(9, 1, 0).await.unwrap_err();
    assert_eq!(status(&e), Status::PriceOutOfRange, "{e}");
    let e = seller.market_list(9, 1, 1_000_001).await.unwrap_err();
    assert_eq!(status(&e), Status::PriceOutOfRange);
    let e = seller.market_list(9, 0, 10).await.unwrap_err();
    assert_eq!(status(&e), Status::ListingCountOutOfRange);
    let e = seller.market_list(9, 5, 10).await.unwrap_err();
    assert_eq!(status(&e), Status::NotEnoughCards, "{e}");
    let e = seller.market_list(99, 1, 10).await.unwrap_err();
    assert_eq!(status(&e), Status::UnknownCard);
    assert_eq!(seller.market_my_listings().await.unwrap().listings.len(), 5);

    // Browse: everything, cheapest then oldest.
    let all = other.market_browse(pb::MarketBrowseRequest::default()).await.unwrap();
    let ids: Vec<_> = all.listings.iter().map(|l| l.listing_id.as_str()).collect();
    assert_eq!(ids, ["4-1", "4-2", "4-3", "9-1", "12-1"]);
    assert_eq!(all.total, 5);
    // By kind, by rarity, by price, and paged.
    let by_kind = other.market_browse(pb::MarketBrowseRequest { kinds: vec![4], ..Default::default() }).await.unwrap();
    assert_eq!(by_kind.total, 3);
    let epic = pb::MarketBrowseRequest { rarities: vec![pb::Rarity::Epic as i32], ..Default::default() };
    let epic = other.market_browse(epic).await.unwrap();
    assert_eq!(epic.listings.iter().map(|l| l.listing_id.as_str()).collect::<Vec<_>>(), ["12-1"]);
    let cheap = other.market_browse(pb::MarketBrowseRequest { max_price: 100, ..Default::default() }).await.unwrap();
    assert_eq!(cheap.total, 3, "120 and 300 are too dear");
    let page2 = pb::MarketBrowseRequest { offset: 2, limit: 2, ..Default::default() };
    let page2 = other.market_browse(page2).await.unwrap();
    assert_eq!(page2.listings.iter().map(|l| l.listing_id.as_str()).collect::<Vec<_>>(), ["4-3", "9-1"]);
    assert_eq!(page2.total, 5);
    let deepest = pb::MarketBrowseRequest { offset: 900, ..Default::default() };
    assert!(other.market_browse(deepest).await.unwrap().listings.is_empty());
    let too_deep = pb::MarketBrowseRequest { offset: 901, ..Default::default() };
    let e = other.market_browse(too_deep).await.unwrap_err();
    assert_eq!(status(&e), Status::BadRequest, "paging stops: {e}");

    // Cancel: seller only; the cards come back; the listing is gone.
    let e = other.market_cancel("9-1").await.unwrap_err();
    assert_eq!(status(&e), Status::NotTheSeller);
    let cancelled = seller.market_cancel("9-1").await.unwrap();
    assert_eq!(cancelled.listing.unwrap().status(), pb::MarketListingStatus::ListingCancelled);
    assert_eq!(count_of(&cancelled.player.unwrap(), 9), 3, "cards back");
    assert_eq!(market_state(&ts, 9).await["cards_held"], 0);
    let again = seller.market_cancel("9-1").await.unwrap();
    assert_eq!(count_of(&again.player.unwrap(), 9), 3, "a repeated cancel returns nothing twice");
    let e = other.market_buy("9-1").await.unwrap_err();
    assert_eq!(status(&e), Status::ListingGone);
    let e = other.market_buy("nonsense").await.unwrap_err();
    assert_eq!(status(&e), Status::ListingGone);
    assert_eq!(other.market_browse(pb::MarketBrowseRequest::default()).await.unwrap().total, 4);

    // At most MAX_ACTIVE_LISTINGS per player, over all kinds.
    grant(&ts, &seller_id, &[(0, 20)], 0).await;
    for _ in 4..MAX_ACTIVE_LISTINGS {
        seller.market_list(0, 1, 10).await.unwrap();
    }
    let e = seller.market_list(0, 1, 10).await.unwrap_err();
    assert_eq!(status(&e), Status::TooManyListings, "{e}");
    assert_eq!(seller.market_my_listings().await.unwrap().listings.len(), MAX_ACTIVE_LISTINGS as usize);
    ts.server.shutdown().await;
}

#[tokio::test]
async fn expired_listings_return_to_the_seller_on_the_tick() {
    let ts = start(config()).await;
    let (seller, seller_id) = login(&ts, "mk-expiry").await;
    let mut pushes = seller.pushes();
    grant(&ts, &seller_id, &[(5, 2)], 0).await;
    seller.market_list(5, 2, 40).await.unwrap();
    ts.clock.advance(Duration::from_millis(LISTING_TTL_MS - 1));
    ts.server.maintain().await;
    assert_eq!(count_of(&me(&seller).await, 5), 0, "not yet");
    assert_eq!(seller.market_my_listings().await.unwrap().listings.len(), 1);

    ts.clock.advance(Duration::from_millis(1));
    ts.server.maintain().await;
    assert_eq!(count_of(&me(&seller).await, 5), 2, "expired: cards back");
    assert!(seller.market_my_listings().await.unwrap().listings.is_empty());
    let (_, text) = push_where(&mut pushes, |k| match k {
        pb::event::Kind::Notice(n) => Some(n.text.clone()),
        _ => None,
    })
    .await;
    assert!(text.contains("expired"), "{text}");
    let state = market_state(&ts, 5).await;
    assert_eq!(state["cards_held"], 0, "{state}");
    let e = seller.market_cancel("5-1").await.unwrap_err();
    assert_eq!(status(&e), Status::ListingGone);
    ts.server.shutdown().await;
}

#[tokio::test]
async fn a_buy_moves_gold_and_cards_pays_an_offline_seller_and_burns_the_fee() {
    let ts = start(config()).await;
    let (seller, seller_id) = login(&ts, "mk-offline-seller").await;
    let (buyer, buyer_id) = login(&ts, "mk-buyer").await;
    let mut offers = buyer.pushes();
    grant(&ts, &seller_id, &[(14, 3)], 0).await;

    // The offer stream: the buyer follows kind 14 and sees the new listing.
    assert_eq!(buyer.market_subscribe(&[14, 3]).await.unwrap().kinds, [3, 14]);
    let price = 250;
    let listing = seller.market_list(14, 3, price).await.unwrap().listing.unwrap();
    // The shard's first change goes out at once (no feed event this period).
    let (topic, offer) = push_where(&mut offers, |k| match k {
        pb::event::Kind::MarketFeed(f) => f.offers.first().cloned(),
        _ => None,
    })
    .await;
    assert_eq!(topic, "market/kind/14");
    assert_eq!(offer.listing_id, listing.listing_id);

    // A seller cannot buy its own listing; a poor buyer cannot pay.
    let e = seller.market_buy(&listing.listing_id).await.unwrap_err();
    assert_eq!(status(&e), Status::CannotBuyOwnListing);
    let (poor, _) = login(&ts, "mk-poor").await;
    let expensive = {
        grant(&ts, &seller_id, &[(13, 1)], 0).await;
        seller.market_list(13, 1, 900).await.unwrap().listing.unwrap()
    };
    let gold_before = me(&poor).await.gold;
    let e = poor.market_buy(&expensive.listing_id).await.unwrap_err();
    assert_eq!(status(&e), Status::NotEnoughGold, "{e}");
    assert_eq!(me(&poor).await.gold, gold_before, "a refused buy takes nothing");
    assert_eq!(market_state(&ts, 13).await["gold_held"], 0);

    // The seller goes offline (logged out, connection closed) before the buy.
    let seller_gold = me(&seller).await.gold;
    seller.logout().await.unwrap();
    seller.close().await;
    ts.server.runtime().flush_all().await;

    let buyer_gold = me(&buyer).await.gold;
    let bought = buyer.market_buy(&listing.listing_id).await.unwrap();
    let l = bought.listing.unwrap();
    assert_eq!(l.status(), pb::MarketListingStatus::ListingSold);
    assert_eq!(l.buyer_id, buyer_id);
    let p = bought.player.unwrap();
    assert_eq!(p.gold, buyer_gold - price, "the buyer paid the price");
    assert_eq!(count_of(&p, 14), 3, "and got the cards");
    // Within a period of the last feed event the sale waits; the shard's
    // timer publishes it once the period is over.
    ts.server.maintain().await;
    // A round trip on the buyer's connection: a push sent before it arrives first.
    me(&buyer).await;
    assert!(
        !std::iter::from_fn(|| offers.try_recv().ok()).any(|p| matches!(
            p.event.and_then(|e| e.kind),
            Some(pb::event::Kind::MarketFeed(f)) if !f.closed.is_empty()
        )),
        "no second feed event within {FEED_EVERY_MS} ms"
    );
    ts.clock.advance(Duration::from_millis(FEED_EVERY_MS));
    ts.server.maintain().await;
    let (_, closed) = push_where(&mut offers, |k| match k {
        pb::event::Kind::MarketFeed(f) => f.closed.first().cloned(),
        _ => None,
    })
    .await;
    assert_eq!((closed.listing_id.as_str(), closed.status()), ("14-1", pb::MarketListingStatus::ListingSold));

    let state = market_state(&ts, 14).await;
    let fee = sale_fee(price);
    assert_eq!((state["fees_burnt"].as_u64(), state["gold_held"].as_u64()), (Some(fee), Some(0)), "{state}");
    assert_eq!(state["cards_held"], 0);

    // The seller comes back and finds the price minus the fee.
    let (seller, _) = login(&ts, "mk-offline-seller").await;
    assert_eq!(me(&seller).await.gold, seller_gold + price - fee);
    let e = poor.market_buy(&listing.listing_id).await.unwrap_err();
    assert_eq!(status(&e), Status::AlreadySold);
    ts.server.shutdown().await;
}

#[tokio::test]
async fn many_buyers_at_once_exactly_one_wins_each_listing_and_losers_keep_their_gold() {
    const BUYERS: usize = 20;
    const LISTINGS: usize = 5;
    let ts = start(config()).await;
    let (seller, seller_id) = login(&ts, "mk-rush-seller").await;
    grant(&ts, &seller_id, &[(11, LISTINGS as i64)], 0).await;
    let mut ids = Vec::new();
    let mut prices = BTreeMap::new();
    for i in 0..LISTINGS {
        let price = 50 + 10 * i as u64;
        let l = seller.market_list(11, 1, price).await.unwrap().listing.unwrap();
        prices.insert(l.listing_id.clone(), price);
        ids.push(l.listing_id);
    }
    let seller_gold = me(&seller).await.gold;
    let mut buyers = Vec::new();
    for b in 0..BUYERS {
        let (client, id) = login(&ts, &format!("mk-rush-{b}")).await;
        buyers.push((Arc::new(client), id));
    }
    let mut gold_before = 0;
    for (c, _) in &buyers {
        gold_before += me(c).await.gold;
    }

    let barrier = Arc::new(Barrier::new(BUYERS * LISTINGS));
    let mut tasks = Vec::new();
    for (b, (client, _)) in buyers.iter().enumerate() {
        for l in 0..LISTINGS {
            // Every buyer tries every listing, in a different order.
            let id = ids[(b + l) % LISTINGS].clone();
            let (client, barrier) = (client.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                (b, id.clone(), client.market_buy(&id).await)
            }));
        }
    }
    let mut winners: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for t in tasks {
        let (b, id, result) = t.await.unwrap();
        match result {
            Ok(r) => {
                assert_eq!(r.listing.unwrap().buyer_id, buyers[b].1);
                winners.entry(id).or_default().push(b);
            }
            Err(e) => assert!(
                matches!(status(&e), Status::AlreadySold | Status::ListingGone),
                "a loser is told the listing is sold: {e}"
            ),
        }
    }
    assert_eq!(winners.len(), LISTINGS, "every listing sold: {winners:?}");
    assert!(winners.values().all(|w| w.len() == 1), "exactly one winner each: {winners:?}");

    let mut gold_after = 0;
    let mut cards_after = 0;
    for (b, (c, _)) in buyers.iter().enumerate() {
        let p = me(c).await;
        let won: Vec<&String> = winners.iter().filter(|(_, w)| w.contains(&b)).map(|(id, _)| id).collect();
        assert_eq!(count_of(&p, 11) as usize, won.len(), "buyer {b} holds what it won");
        gold_after += p.gold;
        cards_after += count_of(&p, 11);
    }
    let paid: u64 = prices.values().sum();
    let fees: u64 = prices.values().map(|p| sale_fee(*p)).sum();
    assert_eq!(gold_after, gold_before - paid, "losers were refunded to the last coin");
    assert_eq!(cards_after as usize, LISTINGS);
    assert_eq!(me(&seller).await.gold, seller_gold + paid - fees);
    let state = market_state(&ts, 11).await;
    assert_eq!((state["gold_held"].as_u64(), state["fees_burnt"].as_u64()), (Some(0), Some(fees)), "{state}");
    assert!(state["buys"].as_object().unwrap().is_empty(), "no purchase left pending: {state}");
    ts.server.shutdown().await;
}

#[tokio::test]
async fn a_buy_resent_after_a_dropped_connection_or_a_new_session_never_pays_twice() {
    let ts = start(config()).await;
    let (seller, seller_id) = login(&ts, "mk-drop-seller").await;
    grant(&ts, &seller_id, &[(8, 2)], 0).await;
    let listing = seller.market_list(8, 2, 100).await.unwrap().listing.unwrap();
    let seller_gold = me(&seller).await.gold;

    let (buyer, _) = login(&ts, "mk-drop-buyer").await;
    let gold = me(&buyer).await.gold;
    let req = pb::MarketBuyRequest { listing_id: listing.listing_id.clone() };
    let r: pb::MarketBuyResponse = buyer.send_and_drop(method::MARKET_BUY, &req).await.unwrap();
    assert_eq!(r.listing.unwrap().status(), pb::MarketListingStatus::ListingSold);
    let p = me(&buyer).await;
    assert_eq!((p.gold, count_of(&p, 8)), (gold - 100, 2), "paid once, delivered once");

    // A retry from a brand-new session (the old one is gone, so the session
    // cannot dedupe it): the market answers the first success again.
    buyer.logout().await.unwrap();
    buyer.close().await;
    let (buyer, _) = login(&ts, "mk-drop-buyer").await;
    let again = buyer.market_buy(&listing.listing_id).await.unwrap();
    assert_eq!(again.listing.unwrap().status(), pb::MarketListingStatus::ListingSold);
    let p = again.player.unwrap();
    assert_eq!((p.gold, count_of(&p, 8)), (gold - 100, 2), "nothing paid or delivered twice");
    assert_eq!(me(&seller).await.gold, seller_gold + 100 - sale_fee(100), "the seller was paid once");
    ts.server.shutdown().await;
}

/// Sums the world from the entities' state and checks that nothing was
/// created or destroyed outside the rules.
async fn audit(ts: &TestServer, players: &[String]) {
    let rt = ts.server.runtime();
    let (mut gold, mut minted, mut burnt) = (0u64, 0u64, 0u64);
    let (mut cards, mut cards_minted, mut cards_burnt) = (0u64, 0u64, 0u64);
    for id in players {
        let p = rt.state_json("player", id).await.unwrap().expect("player stored");
        gold += p["gold"].as_u64().unwrap();
        minted += p["ledger"]["gold_minted"].as_u64().unwrap();
        burnt += p["ledger"]["gold_burnt"].as_u64().unwrap();
        cards += p["cards"].as_object().unwrap().values().map(|s| s["count"].as_u64().unwrap()).sum::<u64>();
        cards_minted += p["ledger"]["cards_minted"].as_u64().unwrap();
        cards_burnt += p["ledger"]["cards_burnt"].as_u64().unwrap();
    }
    let (mut held, mut fees, mut cards_held) = (0u64, 0u64, 0u64);
    for kind in 0..MARKET_SHARDS {
        let Some(m) = rt.state_json("market", &kind.to_string()).await.unwrap() else { continue };
        assert!(m["buys"].as_object().unwrap().is_empty(), "purchases left pending in market {kind}: {m}");
        held += m["gold_held"].as_u64().unwrap();
        fees += m["fees_burnt"].as_u64().unwrap();
        let counter = m["cards_held"].as_u64().unwrap();
        // The counter must match the listings themselves.
        let mut in_listings = 0;
        for l in m["listings"].as_object().unwrap().values() {
            assert_ne!(l["state"], "Escrowing", "listing left escrowing in market {kind}: {l}");
            in_listings += l["count"].as_u64().unwrap();
        }
        assert_eq!(counter, in_listings, "market {kind}: cards_held disagrees with its listings: {m}");
        cards_held += counter;
    }
    println!("audit: gold {gold} + held {held} + fees {fees} + burnt {burnt} vs minted {minted}");
    println!("audit: cards {cards} + in listings {cards_held} vs minted {cards_minted} - burnt {cards_burnt}");
    assert_eq!(gold + held + fees + burnt, minted, "gold is conserved");
    assert_eq!(cards + cards_held, cards_minted - cards_burnt, "every card is in exactly one place");
}

#[tokio::test]
async fn conservation_audit_over_random_play_with_disconnects_and_a_restart() {
    const PLAYERS: usize = 10;
    const ROUNDS: usize = 30;
    let seed = std::env::var("MARKET_AUDIT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("market audit seed {seed} (rerun with MARKET_AUDIT_SEED={seed})");
    let mut rng = SplitMix64::new(seed);

    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = ManualClock::default();
    let mut ts = start_on(config(), store.clone(), clock.clone()).await;
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for i in 0..PLAYERS {
        let (c, id) = login(&ts, &format!("audit-{i}")).await;
        grant(&ts, &id, &[(0, 3), (3, 3), (8, 2), (9, 2), (12, 1), (15, 1)], 0).await;
        clients.push(Arc::new(c));
        ids.push(id);
    }

    for round in 0..ROUNDS {
        if round == ROUNDS / 2 {
            // A restart in the middle, cutting requests in flight (the cut
            // point varies with the seed): whatever a purchase or listing had
            // done must be finished or refunded from the store alone.
            let mut tasks = Vec::new();
            for (i, client) in clients.iter().enumerate() {
                let client = client.clone();
                let (action, a, b) = (rng.below(90), rng.next_u64(), rng.next_u64());
                tasks.push(tokio::spawn(async move { random_action(&client, i, action, a, b).await }));
            }
            ts = common::restart_mid_flight(ts, config(), &clients, tasks, rng.below(60)).await;
            clients.clear();
            for i in 0..PLAYERS {
                clients.push(Arc::new(login(&ts, &format!("audit-{i}")).await.0));
            }
            continue;
        }
        let mut tasks = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let client = client.clone();
            let (action, a, b) = (rng.below(100), rng.next_u64(), rng.next_u64());
            tasks.push(tokio::spawn(async move { random_action(&client, i, action, a, b).await }));
        }
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                panic!("round {round}: unexpected failure {e}");
            }
        }
        if rng.below(4) == 0 {
            // Time passes: some listings expire.
            clock.advance(Duration::from_millis(rng.below(LISTING_TTL_MS / 2)));
            ts.server.maintain().await;
        }
        if rng.below(3) == 0 {
            // A client loses its connection without telling anyone, or
            // leaves for good and comes back as a new session.
            let i = rng.below(PLAYERS as u64) as usize;
            if rng.below(2) == 0 {
                clients[i].drop_connection().await;
            } else {
                clients[i].close().await;
                clients[i] = Arc::new(login(&ts, &format!("audit-{i}")).await.0);
            }
        }
    }
    // Let everything expire and every pending step finish, then audit.
    ts.server.maintain().await;
    audit(&ts, &ids).await;
    clock.advance(Duration::from_millis(LISTING_TTL_MS));
    ts.server.maintain().await;
    audit(&ts, &ids).await;
    for kind in 0..MARKET_SHARDS {
        if let Some(m) = ts.server.runtime().state_json("market", &kind.to_string()).await.unwrap() {
            assert!(m["listings"].as_object().unwrap().is_empty(), "all expired: {m}");
        }
    }
    ts.server.shutdown().await;
}

/// One random market action of player `i`. Refusals that random play runs
/// into are `Ok`; anything else is returned.
async fn random_action(client: &Client, i: usize, action: u64, a: u64, b: u64) -> Result<(), ClientError> {
    let ok = |r: Result<(), ClientError>| match r {
        Err(e)
            if matches!(
                e.status(),
                Some(
                    Status::NotEnoughCards
                        | Status::NotEnoughGold
                        | Status::TooManyListings
                        | Status::AlreadySold
                        | Status::ListingGone
                        | Status::CannotBuyOwnListing
                )
            ) =>
        {
            Ok(())
        }
        other => other.map_err(|e| {
            eprintln!("player {i}: {e}");
            e
        }),
    };
    match action {
        0..=34 => {
            let p = client.get_player().await?.player.unwrap_or_default();
            let owned: Vec<&pb::Card> = p.cards.iter().filter(|c| c.count > 0).collect();
            if owned.is_empty() {
                return Ok(());
            }
            let card = owned[(a % owned.len() as u64) as usize];
            let count = 1 + (b % card.count.min(3) as u64) as u32;
            ok(client.market_list(card.kind, count, 10 + b % 190).await.map(|_| ()))
        }
        35..=74 => {
            let page = client.market_browse(pb::MarketBrowseRequest { limit: 30, ..Default::default() }).await?;
            if page.listings.is_empty() {
                return Ok(());
            }
            let id = page.listings[(a % page.listings.len() as u64) as usize].listing_id.clone();
            if action < 60 {
                ok(client.market_buy(&id).await.map(|_| ()))
            } else {
                // The answer is lost on the way back; the SDK resumes and
                // re-sends, and the purchase must happen at most once.
                let req = pb::MarketBuyRequest { listing_id: id };
                ok(client.send_and_drop::<_, pb::MarketBuyResponse>(method::MARKET_BUY, &req).await.map(|_| ()))
            }
        }
        75..=89 => {
            let mine = client.market_my_listings().await?.listings;
            if mine.is_empty() {
                return Ok(());
            }
            let id = &mine[(a % mine.len() as u64) as usize].listing_id;
            ok(client.market_cancel(id).await.map(|_| ()))
        }
        _ => client.market_subscribe(&[(a % MARKET_SHARDS as u64) as u32]).await.map(|_| ()),
    }
}
