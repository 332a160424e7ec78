//! Market methods: list, browse, buy, cancel, subscribe, my_listings.
//!
//! The market is sharded by card kind (`Market` entity, key = kind). An
//! operation that moves value is recorded by its shard first and then driven
//! here one durable step at a time (`MarketMsg::Settle`) until it is done; a
//! step that cannot complete now (a player did not answer) is left to the
//! game tick, which finishes or refunds it, and the request is answered
//! UNAVAILABLE.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use guildhall_entity::Runtime;
use guildhall_game::market::{
    market_topic, parse_listing_id, shard_key, CloseReason, ListingStatus, ListingView, Market, MarketEvent, MarketMsg,
    MarketReply, MARKET_SHARDS,
};
use guildhall_game::{GameError, PlayerMsg, PlayerReply, PlayerView, Rarity, CATALOGUE};
use guildhall_protocol::{method, pb, Status};
use prost::Message;

use super::player::{call_player, player_pb, rarity_pb};
use super::{call_error, decode, game_error};
use crate::session::{Answer, Session};

/// Methods of this module.
pub const METHODS: &[&str] = &[
    method::MARKET_LIST,
    method::MARKET_BROWSE,
    method::MARKET_BUY,
    method::MARKET_CANCEL,
    method::MARKET_SUBSCRIBE,
    method::MARKET_MY_LISTINGS,
];

/// Subscription slots of the offer stream, one per card kind, so that a
/// session can follow any subset of kinds (a slot holds one topic).
const SLOTS: [&str; MARKET_SHARDS as usize] = [
    "market/0",
    "market/1",
    "market/2",
    "market/3",
    "market/4",
    "market/5",
    "market/6",
    "market/7",
    "market/8",
    "market/9",
    "market/10",
    "market/11",
    "market/12",
    "market/13",
    "market/14",
    "market/15",
];

/// Default and largest browse page.
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

/// Settle rounds a request drives before giving up to the tick (a purchase
/// needs three).
const MAX_SETTLE_ROUNDS: usize = 6;

pub async fn run(rt: &Runtime, session: &Arc<Session>, m: &str, payload: &[u8]) -> Result<Bytes, Answer> {
    let player_id: &str = &session.player_id;
    let bytes = match m {
        method::MARKET_LIST => {
            let req = decode::<pb::MarketListRequest>(payload)?;
            check_kind(req.kind)?;
            let others =
                join_all((0..MARKET_SHARDS).filter(|k| *k != req.kind).map(|k| listings_of(rt, k, player_id))).await;
            let mut others_active = 0u32;
            for listings in others {
                others_active += listings?.len() as u32;
            }
            let msg =
                MarketMsg::List { seller: player_id.to_string(), count: req.count, price: req.price, others_active };
            let listing = drive(rt, req.kind, call_market(rt, req.kind, msg).await?).await?;
            let player = profile(rt, player_id).await?;
            pb::MarketListResponse { listing: Some(listing_pb(&listing)), player: Some(player_pb(&player)) }
                .encode_to_vec()
        }
        method::MARKET_BROWSE => {
            let req = decode::<pb::MarketBrowseRequest>(payload)?;
            browse(rt, &req).await?.encode_to_vec()
        }
        method::MARKET_BUY => {
            let req = decode::<pb::MarketBuyRequest>(payload)?;
            let (kind, n) = parse(&req.listing_id)?;
            let msg = MarketMsg::Buy { listing: n, buyer: player_id.to_string() };
            let listing = drive(rt, kind, call_market(rt, kind, msg).await?).await?;
            let player = profile(rt, player_id).await?;
            pb::MarketBuyResponse { listing: Some(listing_pb(&listing)), player: Some(player_pb(&player)) }
                .encode_to_vec()
        }
        method::MARKET_CANCEL => {
            let req = decode::<pb::MarketCancelRequest>(payload)?;
            let (kind, n) = parse(&req.listing_id)?;
            let msg = MarketMsg::Cancel { listing: n, player: player_id.to_string() };
            let listing = drive(rt, kind, call_market(rt, kind, msg).await?).await?;
            let player = profile(rt, player_id).await?;
            pb::MarketCancelResponse { listing: Some(listing_pb(&listing)), player: Some(player_pb(&player)) }
                .encode_to_vec()
        }
        method::MARKET_SUBSCRIBE => {
            let req = decode::<pb::MarketSubscribeRequest>(payload)?;
            for k in &req.kinds {
                check_kind(*k)?;
            }
            for kind in 0..MARKET_SHARDS {
                let topic = req.kinds.contains(&kind).then(|| market_topic(kind));
                session.resubscribe_stream(SLOTS[kind as usize], topic, rt, super::deliver_event);
            }
            let mut kinds = req.kinds;
            kinds.sort_unstable();
            kinds.dedup();
            pb::MarketSubscribeResponse { kinds }.encode_to_vec()
        }
        method::MARKET_MY_LISTINGS => {
            decode::<pb::MarketMyListingsRequest>(payload)?;
            let all = join_all((0..MARKET_SHARDS).map(|k| listings_of(rt, k, player_id))).await;
            let mut listings = Vec::new();
            for l in all {
                listings.extend(l?.iter().map(listing_pb));
            }
            pb::MarketMyListingsResponse { listings }.encode_to_vec()
        }
        other => return Err(Answer::err(Status::UnknownMethod, format!("unknown method {other:?}"))),
    };
    Ok(bytes.into())
}

