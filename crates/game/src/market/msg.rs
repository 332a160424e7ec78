//! The market shard's messages, replies and published events.

use serde::{Deserialize, Serialize};

use super::model::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MarketMsg {
    /// Records a listing of `count` cards of the shard's kind for `price`.
    /// `others_active` is the seller's active listings on the other shards
    /// (the caller counts them; a player's requests run one at a time).
    List { seller: String, count: u32, price: u64, others_active: u32 },
    /// Records a purchase intent (or joins the pending one of this buyer).
    Buy { listing: u64, buyer: String },
    /// The seller takes listing `listing` off the market.
    Cancel { listing: u64, player: String },
    /// Advances operation `op` by one step (durable), or reports its outcome.
    Settle { op: OpRef },
    /// Open listings at most `max_price`, cheapest then oldest first, at most
    /// `limit` of them, and how many match in all.
    Browse { max_price: Option<u64>, limit: u32 },
    /// `player`'s active listings (escrowing or open: those that count
    /// against [`MAX_ACTIVE_LISTINGS`]).
    ListingsOf { player: String },
    /// How many of `player`'s listings count against
    /// [`MAX_ACTIVE_LISTINGS`], from the shard's index alone (no record is
    /// read): what listing on another shard needs to know.
    CountOf { player: String },
    /// Marks listings past their expiry as returning and publishes a feed
    /// event if one is due.
    Tick,
    /// Advances every pending operation by one step (also what completes
    /// operations interrupted by a crash or a failed call).
    Drive,
    /// The shard's timer: `Tick` in its first round, then `Drive` in the
    /// next rounds of the same maintenance while operations are pending.
    Wake,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketReply {
    /// The operation is recorded; drive it with `Settle`.
    Started(OpRef),
    /// The operation finished; the listing as it ended.
    Done(ListingView),
    /// One more step was taken; `Settle` again.
    Pending,
    /// A player did not answer; the step is retried on the next tick.
    Stalled(String),
    Listings {
        listings: Vec<ListingView>,
        total: u64,
    },
    /// `CountOf`: the count.
    Count(u32),
    /// `Tick` / `Drive`: listings expired now, operations still pending.
    Ticked {
        expired: u32,
        pending: u32,
    },
}

/// Events of the market, published on [`market_topic`] of the card kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketEvent {
    /// What changed on the shard since its last feed event (at most one
    /// per [`FEED_EVERY_MS`]): new listings, and listings that left the
    /// market (sold, cancelled, expired). Conflated: at most [`FEED_OFFERS`] newest offers and
    /// [`FEED_CLOSED`] newest closings.
    Feed { kind: u32, offers: Vec<ListingView>, closed: Vec<(String, CloseReason)> },
}
