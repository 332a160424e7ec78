//! The shard's book: a compact index of its listings, kept in memory while
//! the listings themselves (parts `l/{n}`) mostly stay in the store.
//!
//! A shard of common cards holds tens of thousands of unsold listings (each
//! player may keep [`super::rules::MAX_ACTIVE_LISTINGS`] for a day). As
//! whole records with a per-seller map they cost ~400 bytes each and were
//! the main memory that grew in a long run (docs/state-growth.md); the book
//! keeps what browsing, expiry and the per-seller limit need, ~60 bytes a
//! listing, and the shard reads a record when a request touches it.

use std::collections::{BTreeMap, BTreeSet};

use super::model::Listing;

/// What the book knows of an open listing without its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenEntry {
    pub price: u64,
    pub expires_at_ms: u64,
    pub count: u32,
}

#[derive(Debug, Default, Clone)]
pub struct Book {
    /// Open listings by number. Numbers grow with creation time and every
    /// listing lives as long, so the first entries expire first. (Should
    /// the clock step back, listings made after the step wait for those
    /// before them: late by at most the step, never lost.)
    open: BTreeMap<u64, OpenEntry>,
    /// (price, number) of the open listings: browse order, cheapest and
    /// then oldest first.
    by_price: BTreeSet<(u64, u64)>,
    /// (hash of the seller, number) of the listings that count against the
    /// seller's limit (escrowing and open). A hash, not the name: the
    /// records say whose a listing is, and are checked on use.
    sellers: BTreeSet<(u64, u64)>,
}

impl Book {
    pub fn open_len(&self) -> usize {
        self.open.len()
    }

    pub fn is_open(&self, n: u64) -> bool {
        self.open.contains_key(&n)
    }

    pub fn open_entries(&self) -> impl Iterator<Item = (&u64, &OpenEntry)> {
        self.open.iter()
    }

    /// The listing counts against its seller's limit (recorded, escrowing).
    pub fn add_seller(&mut self, seller: &str, n: u64) {
        self.sellers.insert((seller_hash(seller), n));
    }

    /// The listing no longer counts against its seller's limit.
    pub fn remove_seller(&mut self, seller: &str, n: u64) {
        self.sellers.remove(&(seller_hash(seller), n));
    }

    /// Numbers of the listings that may be `seller`'s and count against the
    /// limit (a superset: check the records).
    pub fn of_seller(&self, seller: &str) -> Vec<u64> {
        let h = seller_hash(seller);
        self.sellers.range((h, 0)..=(h, u64::MAX)).map(|(_, n)| *n).collect()
    }

    /// How many listings count against `seller`'s limit. Exact unless two
    /// sellers' names share a 64-bit hash (then it counts both: a refusal
    /// too many, never a listing too many).
    pub fn count_of(&self, seller: &str) -> u32 {
        let h = seller_hash(seller);
        self.sellers.range((h, 0)..=(h, u64::MAX)).count() as u32
    }

    /// `listing` is on the market.
    pub fn open(&mut self, listing: &Listing) {
        let entry = OpenEntry { price: listing.price, expires_at_ms: listing.expires_at_ms, count: listing.count };
        self.open.insert(listing.n, entry);
        self.by_price.insert((listing.price, listing.n));
    }

    /// Listing `n` left the market (sold, cancelled, expired).
    pub fn close(&mut self, n: u64) -> Option<OpenEntry> {
        let entry = self.open.remove(&n)?;
        self.by_price.remove(&(entry.price, n));
        Some(entry)
    }

    /// Numbers of the open listings at most `max_price`, in browse order, at
    /// most `limit`; and how many matched.
    pub fn page(&self, max_price: Option<u64>, limit: usize) -> (Vec<u64>, u64) {
        let matching = self.by_price.range(..=(max_price.unwrap_or(u64::MAX), u64::MAX));
        // The count walks only the index, and only when a price bound
        // leaves some listings out.
        let total = match max_price {
            None => self.by_price.len(),
            Some(_) => matching.clone().count(),
        };
        (matching.take(limit).map(|(_, n)| *n).collect(), total as u64)
    }

    /// The first `limit` numbers in browse order: the listings worth keeping
    /// in memory.
    pub fn cheapest(&self, limit: usize) -> impl Iterator<Item = u64> + '_ {
        self.by_price.iter().take(limit).map(|(_, n)| *n)
    }

    /// Open listings past their expiry at `now_ms`, oldest first, at most
    /// `limit`.
    pub fn due(&self, now_ms: u64, limit: usize) -> Vec<u64> {
        self.open.iter().take_while(|(_, e)| e.expires_at_ms <= now_ms).take(limit).map(|(n, _)| *n).collect()
    }

    /// When the first open listing expires.
    pub fn first_expiry(&self) -> Option<u64> {
        self.open.values().next().map(|e| e.expires_at_ms)
    }

    pub fn clear(&mut self) {
        *self = Book::default();
    }
}

/// FNV-1a: in memory only (the book is rebuilt at activation), so any
/// well-spread hash would do; this one needs no seed and no allocation.
fn seller_hash(seller: &str) -> u64 {
    seller.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}
