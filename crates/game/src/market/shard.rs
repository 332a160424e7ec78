//! One market shard: its state, its indexes, and how it is stored.

use std::collections::BTreeMap;

use guildhall_entity::{Ctx, Entity};
use serde::{Deserialize, Serialize};

use super::book::Book;
use super::feed::Feed;
use super::model::*;
use super::msg::*;
use super::rules::*;
use crate::parts::PartMap;
use crate::{GameError, MarketError};

/// What one step of an operation came to.
pub(super) enum Step {
    Pending,
    Stalled(String),
    Done(Result<ListingView, GameError>),
}

/// One market shard: the listings of one card kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Market {
    pub kind: u32,
    /// Last listing number used; ids are `"{kind}-{n}"`.
    pub next_listing: u64,
    /// Last purchase number used.
    pub next_op: u64,
    /// Records of listings by number, stored in parts `l/{n}` (the snapshot
    /// skips them; an old snapshot's inline listings are read and moved).
    /// In memory: every listing that is not open (escrowing, returning,
    /// sold: operations in flight), and of the open ones those a request
    /// touched and the cheapest (what a browse shows); the others are read
    /// back when needed ([`Market::load`]). [`Market::book`] indexes them all.
    #[serde(default, skip_serializing)]
    pub listings: PartMap<Listing>,
    pub buys: BTreeMap<u64, PendingBuy>,
    /// Gold of buyers held here (purchases past their hold, not yet paid out
    /// or refunded).
    pub gold_held: u64,
    /// Cards held here (listings open, returning, or sold and undelivered).
    pub cards_held: u64,
    /// Sale fees burnt so far.
    pub fees_burnt: u64,
    pub sales: u64,
    /// Recently closed listings by [`Market::seq`], newest last (to tell
    /// "sold" from "gone" and to answer a retried buy or cancel with its
    /// first outcome); parts `c/{seq}`.
    /// (Renamed so that an old snapshot's inline list is not read as a map.)
    #[serde(default, skip_serializing, rename = "closed_parts")]
    pub closed: PartMap<ListingView>,
    /// Recently finished operations by [`Market::seq`], newest last; parts
    /// `f/{seq}`.
    #[serde(default, skip_serializing, rename = "finished_parts")]
    pub finished: PartMap<Finished>,
    /// Last number given to an entry of `closed` or `finished`.
    #[serde(default)]
    pub seq: u64,
    /// The index of the listings: open ones (browse order, expiry) and
    /// whose they are. Derived, not stored: rebuilt from the records at
    /// activation.
    #[serde(skip)]
    pub book: Book,
    /// Records in memory above which open ones beyond the cheapest are
    /// dropped again (see [`Market::trim`]).
    #[serde(skip)]
    pub(super) trim_at: usize,
    /// What changed since the last feed event: published as one
    /// [`MarketEvent::Feed`] per shard at most every [`FEED_EVERY_MS`],
    /// instead of one event per change, so that the cost of reaching every
    /// subscriber is paid once a period, not once per listing. Not stored:
    /// the feed is a view, not state.
    #[serde(skip)]
    pub feed: Feed,
    /// When the last feed event went out (`None`: not since activation).
    /// A shard publishes when a change finds the last event a period old,
    /// not on a shared tick: every shard publishing on the same tick sent
    /// every subscriber its feed within the same ~100 ms, a burst that
    /// stalled the bots' process each second (docs/bench-log/scaling-rounds.md, "Long runs").
    /// The tick still publishes a feed that no later change flushed.
    #[serde(skip)]
    pub feed_sent_ms: Option<u64>,
    /// Which round of its wake the shard is in (see `Market::schedule`).
    #[serde(skip)]
    pub wake_round: u8,
}

