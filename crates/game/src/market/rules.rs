//! The market's numbers: shards, prices, counts, fees, how long things last.

use crate::CATALOGUE;

/// Number of market shards: one per card kind of the catalogue.
pub const MARKET_SHARDS: u32 = CATALOGUE.len() as u32;
/// A listing that nobody buys goes back to its seller after this long.
pub const LISTING_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// Lowest and highest price of a listing, in gold.
pub const MIN_PRICE: u64 = 1;
pub const MAX_PRICE: u64 = 1_000_000;
/// Most copies in one listing.
pub const MAX_LISTING_COUNT: u32 = 100;
/// Most listings a player may have on the market at once, over all kinds.
pub const MAX_ACTIVE_LISTINGS: u32 = 10;
/// The sale fee, per cent of the price, rounded down, at least 1 gold.
pub const SALE_FEE_PERCENT: u64 = 5;
/// Finished operations (and closed listings) a shard remembers, so that a
/// retried request gets its first outcome. Retries come within seconds (a
/// client re-sends what is in flight after a reconnect; the shard's timer drives
/// interrupted steps every second), and the whole history is part of every
/// durable write of the shard: 1,024 made a shard's snapshot ~0.5 MB and its
/// JSON encoding the largest CPU cost of a busy market (docs/bench-log/scaling-rounds.md).
pub const REMEMBERED_OUTCOMES: usize = 256;
/// Most new offers, and most closings, one feed event carries: the feed is
/// conflated (the newest win); browsing gives the exact book.
pub const FEED_OFFERS: usize = 20;
pub const FEED_CLOSED: usize = 50;
/// Least time between two feed events of a shard.
pub const FEED_EVERY_MS: u64 = 1_000;

/// The fee burnt on a sale at `price`: 5 % rounded down, at least 1, never
/// more than the price.
pub fn sale_fee(price: u64) -> u64 {
    (price * SALE_FEE_PERCENT / 100).max(1).min(price)
}
/// How often a shard that holds listings, purchases or unpublished feed
/// wakes (its timer): expiries and stalled steps are taken up this soon.
pub const WAKE_EVERY_MS: u64 = 1_000;
/// Rounds of `Drive` a wake runs right after its `Tick` (a purchase needs
/// three steps); what is still pending waits for the next wake.
pub const DRIVE_ROUNDS: u8 = 3;
/// Open listings whose records a shard keeps in memory besides those in
/// use: the cheapest, which is what browsing shows and buyers buy.
pub const CHEAPEST_IN_MEMORY: usize = 100;
/// Most listings one wake marks expired (each record is read back first);
/// the rest wait for the next wake.
pub const EXPIRE_BATCH: usize = 500;