fn check_kind(kind: u32) -> Result<(), Answer> {
    if kind < MARKET_SHARDS {
        Ok(())
    } else {
        Err(game_error(&GameError::UnknownCard(kind)))
    }
}

/// A listing id names its shard; one that cannot name a listing is gone.
fn parse(listing_id: &str) -> Result<(u32, u64), Answer> {
    parse_listing_id(listing_id).ok_or_else(|| game_error(&GameError::ListingGone(listing_id.to_string())))
}

async fn call_market(rt: &Runtime, kind: u32, msg: MarketMsg) -> Result<MarketReply, Answer> {
    match rt.call::<Market>(&shard_key(kind), msg).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(game)) => Err(game_error(&game)),
        Err(call) => Err(call_error(&call)),
    }
}

/// Drives a started operation to its end, one durable step per call.
async fn drive(rt: &Runtime, kind: u32, started: MarketReply) -> Result<ListingView, Answer> {
    let op = match started {
        MarketReply::Started(op) => op,
        MarketReply::Done(view) => return Ok(view),
        other => return Err(unexpected(other)),
    };
    for _ in 0..MAX_SETTLE_ROUNDS {
        match call_market(rt, kind, MarketMsg::Settle { op }).await? {
            MarketReply::Done(view) => return Ok(view),
            MarketReply::Pending => continue,
            MarketReply::Stalled(why) => return Err(Answer::err(Status::Unavailable, why)),
            other => return Err(unexpected(other)),
        }
    }
    Err(Answer::err(Status::Unavailable, "the operation is still in progress; it completes by itself"))
}

fn unexpected(reply: MarketReply) -> Answer {
    Answer::err(Status::Internal, format!("unexpected market reply {reply:?}"))
}

async fn listings_of(rt: &Runtime, kind: u32, player: &str) -> Result<Vec<ListingView>, Answer> {
    match call_market(rt, kind, MarketMsg::ListingsOf { player: player.to_string() }).await? {
        MarketReply::Listings { listings, .. } => Ok(listings),
        other => Err(unexpected(other)),
    }
}

async fn profile(rt: &Runtime, player_id: &str) -> Result<PlayerView, Answer> {
    match call_player(rt, player_id, PlayerMsg::Get).await? {
        PlayerReply::Profile(p) => Ok(p),
        other => Err(Answer::err(Status::Internal, format!("unexpected player reply {other:?}"))),
    }
}