impl Market {
    pub fn new(kind: u32) -> Self {
        Market {
            kind,
            next_listing: 0,
            next_op: 0,
            listings: PartMap::default(),
            buys: BTreeMap::new(),
            gold_held: 0,
            cards_held: 0,
            fees_burnt: 0,
            sales: 0,
            closed: PartMap::default(),
            finished: PartMap::default(),
            seq: 0,
            book: Book::default(),
            trim_at: 0,
            feed: Feed::default(),
            feed_sent_ms: None,
            wake_round: 0,
        }
    }

    /// Listings of `player` that count against [`MAX_ACTIVE_LISTINGS`]
    /// (escrowing and open), of those in memory: [`Market::load`] them first.
    pub fn active_of<'a>(&'a self, player: &'a str) -> impl Iterator<Item = &'a Listing> + 'a {
        self.book
            .of_seller(player)
            .into_iter()
            .filter_map(|n| self.listings.get(&n))
            .filter(move |l| l.seller == player && matches!(l.state, ListingState::Escrowing | ListingState::Open))
    }

    /// Rebuilds the book from the records (after loading, when they are
    /// all in memory).
    pub fn rebuild_indexes(&mut self) {
        self.book.clear();
        for l in self.listings.values() {
            match l.state {
                ListingState::Open => {
                    self.book.open(l);
                    self.book.add_seller(&l.seller, l.n);
                }
                ListingState::Escrowing => self.book.add_seller(&l.seller, l.n),
                _ => {}
            }
        }
    }

    /// Puts listing `n` on the market (escrow done).
    pub(super) fn set_open(&mut self, n: u64) {
        if let Some(l) = self.listings.get_mut(&n) {
            l.state = ListingState::Open;
            self.book.open(l);
        }
    }

    /// Moves listing `n` to `state` (sold, returning): it is no longer open,
    /// nor counts against its seller's limit.
    pub(super) fn take_off_market(&mut self, n: u64, state: ListingState) {
        if let Some(l) = self.listings.get_mut(&n) {
            self.book.close(n);
            self.book.remove_seller(&l.seller, n);
            l.state = state;
        }
    }

    pub(super) fn closed_view(&self, n: u64) -> Option<&ListingView> {
        let id = listing_id(self.kind, n);
        self.closed.values().rev().find(|v| v.listing_id == id)
    }

    /// Why listing `n` cannot be bought or cancelled when it is not open.
    pub(super) fn not_open(&self, n: u64) -> MarketError {
        let id = listing_id(self.kind, n);
        match self.listings.get(&n).map(|l| &l.state) {
            Some(ListingState::Sold { .. }) => MarketError::AlreadySold(id),
            Some(_) => MarketError::ListingGone(id),
            None => match self.closed_view(n) {
                Some(v) if v.status == ListingStatus::Sold => MarketError::AlreadySold(id),
                _ => MarketError::ListingGone(id),
            },
        }
    }

    /// Marks open listings past their expiry as returning, at most
    /// [`EXPIRE_BATCH`] (of those in memory: [`Market::load`] the
    /// [`Book::due`] ones first); returns how many.
    pub fn expire_due(&mut self, now_ms: u64) -> u32 {
        let due = self.book.due(now_ms, EXPIRE_BATCH);
        let mut expired = 0;
        for n in due {
            if self.listings.contains_key(&n) {
                self.take_off_market(n, ListingState::Returning { reason: CloseReason::Expired });
                expired += 1;
            }
        }
        expired
    }

    /// Open listings at most `max_price`: cheapest first, then listed first;
    /// at most `limit`, with the total that matched. The page's records must
    /// be in memory ([`Market::load`]).
    pub fn browse(&self, max_price: Option<u64>, limit: u32) -> (Vec<ListingView>, u64) {
        let (page, total) = self.book.page(max_price, limit as usize);
        (page.iter().filter_map(|n| self.listings.get(n)).map(Listing::view).collect(), total)
    }

    /// Whether `op` still has steps to take.
    pub(super) fn is_pending(&self, op: OpRef) -> bool {
        match op {
            OpRef::Listing(n) => self
                .listings
                .get(&n)
                .is_some_and(|l| matches!(l.state, ListingState::Escrowing | ListingState::Returning { .. })),
            OpRef::Buy(op) => self.buys.contains_key(&op),
        }
    }

    /// Operations that still have steps to take.
    pub fn pending_ops(&self) -> Vec<OpRef> {
        let listings = self
            .listings
            .values()
            .filter(|l| matches!(l.state, ListingState::Escrowing | ListingState::Returning { .. }))
            .map(|l| OpRef::Listing(l.n));
        listings.chain(self.buys.keys().map(|op| OpRef::Buy(*op))).collect()
    }

    pub(super) fn finish(&mut self, op: OpRef, result: Result<ListingView, GameError>) -> Step {
        self.seq += 1;
        self.finished.insert(self.seq, Finished { op, result: result.clone() });
        while self.finished.len() > REMEMBERED_OUTCOMES {
            self.finished.pop_first();
        }
        Step::Done(result)
    }

    /// Takes listing `n` off the books as closed for `reason`.
    pub(super) fn close(
        &mut self,
        n: u64,
        reason: CloseReason,
        buyer: Option<String>,
    ) -> Result<ListingView, MarketError> {
        let Some(listing) = self.listings.remove(&n) else {
            return Err(MarketError::ListingGone(listing_id(self.kind, n)));
        };
        self.book.close(n);
        self.book.remove_seller(&listing.seller, n);
        self.cards_held -= listing.count as u64;
        let status = match reason {
            CloseReason::Sold => ListingStatus::Sold,
            CloseReason::Cancelled => ListingStatus::Cancelled,
            CloseReason::Expired => ListingStatus::Expired,
        };
        let view = listing.view_as(status, buyer);
        self.seq += 1;
        self.closed.insert(self.seq, view.clone());
        while self.closed.len() > REMEMBERED_OUTCOMES {
            self.closed.pop_first();
        }
        self.feed.close(view.listing_id.clone(), reason);
        Ok(view)
    }
}

