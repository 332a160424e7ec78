//! The player-to-player market: cards listed for gold, bought by exactly one
//! buyer, returned when cancelled or expired.
//!
//! # Shards
//! One `Market` entity per card kind (key = the kind as a decimal string), so
//! that buys of different cards run in parallel and a hot card does not slow
//! the others. A listing id is `"{kind}-{n}"` with `n` from the shard's own
//! counter: unique, deterministic, and it names its shard.
//!
//! # Transactions
//! Every operation that moves value is split into steps, each one handler of
//! the shard that ends with a durable write, so that the shard's intent is on
//! disk before the next step touches a player:
//!
//! * **list**: the listing is recorded `Escrowing`; then the seller's cards are
//!   taken (`Apply(seller, -cards)`) and the listing is `Open`.
//! * **buy**: the intent is recorded; then the buyer's gold is held
//!   (`Apply(buyer, -price)`) and, only then, the listing is claimed (`Won`) or
//!   found gone (`Lost`); then a winner gets the cards and the seller is paid
//!   `price - fee` (the fee is burnt and counted), or a loser is refunded.
//! * **cancel / expire**: the listing is marked `Returning`; then the cards go
//!   back to the seller.
//!
//! Each player step is an `Apply` with a deterministic transaction id, so a
//! step retried after a crash, a timeout or a restart (from `Drive`, on the
//! shard's timer) is applied at most once. A failed call to a player leaves the
//! step pending (it may or may not have happened); only a refusal from the
//! player (`GameError`) ends it.
//!
//! # Audit
//! Everything the market holds is in its state: `gold_held` (buyers' gold
//! between hold and payment or refund), `cards_held` (cards of listings that
//! are open, returning or sold but not yet delivered) and `fees_burnt`.

mod begin;
mod book;
mod error;
mod feed;
mod handle;
pub mod model;
mod msg;
pub mod ops;
mod records;
pub mod rules;
mod settle;
mod shard;

#[cfg(test)]
mod tests;

pub use begin::Begin;
pub use error::MarketError;
pub use feed::Feed;
pub use model::*;
pub use msg::{MarketEvent, MarketMsg, MarketReply};
pub use rules::*;
pub use shard::Market;
