//! What the market is made of, as data: listings, purchases in flight,
//! operations and their outcomes.

use serde::{Deserialize, Serialize};

use super::rules::{sale_fee, MARKET_SHARDS};
use crate::catalogue::card_def;
use crate::{GameError, Rarity};

/// Topic on which a shard publishes new offers and closed listings of its
/// card kind; sessions that want the kind subscribe to it.
pub fn market_topic(kind: u32) -> String {
    format!("market/kind/{kind}")
}

/// The entity key of the shard of `kind`.
pub fn shard_key(kind: u32) -> String {
    kind.to_string()
}

pub fn listing_id(kind: u32, n: u64) -> String {
    format!("{kind}-{n}")
}

/// `"{kind}-{n}"` back to (kind, n); `None` if it cannot name a listing.
pub fn parse_listing_id(id: &str) -> Option<(u32, u64)> {
    let (kind, n) = id.split_once('-')?;
    let kind: u32 = kind.parse().ok()?;
    let n: u64 = n.parse().ok()?;
    (kind < MARKET_SHARDS).then_some((kind, n))
}

/// Why a listing left the market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    Sold,
    Cancelled,
    Expired,
}

/// Where a listing is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListingState {
    /// Recorded; the seller's cards are being taken.
    Escrowing,
    /// On the market: the cards are in escrow here.
    Open,
    /// Cancelled or expired: the cards are on their way back to the seller.
    Returning { reason: CloseReason },
    /// Claimed by `buyer` (whose gold is held); delivery and payment pending.
    Sold { buyer: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub n: u64,
    pub seller: String,
    pub kind: u32,
    pub count: u32,
    pub price: u64,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub state: ListingState,
}

/// How a listing is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListingStatus {
    /// Not yet (escrowing) or no longer (returning, being delivered) buyable.
    Pending,
    Open,
    Sold,
    Cancelled,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingView {
    pub listing_id: String,
    pub seller: String,
    pub kind: u32,
    pub name: String,
    pub rarity: Rarity,
    pub count: u32,
    pub price: u64,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub status: ListingStatus,
    /// The buyer, once sold.
    pub buyer: Option<String>,
    /// The fee a sale at this price burns.
    pub fee: u64,
}

impl Listing {
    pub fn id(&self) -> String {
        listing_id(self.kind, self.n)
    }

    pub fn view(&self) -> ListingView {
        let status = match self.state {
            ListingState::Open => ListingStatus::Open,
            _ => ListingStatus::Pending,
        };
        self.view_as(status, None)
    }

    pub(super) fn view_as(&self, status: ListingStatus, buyer: Option<String>) -> ListingView {
        // A kind the catalogue lost (a bad snapshot) still shows, unnamed.
        let (name, rarity) = card_def(self.kind).map_or(("?", Rarity::Common), |d| (d.name, d.rarity));
        ListingView {
            listing_id: self.id(),
            seller: self.seller.clone(),
            kind: self.kind,
            name: name.to_string(),
            rarity,
            count: self.count,
            price: self.price,
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            status,
            buyer,
            fee: sale_fee(self.price),
        }
    }

    pub(super) fn cards(&self, sign: i64) -> Vec<(u32, i64)> {
        vec![(self.kind, sign * self.count as i64)]
    }
}

/// A purchase between its intent and its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuyStage {
    /// Recorded; the buyer's gold is being held.
    Intent,
    /// Gold held and the listing claimed: deliver the cards, pay the seller.
    Won,
    /// Gold held but the listing was gone: refund the buyer.
    Lost,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingBuy {
    pub op: u64,
    pub listing: u64,
    pub buyer: String,
    pub price: u64,
    pub stage: BuyStage,
}

impl PendingBuy {
    /// Transaction id of one step of this purchase. `op` makes a new attempt
    /// after a refused one (not enough gold) a new transaction.
    pub(super) fn tx(&self, kind: u32, step: &str) -> String {
        format!("market/buy/{}/{}/{}/{step}", listing_id(kind, self.listing), self.buyer, self.op)
    }
}

/// A multi-step operation of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OpRef {
    /// Listing `n` escrowing or returning.
    Listing(u64),
    /// Purchase `op`.
    Buy(u64),
}

/// The outcome of a finished operation, kept for a while for retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub op: OpRef,
    pub result: Result<ListingView, GameError>,
}
