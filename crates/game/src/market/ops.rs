//! Market operations for callers outside the market's shards: the server's
//! wire edge, an admin console, a test, another node.
//!
//! An operation that moves value is recorded by its shard first and then
//! driven here one durable step at a time (`MarketMsg::Settle`) until it is
//! done. A step that cannot complete now (a player did not answer) is left
//! to the shard's periodic work, which finishes or refunds it, and the
//! caller hears [`OpError::InProgress`].

use futures_util::future::join_all;
use guildhall_entity::Runtime;

use super::model::*;
use super::msg::{MarketMsg, MarketReply};
use super::rules::*;
use super::shard::Market;
use crate::op::{call, unexpected, OpError};
use crate::player::{self, PlayerView};
use crate::{MarketError, PlayerError, Rarity, CATALOGUE};

/// Settle rounds an operation is driven before it is left to the shard's
/// periodic work (a purchase needs three).
const MAX_SETTLE_ROUNDS: usize = 6;
/// Default and largest browse page.
pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;
/// Deepest browse offset: each shard reads `offset + limit` listings, most
/// of them from the store, so paging stops here and a player narrows the
/// filter instead.
pub const MAX_OFFSET: u32 = 900;

/// What a browse asks for. Empty lists and zeros do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowseQuery {
    pub kinds: Vec<u32>,
    pub rarities: Vec<Rarity>,
    pub max_price: Option<u64>,
    pub offset: u32,
    /// 0: [`DEFAULT_PAGE`]; at most [`MAX_PAGE`].
    pub limit: u32,
}

/// Refuses a card kind the catalogue does not have.
pub fn check_kind(kind: u32) -> Result<(), PlayerError> {
    if kind < MARKET_SHARDS {
        Ok(())
    } else {
        Err(PlayerError::UnknownCard(kind))
    }
}

/// A listing id names its shard; one that cannot name a listing is gone.
fn parse(listing_id: &str) -> Result<(u32, u64), MarketError> {
    parse_listing_id(listing_id).ok_or_else(|| MarketError::ListingGone(listing_id.to_string()))
}

async fn call_shard(rt: &Runtime, kind: u32, msg: MarketMsg) -> Result<MarketReply, OpError> {
    call::<Market, _>(rt, &shard_key(kind), msg).await
}

/// Drives a started operation to its end, one durable step per call.
async fn drive(rt: &Runtime, kind: u32, started: MarketReply) -> Result<ListingView, OpError> {
    let op = match started {
        MarketReply::Started(op) => op,
        MarketReply::Done(view) => return Ok(view),
        other => return Err(unexpected(other)),
    };
    for _ in 0..MAX_SETTLE_ROUNDS {
        match call_shard(rt, kind, MarketMsg::Settle { op }).await? {
            MarketReply::Done(view) => return Ok(view),
            MarketReply::Pending => continue,
            MarketReply::Stalled(why) => return Err(OpError::InProgress(why)),
            other => return Err(unexpected(other)),
        }
    }
    Err(OpError::InProgress("the operation is still in progress; it completes by itself".into()))
}

/// `player`'s active listings on one shard.
async fn listings_on(rt: &Runtime, kind: u32, player: &str) -> Result<Vec<ListingView>, OpError> {
    match call_shard(rt, kind, MarketMsg::ListingsOf { player: player.to_string() }).await? {
        MarketReply::Listings { listings, .. } => Ok(listings),
        other => Err(unexpected(other)),
    }
}

/// `player`'s active listings (escrowing or open) on every shard.
pub async fn listings_of(rt: &Runtime, player: &str) -> Result<Vec<ListingView>, OpError> {
    let all = join_all((0..MARKET_SHARDS).map(|k| listings_on(rt, k, player))).await;
    let mut listings = Vec::new();
    for l in all {
        listings.extend(l?);
    }
    Ok(listings)
}

/// Lists `count` cards of `kind` for `price` gold: the cards go to the
/// shard's escrow. Returns the listing and the seller's profile after it.
///
/// The per-player limit counts listings on every shard: the shard of
/// `kind` counts its own and is told how many the others hold (a player's
/// requests run one at a time, so the count cannot go stale meanwhile).
pub async fn list(
    rt: &Runtime,
    seller: &str,
    kind: u32,
    count: u32,
    price: u64,
) -> Result<(ListingView, PlayerView), OpError> {
    check_kind(kind)?;
    let count_on = |k: u32| async move {
        match call_shard(rt, k, MarketMsg::CountOf { player: seller.to_string() }).await? {
            MarketReply::Count(n) => Ok::<u32, OpError>(n),
            other => Err(unexpected(other)),
        }
    };
    let others = join_all((0..MARKET_SHARDS).filter(|k| *k != kind).map(count_on)).await;
    let mut others_active = 0u32;
    for count in others {
        others_active += count?;
    }
    let msg = MarketMsg::List { seller: seller.to_string(), count, price, others_active };
    let listing = drive(rt, kind, call_shard(rt, kind, msg).await?).await?;
    Ok((listing, player::ops::profile(rt, seller).await?))
}

/// Buys listing `listing_id`: exactly one buyer wins it. Returns the
/// listing as sold and the buyer's profile after it.
pub async fn buy(rt: &Runtime, buyer: &str, listing_id: &str) -> Result<(ListingView, PlayerView), OpError> {
    let (kind, n) = parse(listing_id)?;
    let msg = MarketMsg::Buy { listing: n, buyer: buyer.to_string() };
    let listing = drive(rt, kind, call_shard(rt, kind, msg).await?).await?;
    Ok((listing, player::ops::profile(rt, buyer).await?))
}

/// Takes the seller's listing off the market; its cards go back.
pub async fn cancel(rt: &Runtime, seller: &str, listing_id: &str) -> Result<(ListingView, PlayerView), OpError> {
    let (kind, n) = parse(listing_id)?;
    let msg = MarketMsg::Cancel { listing: n, player: seller.to_string() };
    let listing = drive(rt, kind, call_shard(rt, kind, msg).await?).await?;
    Ok((listing, player::ops::profile(rt, seller).await?))
}

/// Open listings that match `query`, cheapest then oldest first, and how
/// many match in all. Every shard the filter allows is asked in parallel
/// for its best `offset + limit`, so the merged page is exact.
pub async fn browse(rt: &Runtime, query: &BrowseQuery) -> Result<(Vec<ListingView>, u64), OpError> {
    for k in &query.kinds {
        check_kind(*k)?;
    }
    let limit = match query.limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    let kinds: Vec<u32> = CATALOGUE
        .iter()
        .filter(|c| query.kinds.is_empty() || query.kinds.contains(&c.kind))
        .filter(|c| query.rarities.is_empty() || query.rarities.contains(&c.rarity))
        .map(|c| c.kind)
        .collect();
    let want = query.offset.saturating_add(limit);
    let msg = |_| MarketMsg::Browse { max_price: query.max_price, limit: want };
    let replies = join_all(kinds.iter().map(|k| call_shard(rt, *k, msg(k)))).await;
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
    let page = all.into_iter().skip(query.offset as usize).take(limit as usize).collect();
    Ok((page, total))
}
