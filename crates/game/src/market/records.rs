//! Which listing records a shard holds in memory, and reading one back.
//!
//! The book ([`super::book::Book`]) indexes every listing; the records of
//! open listings stay in the store except the cheapest and those a request
//! touched, so that a shard's memory follows what players use, not how many
//! unsold listings the world has piled up.

use std::collections::BTreeSet;

use guildhall_entity::Ctx;

use super::model::*;
use super::rules::CHEAPEST_IN_MEMORY;
use super::shard::Market;
use crate::MarketError;

/// Records loaded between two trims.
const TRIM_EVERY: usize = 32;

/// Part name prefix of a listing's record.
pub(super) const LISTING_PART: &str = "l/";

impl Market {
    /// Brings the records of listings `ns` into memory: those open and not
    /// there yet (every other listing is in memory, or closed).
    pub(super) async fn load(&mut self, ns: &[u64], ctx: &Ctx) -> Result<(), MarketError> {
        for &n in ns {
            if self.listings.contains_key(&n) || !self.book.is_open(n) {
                continue;
            }
            let id = listing_id(self.kind, n);
            let stored = ctx
                .read_part(&format!("{LISTING_PART}{n}"))
                .await
                .map_err(|e| MarketError::MarketRetryLater(format!("listing {id}: {e}")))?;
            let Some(value) = stored else {
                // The index outlived its record: trust the record.
                tracing::error!(listing = %id, "open in the book but no record stored: taken off the book");
                self.book.close(n);
                continue;
            };
            let listing: Listing = serde_json::from_slice(&value)
                .map_err(|e| MarketError::MarketRetryLater(format!("listing {id} does not decode: {e}")))?;
            self.listings.cache(n, listing);
        }
        Ok(())
    }

    /// Drops from memory the records of open listings that are not among
    /// the [`CHEAPEST_IN_MEMORY`] (their stored parts stay; a record with
    /// an unwritten change stays until a later trim). Runs after every
    /// handler, and does its work only when records have piled up since the
    /// last time, so its cost is spread over the loads that caused it.
    pub(super) fn trim(&mut self) {
        if self.listings.len() <= self.trim_at {
            return;
        }
        let keep: BTreeSet<u64> = self.book.cheapest(CHEAPEST_IN_MEMORY).collect();
        let drop: Vec<u64> = self
            .listings
            .iter()
            .filter(|(n, l)| l.state == ListingState::Open && !keep.contains(n))
            .map(|(n, _)| *n)
            .collect();
        for n in drop {
            self.listings.forget(&n);
        }
        self.trim_at = self.listings.len() + TRIM_EVERY;
    }

    /// Every listing, as JSON by number (introspection, audits): the records
    /// in memory, and the open ones that are not as the book has them.
    pub(super) fn listings_json(&self) -> serde_json::Value {
        let mut all = match self.listings.to_json() {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        for (n, e) in self.book.open_entries() {
            if !self.listings.contains_key(n) {
                let entry = serde_json::json!({
                    "n": n, "kind": self.kind, "count": e.count, "price": e.price,
                    "expires_at_ms": e.expires_at_ms, "state": "Open", "in_memory": false,
                });
                all.insert(n.to_string(), entry);
            }
        }
        serde_json::Value::Object(all)
    }
}
