use super::begin::Begin;
use super::model::*;
use super::rules::*;
use super::shard::Market;
use crate::*;

const T0: u64 = 1_767_225_600_000;

#[test]
fn the_fee_is_five_percent_rounded_down_at_least_one() {
    assert_eq!(sale_fee(1), 1);
    assert_eq!(sale_fee(19), 1);
    assert_eq!(sale_fee(40), 2);
    assert_eq!(sale_fee(100), 5);
    assert_eq!(sale_fee(1_000_000), 50_000);
}

#[test]
fn listing_ids_name_their_shard() {
    assert_eq!(listing_id(7, 12), "7-12");
    assert_eq!(parse_listing_id("7-12"), Some((7, 12)));
    assert_eq!(parse_listing_id("16-1"), None, "no such kind");
    assert_eq!(parse_listing_id("x-1"), None);
    assert_eq!(parse_listing_id("3"), None);
}

fn open(m: &mut Market, seller: &str, price: u64, now: u64) -> u64 {
    let n = m.begin_list(seller, 1, price, 0, now).unwrap();
    m.set_open(n);
    n
}

#[test]
fn the_feed_keeps_the_newest_and_never_announces_what_came_and_went() {
    let mut m = Market::new(3);
    let views: Vec<ListingView> = (0..FEED_OFFERS as u64 + 5)
        .map(|i| {
            let n = open(&mut m, &format!("s{i}"), 10 + i, T0);
            m.listings.get(&n).unwrap().view()
        })
        .collect();
    for v in &views {
        m.feed.offer(v.clone());
    }
    assert_eq!(m.feed.offers.len(), FEED_OFFERS, "bounded");
    assert_eq!(m.feed.offers[0].listing_id, views[5].listing_id, "the oldest fell out");
    // Opened and closed within one period: in neither list.
    let last = views.last().unwrap().listing_id.clone();
    m.feed.close(last.clone(), CloseReason::Sold);
    assert!(m.feed.offers.iter().all(|o| o.listing_id != last));
    assert!(m.feed.closed.is_empty());
    // Announced earlier, closed now: a closing.
    m.feed.close("3-1".into(), CloseReason::Cancelled);
    assert_eq!(m.feed.closed, [("3-1".to_string(), CloseReason::Cancelled)]);
    for i in 0..FEED_CLOSED + 3 {
        m.feed.close(format!("3-{}", 100 + i), CloseReason::Expired);
    }
    assert_eq!(m.feed.closed.len(), FEED_CLOSED);
    assert_eq!(m.feed.closed.last().unwrap().0, format!("3-{}", 100 + FEED_CLOSED + 2));
}

#[test]
fn listing_checks_price_count_and_the_per_player_limit() {
    let mut m = Market::new(3);
    assert_eq!(
        m.begin_list("s", 1, 0, 0, T0),
        Err(MarketError::PriceOutOfRange { price: 0, min: MIN_PRICE, max: MAX_PRICE }.into())
    );
    assert!(matches!(
        m.begin_list("s", 1, MAX_PRICE + 1, 0, T0),
        Err(GameError::Market(MarketError::PriceOutOfRange { .. }))
    ));
    assert!(matches!(
        m.begin_list("s", 0, 10, 0, T0),
        Err(GameError::Market(MarketError::ListingCountOutOfRange { .. }))
    ));
    assert_eq!(m.begin_list("s", 1, 10, 9, T0), Ok(1), "ids come from the shard's counter");
    assert_eq!(m.listings.get(&1).unwrap().expires_at_ms, T0 + LISTING_TTL_MS);
    assert_eq!(
        m.begin_list("s", 1, 10, 9, T0),
        Err(MarketError::TooManyListings { max: MAX_ACTIVE_LISTINGS }.into()),
        "nine elsewhere and one here"
    );
    assert_eq!(m.begin_list("other", 1, 10, 9, T0), Ok(2));
    assert_eq!(m.next_listing, 2, "a refusal uses no id");
}

#[test]
fn buying_refuses_own_and_closed_listings_and_is_idempotent_per_buyer() {
    let mut m = Market::new(0);
    let n = open(&mut m, "s", 50, T0);
    assert_eq!(m.begin_buy(n, "s"), Err(MarketError::OwnListing("0-1".into()).into()));
    assert_eq!(m.begin_buy(99, "b"), Err(MarketError::ListingGone("0-99".into()).into()));
    let Ok(Begin::Started(op)) = m.begin_buy(n, "b") else { panic!() };
    assert_eq!(m.begin_buy(n, "b"), Ok(Begin::Started(op)), "a retry joins the pending purchase");
    let Ok(Begin::Started(op2)) = m.begin_buy(n, "c") else { panic!() };
    assert_ne!(op, op2, "another buyer may try too: the hold decides");
    m.take_off_market(n, ListingState::Sold { buyer: "b".into() });
    assert_eq!(m.begin_buy(n, "d"), Err(MarketError::AlreadySold("0-1".into()).into()));
    assert_eq!(m.browse(None, 10), (vec![], 0), "sold: off the market");
}

#[test]
fn cancel_is_for_the_seller_and_expiry_follows_the_clock() {
    let mut m = Market::new(0);
    let a = open(&mut m, "s", 50, T0);
    let b = open(&mut m, "s", 60, T0 + 1000);
    assert_eq!(m.begin_cancel(a, "x"), Err(MarketError::NotSeller("0-1".into()).into()));
    assert_eq!(m.begin_cancel(a, "s"), Ok(Begin::Started(OpRef::Listing(a))));
    assert_eq!(m.begin_cancel(a, "s"), Ok(Begin::Started(OpRef::Listing(a))), "a retry joins");
    assert_eq!(m.expire_due(T0 + LISTING_TTL_MS), 0, "b is one second younger; a is cancelled");
    assert_eq!(m.expire_due(T0 + 1000 + LISTING_TTL_MS), 1);
    assert_eq!(m.listings.get(&b).unwrap().state, ListingState::Returning { reason: CloseReason::Expired });
    assert_eq!(m.pending_ops(), vec![OpRef::Listing(a), OpRef::Listing(b)]);
}

#[test]
fn browse_sorts_by_price_then_age_and_pages() {
    let mut m = Market::new(0);
    open(&mut m, "s", 99, T0);
    open(&mut m, "s", 30, T0 + 1);
    open(&mut m, "s", 10, T0 + 2);
    open(&mut m, "s", 30, T0 + 5);
    let _escrowing = m.begin_list("s", 1, 1, 0, T0 + 6).unwrap();
    let (page, total) = m.browse(Some(50), 2);
    assert_eq!(total, 3, "escrowing and too dear ones do not match");
    let ids: Vec<_> = page.iter().map(|v| v.listing_id.as_str()).collect();
    assert_eq!(ids, ["0-3", "0-2"], "cheapest first; equal prices listed first");
    assert_eq!(m.browse(None, 10).1, 4);

    // The index follows every way off the market, and a reload.
    assert_eq!(m.begin_cancel(4, "s"), Ok(Begin::Started(OpRef::Listing(4))));
    assert_eq!(m.expire_due(T0 + LISTING_TTL_MS), 1, "the dearest (listed first) expired");
    let ids = |m: &Market| m.browse(None, 10).0.into_iter().map(|v| v.listing_id).collect::<Vec<_>>();
    assert_eq!(ids(&m), ["0-3", "0-2"]);
    let mut reloaded = m.clone();
    reloaded.book.clear();
    reloaded.rebuild_indexes();
    assert_eq!(ids(&reloaded), ["0-3", "0-2"]);
}