/// Queries every shard the filter allows, in parallel, and merges: each
/// shard returns its best `offset + limit` matches, so the merged page is
/// exact.
async fn browse(rt: &Runtime, req: &pb::MarketBrowseRequest) -> Result<pb::MarketBrowseResponse, Answer> {
    for k in &req.kinds {
        check_kind(*k)?;
    }
    let rarities: Vec<Rarity> = req
        .rarities
        .iter()
        .map(|r| match pb::Rarity::try_from(*r) {
            Ok(pb::Rarity::Common) => Ok(Rarity::Common),
            Ok(pb::Rarity::Rare) => Ok(Rarity::Rare),
            Ok(pb::Rarity::Epic) => Ok(Rarity::Epic),
            Ok(pb::Rarity::Legendary) => Ok(Rarity::Legendary),
            Err(_) => Err(Answer::err(Status::BadRequest, format!("unknown rarity {r}"))),
        })
        .collect::<Result<_, _>>()?;
    let limit = match req.limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    let max_price = (req.max_price > 0).then_some(req.max_price);
    let kinds: Vec<u32> = CATALOGUE
        .iter()
        .filter(|c| req.kinds.is_empty() || req.kinds.contains(&c.kind))
        .filter(|c| rarities.is_empty() || rarities.contains(&c.rarity))
        .map(|c| c.kind)
        .collect();
    let want = req.offset.saturating_add(limit);
    let replies =
        join_all(kinds.iter().map(|k| call_market(rt, *k, MarketMsg::Browse { max_price, limit: want }))).await;
    let mut total = 0;
    let mut all = Vec::new();
    for reply in replies {
        match reply? {
            MarketReply::Listings { listings, total: t } => {
                total += t;
                all.extend(listings);
            }
            other => return Err(unexpected(other)),
        }
    }
    all.sort_by(|a, b| {
        (a.price, a.created_at_ms, a.kind, &a.listing_id).cmp(&(b.price, b.created_at_ms, b.kind, &b.listing_id))
    });
    let listings = all.iter().skip(req.offset as usize).take(limit as usize).map(listing_pb).collect();
    Ok(pb::MarketBrowseResponse { listings, total })
}

fn status_pb(s: ListingStatus) -> pb::MarketListingStatus {
    match s {
        ListingStatus::Pending => pb::MarketListingStatus::ListingPending,
        ListingStatus::Open => pb::MarketListingStatus::ListingOpen,
        ListingStatus::Sold => pb::MarketListingStatus::ListingSold,
        ListingStatus::Cancelled => pb::MarketListingStatus::ListingCancelled,
        ListingStatus::Expired => pb::MarketListingStatus::ListingExpired,
    }
}

pub fn listing_pb(l: &ListingView) -> pb::MarketListing {
    pb::MarketListing {
        listing_id: l.listing_id.clone(),
        seller_id: l.seller.clone(),
        kind: l.kind,
        name: l.name.clone(),
        rarity: rarity_pb(l.rarity) as i32,
        count: l.count,
        price: l.price,
        created_at_ms: l.created_at_ms,
        expires_at_ms: l.expires_at_ms,
        status: status_pb(l.status) as i32,
        buyer_id: l.buyer.clone().unwrap_or_default(),
        fee: l.fee,
    }
}

/// The push of a market event (the event map of `deliver_event`).
pub fn event_pb(event: MarketEvent) -> pb::event::Kind {
    match event {
        MarketEvent::Feed { kind, offers, closed } => pb::event::Kind::MarketFeed(pb::MarketFeed {
            kind,
            offers: offers.iter().map(listing_pb).collect(),
            closed: closed
                .into_iter()
                .map(|(listing_id, reason)| {
                    let status = match reason {
                        CloseReason::Sold => pb::MarketListingStatus::ListingSold,
                        CloseReason::Cancelled => pb::MarketListingStatus::ListingCancelled,
                        CloseReason::Expired => pb::MarketListingStatus::ListingExpired,
                    };
                    pb::MarketListingClosed { listing_id, kind, status: status as i32 }
                })
                .collect(),
        }),
    }
}