impl Entity for Market {
    const KIND: &'static str = "market";
    type Msg = MarketMsg;
    type Reply = Result<MarketReply, GameError>;

    fn create(key: &str, _now_ms: u64) -> Self {
        // A key that is not a kind would be a bug of the caller; kind 0's
        // rules are harmless for it.
        Market::new(key.parse().unwrap_or(0))
    }

    const HAS_PARTS: bool = true;

    fn take_part_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        self.listings.take_changes("l/", &mut out);
        self.closed.take_changes("c/", &mut out);
        self.finished.take_changes("f/", &mut out);
        out
    }

    fn activated(&mut self, _ctx: &mut Ctx) {
        // After the snapshot and the parts (or an old inline snapshot) loaded.
        self.rebuild_indexes();
        self.trim();
    }

    fn load_parts(&mut self, parts: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        for (name, value) in parts {
            let taken = self.listings.load("l/", &name, &value)?
                || self.closed.load("c/", &name, &value)?
                || self.finished.load("f/", &name, &value)?;
            if !taken {
                return Err(format!("unknown part {name:?}"));
            }
        }
        Ok(())
    }

    fn state_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("listings".into(), self.listings_json());
            obj.insert("closed".into(), self.closed.to_json());
            obj.insert("finished".into(), self.finished.to_json());
        }
        v
    }

    fn timer_msg() -> Option<MarketMsg> {
        Some(MarketMsg::Wake)
    }

    async fn handle(&mut self, msg: MarketMsg, ctx: &mut Ctx) -> Self::Reply {
        let woken = matches!(msg, MarketMsg::Wake);
        let reply = self.handle_inner(msg, ctx).await;
        self.trim();
        self.publish_feed_if_due(ctx);
        self.schedule(ctx, woken, &reply);
        reply
    }
}
