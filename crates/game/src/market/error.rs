use serde::{Deserialize, Serialize};

/// Refusals of the market.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MarketError {
    #[error("listing {0} is not on the market (cancelled, expired, or never listed)")]
    ListingGone(String),
    #[error("listing {0} is already sold")]
    AlreadySold(String),
    #[error("listing {0} is your own: you cannot buy it")]
    OwnListing(String),
    #[error("listing {0} is not yours")]
    NotSeller(String),
    #[error("price {price} is out of range ({min} to {max} gold)")]
    PriceOutOfRange { price: u64, min: u64, max: u64 },
    #[error("a listing holds 1 to {max} cards, not {count}")]
    ListingCountOutOfRange { count: u32, max: u32 },
    #[error("too many listings: at most {max} on the market at once")]
    TooManyListings { max: u32 },
    /// The shard could not read a listing back from the store: the request
    /// changed nothing and may be sent again.
    #[error("the market could not read {0}; try again")]
    MarketRetryLater(String),
}
