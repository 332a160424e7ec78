//! The first step of every operation: validate, and record the intent.

use super::model::*;
use super::msg::*;
use super::rules::*;
use super::shard::Market;
use crate::{GameError, MarketError};

/// How a request's first message went.
#[derive(Debug, PartialEq)]
pub enum Begin {
    Started(OpRef),
    Done(ListingView),
}

impl Market {
    /// Validates and records a listing (state `Escrowing`).
    pub fn begin_list(
        &mut self,
        seller: &str,
        count: u32,
        price: u64,
        others_active: u32,
        now_ms: u64,
    ) -> Result<u64, GameError> {
        if !(MIN_PRICE..=MAX_PRICE).contains(&price) {
            return Err(MarketError::PriceOutOfRange { price, min: MIN_PRICE, max: MAX_PRICE }.into());
        }
        if !(1..=MAX_LISTING_COUNT).contains(&count) {
            return Err(MarketError::ListingCountOutOfRange { count, max: MAX_LISTING_COUNT }.into());
        }
        let active = self.book.count_of(seller) + others_active;
        if active >= MAX_ACTIVE_LISTINGS {
            return Err(MarketError::TooManyListings { max: MAX_ACTIVE_LISTINGS }.into());
        }
        self.next_listing += 1;
        let n = self.next_listing;
        let listing = Listing {
            n,
            seller: seller.to_string(),
            kind: self.kind,
            count,
            price,
            created_at_ms: now_ms,
            expires_at_ms: now_ms + LISTING_TTL_MS,
            state: ListingState::Escrowing,
        };
        self.listings.insert(n, listing);
        self.book.add_seller(seller, n);
        Ok(n)
    }

    /// Validates and records a purchase intent. Idempotent per (listing,
    /// buyer): a pending purchase is joined, a finished one is answered with
    /// its outcome.
    pub fn begin_buy(&mut self, n: u64, buyer: &str) -> Result<Begin, GameError> {
        if let Some(b) = self.buys.values().find(|b| b.listing == n && b.buyer == buyer) {
            return Ok(Begin::Started(OpRef::Buy(b.op)));
        }
        if let Some(v) = self.closed_view(n) {
            if v.status == ListingStatus::Sold && v.buyer.as_deref() == Some(buyer) {
                return Ok(Begin::Done(v.clone()));
            }
        }
        let Some(listing) = self.listings.get(&n) else { return Err(self.not_open(n).into()) };
        if listing.seller == buyer {
            return Err(MarketError::OwnListing(listing.id()).into());
        }
        if listing.state != ListingState::Open {
            return Err(self.not_open(n).into());
        }
        self.next_op += 1;
        let op = self.next_op;
        let price = listing.price;
        self.buys.insert(op, PendingBuy { op, listing: n, buyer: buyer.to_string(), price, stage: BuyStage::Intent });
        Ok(Begin::Started(OpRef::Buy(op)))
    }

    /// Validates and records a cancellation (state `Returning`).
    pub fn begin_cancel(&mut self, n: u64, player: &str) -> Result<Begin, GameError> {
        let Some(listing) = self.listings.get(&n) else {
            return match self.closed_view(n) {
                Some(v) if v.seller != player => Err(MarketError::NotSeller(v.listing_id.clone()).into()),
                Some(v) if v.status == ListingStatus::Cancelled => Ok(Begin::Done(v.clone())),
                _ => Err(self.not_open(n).into()),
            };
        };
        if listing.seller != player {
            return Err(MarketError::NotSeller(listing.id()).into());
        }
        match listing.state {
            ListingState::Open => {
                self.take_off_market(n, ListingState::Returning { reason: CloseReason::Cancelled });
                Ok(Begin::Started(OpRef::Listing(n)))
            }
            ListingState::Returning { .. } => Ok(Begin::Started(OpRef::Listing(n))),
            _ => Err(self.not_open(n).into()),
        }
    }
}

impl From<Begin> for MarketReply {
    fn from(b: Begin) -> Self {
        match b {
            Begin::Started(op) => MarketReply::Started(op),
            Begin::Done(view) => MarketReply::Done(view),
        }
    }
}
