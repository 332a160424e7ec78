//! Market methods: list, browse, buy, cancel, subscribe, my_listings. Each
//! decodes, calls `guildhall_game::market::ops`, and encodes; the offer
//! stream (`MarketFeed` pushes) is the session's: one subscription slot
//! per card kind (`market/kind/{k}`), at most one stream push per session
//! per `stream_push_interval_ms`.

use std::sync::Arc;

use bytes::Bytes;
use guildhall_entity::Runtime;
use guildhall_game::market::ops::{self, BrowseQuery};
use guildhall_game::market::{
    market_topic, CloseReason, ListingStatus, ListingView, MarketError, MarketEvent, MARKET_SHARDS,
};
use guildhall_game::{PlayerView, Rarity};
use guildhall_protocol::{method, pb, Status};
use prost::Message;

use super::player::{player_pb, rarity_pb};
use super::{decode, op_error};
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

pub async fn run(rt: &Runtime, session: &Arc<Session>, m: &str, payload: &[u8]) -> Result<Bytes, Answer> {
    let me: &str = &session.player_id;
    let bytes = match m {
        method::MARKET_LIST => {
            let req = decode::<pb::MarketListRequest>(payload)?;
            let done = ops::list(rt, me, req.kind, req.count, req.price).await.map_err(op_error)?;
            listing_answer(done, |listing, player| pb::MarketListResponse { listing, player }).encode_to_vec()
        }
        method::MARKET_BROWSE => {
            let req = decode::<pb::MarketBrowseRequest>(payload)?;
            if req.offset > ops::MAX_OFFSET {
                let why =
                    format!("offset {} is past {}: narrow the filter (kinds, max_price)", req.offset, ops::MAX_OFFSET);
                return Err(Answer::err(Status::BadRequest, why));
            }
            let query = BrowseQuery {
                kinds: req.kinds,
                rarities: req.rarities.iter().map(|r| rarity(*r)).collect::<Result<_, _>>()?,
                max_price: (req.max_price > 0).then_some(req.max_price),
                offset: req.offset,
                limit: req.limit,
            };
            let (listings, total) = ops::browse(rt, &query).await.map_err(op_error)?;
            pb::MarketBrowseResponse { listings: listings.iter().map(listing_pb).collect(), total }.encode_to_vec()
        }
        method::MARKET_BUY => {
            let req = decode::<pb::MarketBuyRequest>(payload)?;
            let done = ops::buy(rt, me, &req.listing_id).await.map_err(op_error)?;
            listing_answer(done, |listing, player| pb::MarketBuyResponse { listing, player }).encode_to_vec()
        }
        method::MARKET_CANCEL => {
            let req = decode::<pb::MarketCancelRequest>(payload)?;
            let done = ops::cancel(rt, me, &req.listing_id).await.map_err(op_error)?;
            listing_answer(done, |listing, player| pb::MarketCancelResponse { listing, player }).encode_to_vec()
        }
        method::MARKET_SUBSCRIBE => {
            let req = decode::<pb::MarketSubscribeRequest>(payload)?;
            for k in &req.kinds {
                ops::check_kind(*k).map_err(|e| op_error(e.into()))?;
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
            let listings = ops::listings_of(rt, me).await.map_err(op_error)?;
            pb::MarketMyListingsResponse { listings: listings.iter().map(listing_pb).collect() }.encode_to_vec()
        }
        other => return Err(Answer::err(Status::UnknownMethod, format!("unknown method {other:?}"))),
    };
    Ok(bytes.into())
}

/// The response of an operation on one listing: the listing and the
/// caller's profile after it.
fn listing_answer<R>(
    (listing, player): (ListingView, PlayerView),
    make: impl FnOnce(Option<pb::MarketListing>, Option<pb::Player>) -> R,
) -> R {
    make(Some(listing_pb(&listing)), Some(player_pb(&player)))
}

fn rarity(r: i32) -> Result<Rarity, Answer> {
    match pb::Rarity::try_from(r) {
        Ok(pb::Rarity::Common) => Ok(Rarity::Common),
        Ok(pb::Rarity::Rare) => Ok(Rarity::Rare),
        Ok(pb::Rarity::Epic) => Ok(Rarity::Epic),
        Ok(pb::Rarity::Legendary) => Ok(Rarity::Legendary),
        Err(_) => Err(Answer::err(Status::BadRequest, format!("unknown rarity {r}"))),
    }
}

/// The protocol status of each refusal of the market.
pub(super) fn status(e: &MarketError) -> Status {
    match e {
        MarketError::ListingGone(_) => Status::ListingGone,
        MarketError::AlreadySold(_) => Status::AlreadySold,
        MarketError::OwnListing(_) => Status::CannotBuyOwnListing,
        MarketError::NotSeller(_) => Status::NotTheSeller,
        MarketError::PriceOutOfRange { .. } => Status::PriceOutOfRange,
        MarketError::ListingCountOutOfRange { .. } => Status::ListingCountOutOfRange,
        MarketError::TooManyListings { .. } => Status::TooManyListings,
        MarketError::MarketRetryLater(_) => Status::Unavailable,
    }
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
