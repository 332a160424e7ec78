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
//! game tick) is applied at most once. A failed call to a player leaves the
//! step pending (it may or may not have happened); only a refusal from the
//! player (`GameError`) ends it.
//!
//! # Audit
//! Everything the market holds is in its state: `gold_held` (buyers' gold
//! between hold and payment or refund), `cards_held` (cards of listings that
//! are open, returning or sold but not yet delivered) and `fees_burnt`.

use std::collections::{BTreeMap, BTreeSet};

use guildhall_entity::{Ctx, Entity};
use serde::{Deserialize, Serialize};

use crate::catalogue::card_def;
use crate::parts::PartMap;
use crate::{Change, ChangeKind, GameError, GameEvent, Player, PlayerMsg, Rarity, CATALOGUE};

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
/// client re-sends what is in flight after a reconnect; the game tick drives
/// interrupted steps every second), and the whole history is part of every
/// durable write of the shard: 1,024 made a shard's snapshot ~0.5 MB and its
/// JSON encoding the largest CPU cost of a busy market (BENCHMARKS.md).
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

    fn view_as(&self, status: ListingStatus, buyer: Option<String>) -> ListingView {
        let def = card_def(self.kind).expect("listings hold catalogue kinds only");
        ListingView {
            listing_id: self.id(),
            seller: self.seller.clone(),
            kind: self.kind,
            name: def.name.to_string(),
            rarity: def.rarity,
            count: self.count,
            price: self.price,
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            status,
            buyer,
            fee: sale_fee(self.price),
        }
    }

    fn cards(&self, sign: i64) -> Vec<(u32, i64)> {
        vec![(self.kind, sign * self.count as i64)]
    }

    /// Where the listing sorts in a browse: cheapest, then oldest.
    fn browse_key(&self) -> (u64, u64, u64) {
        (self.price, self.created_at_ms, self.n)
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
    fn tx(&self, kind: u32, step: &str) -> String {
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
    /// Marks listings past their expiry as returning and publishes a feed
    /// event if one is due (game tick).
    Tick,
    /// Advances every pending operation by one step (game tick; also what
    /// completes operations interrupted by a crash or a failed call).
    Drive,
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
    /// `Tick` / `Drive`: listings expired now, operations still pending.
    Ticked {
        expired: u32,
        pending: u32,
    },
}

/// What one step of an operation came to.
enum Step {
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
    /// Listings by number: in parts `l/{n}`, one record each (the snapshot
    /// skips them; an old snapshot's inline listings are read and moved).
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
    /// Listing numbers by seller, of every listing not yet closed (a
    /// superset of the active ones: the state is checked on use). Answers
    /// `ListingsOf`, which every `market.list` asks of all 16 shards,
    /// without a scan of the shard's listings. Derived, not stored.
    #[serde(skip)]
    pub by_seller: std::collections::HashMap<String, BTreeSet<u64>>,
    /// The open listings in browse order: (price, created at, number).
    /// Derived, not stored; kept by [`Market::set_open`] and
    /// [`Market::take_off_market`]. A browse walks the cheapest entries
    /// instead of every listing of the shard: in a long run a shard holds
    /// thousands and browsing them all grew to 4-6 % of the server's CPU
    /// (BENCHMARKS.md, "Long runs").
    #[serde(skip)]
    pub open: BTreeSet<(u64, u64, u64)>,
    /// What changed since the last feed event: published as one
    /// [`MarketEvent::Feed`] per shard at most every [`FEED_EVERY_MS`],
    /// instead of one event per change, so that the cost of reaching every
    /// subscriber is paid once a period, not once per listing. Not stored:
    /// the feed is a view, not state.
    #[serde(skip)]
    pub feed: Feed,
    /// When the last feed event went out (`None`: not since activation).
    /// A shard publishes when a change finds the last event a period old,
    /// not on the game tick: every shard publishing on the same tick sent
    /// every subscriber its feed within the same ~100 ms, a burst that
    /// stalled the bots' process each second (BENCHMARKS.md, "Long runs").
    /// The tick still publishes a feed that no later change flushed.
    #[serde(skip)]
    pub feed_sent_ms: Option<u64>,
}

/// New offers and closings of one shard not yet published.
#[derive(Debug, Clone, Default)]
pub struct Feed {
    pub offers: Vec<ListingView>,
    pub closed: Vec<(String, CloseReason)>,
}

impl Feed {
    fn offer(&mut self, view: ListingView) {
        if self.offers.len() == FEED_OFFERS {
            self.offers.remove(0);
        }
        self.offers.push(view);
    }

    /// A listing that opened and closed within one feed period is never
    /// announced at all.
    fn close(&mut self, listing_id: String, reason: CloseReason) {
        if let Some(i) = self.offers.iter().position(|o| o.listing_id == listing_id) {
            self.offers.remove(i);
            return;
        }
        if self.closed.len() == FEED_CLOSED {
            self.closed.remove(0);
        }
        self.closed.push((listing_id, reason));
    }

    fn is_empty(&self) -> bool {
        self.offers.is_empty() && self.closed.is_empty()
    }
}

/// How a request's first message went.
#[derive(Debug, PartialEq)]
pub enum Begin {
    Started(OpRef),
    Done(ListingView),
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
            by_seller: Default::default(),
            open: BTreeSet::new(),
            feed: Feed::default(),
            feed_sent_ms: None,
        }
    }

    /// Listings of `player` that count against [`MAX_ACTIVE_LISTINGS`].
    pub fn active_of<'a>(&'a self, player: &'a str) -> impl Iterator<Item = &'a Listing> + 'a {
        self.by_seller
            .get(player)
            .into_iter()
            .flatten()
            .filter_map(|n| self.listings.get(n))
            .filter(|l| matches!(l.state, ListingState::Escrowing | ListingState::Open))
    }

    /// Rebuilds `by_seller` and `open` from the listings (after loading).
    pub fn rebuild_indexes(&mut self) {
        self.by_seller.clear();
        self.open.clear();
        for (n, l) in self.listings.iter() {
            self.by_seller.entry(l.seller.clone()).or_default().insert(*n);
            if l.state == ListingState::Open {
                self.open.insert(l.browse_key());
            }
        }
    }

    /// Puts listing `n` on the market (escrow done).
    fn set_open(&mut self, n: u64) {
        if let Some(l) = self.listings.get_mut(&n) {
            l.state = ListingState::Open;
            self.open.insert(l.browse_key());
        }
    }

    /// Moves listing `n` to `state` (sold, returning): it is no longer open.
    fn take_off_market(&mut self, n: u64, state: ListingState) {
        if let Some(l) = self.listings.get_mut(&n) {
            self.open.remove(&l.browse_key());
            l.state = state;
        }
    }

    /// Listing `n` of `seller` left the books.
    fn unindex(&mut self, seller: &str, n: u64) {
        if let Some(set) = self.by_seller.get_mut(seller) {
            set.remove(&n);
            if set.is_empty() {
                self.by_seller.remove(seller);
            }
        }
    }

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
            return Err(GameError::PriceOutOfRange { price, min: MIN_PRICE, max: MAX_PRICE });
        }
        if !(1..=MAX_LISTING_COUNT).contains(&count) {
            return Err(GameError::ListingCountOutOfRange { count, max: MAX_LISTING_COUNT });
        }
        let active = self.active_of(seller).count() as u32 + others_active;
        if active >= MAX_ACTIVE_LISTINGS {
            return Err(GameError::TooManyListings { max: MAX_ACTIVE_LISTINGS });
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
        self.by_seller.entry(seller.to_string()).or_default().insert(n);
        Ok(n)
    }

    fn closed_view(&self, n: u64) -> Option<&ListingView> {
        let id = listing_id(self.kind, n);
        self.closed.values().rev().find(|v| v.listing_id == id)
    }

    /// Why listing `n` cannot be bought or cancelled when it is not open.
    fn not_open(&self, n: u64) -> GameError {
        let id = listing_id(self.kind, n);
        match self.listings.get(&n).map(|l| &l.state) {
            Some(ListingState::Sold { .. }) => GameError::AlreadySold(id),
            Some(_) => GameError::ListingGone(id),
            None => match self.closed_view(n) {
                Some(v) if v.status == ListingStatus::Sold => GameError::AlreadySold(id),
                _ => GameError::ListingGone(id),
            },
        }
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
        let Some(listing) = self.listings.get(&n) else { return Err(self.not_open(n)) };
        if listing.seller == buyer {
            return Err(GameError::OwnListing(listing.id()));
        }
        if listing.state != ListingState::Open {
            return Err(self.not_open(n));
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
                Some(v) if v.seller != player => Err(GameError::NotSeller(v.listing_id.clone())),
                Some(v) if v.status == ListingStatus::Cancelled => Ok(Begin::Done(v.clone())),
                _ => Err(self.not_open(n)),
            };
        };
        if listing.seller != player {
            return Err(GameError::NotSeller(listing.id()));
        }
        match listing.state {
            ListingState::Open => {
                self.take_off_market(n, ListingState::Returning { reason: CloseReason::Cancelled });
                Ok(Begin::Started(OpRef::Listing(n)))
            }
            ListingState::Returning { .. } => Ok(Begin::Started(OpRef::Listing(n))),
            _ => Err(self.not_open(n)),
        }
    }

    /// Marks open listings past their expiry as returning; returns how many.
    pub fn expire_due(&mut self, now_ms: u64) -> u32 {
        let due: Vec<u64> = self
            .listings
            .iter()
            .filter(|(_, l)| l.state == ListingState::Open && l.expires_at_ms <= now_ms)
            .map(|(n, _)| *n)
            .collect();
        for n in &due {
            self.take_off_market(*n, ListingState::Returning { reason: CloseReason::Expired });
        }
        due.len() as u32
    }

    /// Open listings at most `max_price`: cheapest first, then oldest, then
    /// by number; at most `limit`, with the total that matched.
    pub fn browse(&self, max_price: Option<u64>, limit: u32) -> (Vec<ListingView>, u64) {
        let matching = self.open.range(..=(max_price.unwrap_or(u64::MAX), u64::MAX, u64::MAX));
        // The count walks only the index (24 bytes an entry), and only when
        // a price bound leaves some listings out.
        let total = match max_price {
            None => self.open.len(),
            Some(_) => matching.clone().count(),
        };
        let page =
            matching.take(limit as usize).filter_map(|(_, _, n)| self.listings.get(n)).map(Listing::view).collect();
        (page, total as u64)
    }

    /// Whether `op` still has steps to take.
    fn is_pending(&self, op: OpRef) -> bool {
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

    fn finish(&mut self, op: OpRef, result: Result<ListingView, GameError>) -> Step {
        self.seq += 1;
        self.finished.insert(self.seq, Finished { op, result: result.clone() });
        while self.finished.len() > REMEMBERED_OUTCOMES {
            self.finished.pop_first();
        }
        Step::Done(result)
    }

    /// Takes listing `n` off the books as closed for `reason`.
    fn close(&mut self, n: u64, reason: CloseReason, buyer: Option<String>) -> ListingView {
        let listing = self.listings.remove(&n).expect("closing a listing that exists");
        self.unindex(&listing.seller, n);
        self.open.remove(&listing.browse_key());
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
        view
    }

    /// Advances `op` by one step. Every player step is an idempotent
    /// `Apply`; a failed call leaves the step to be retried.
    async fn advance(&mut self, op: OpRef, ctx: &Ctx) -> Step {
        match op {
            OpRef::Listing(n) => self.advance_listing(n, ctx).await,
            OpRef::Buy(op) => self.advance_buy(op, ctx).await,
        }
    }

    async fn advance_listing(&mut self, n: u64, ctx: &Ctx) -> Step {
        let Some(listing) = self.listings.get(&n).cloned() else {
            if let Some(f) = self.finished.values().rev().find(|f| f.op == OpRef::Listing(n)) {
                return Step::Done(f.result.clone());
            }
            return match self.closed_view(n) {
                Some(v) => Step::Done(Ok(v.clone())),
                None => Step::Done(Err(GameError::ListingGone(listing_id(self.kind, n)))),
            };
        };
        let id = listing.id();
        match &listing.state {
            ListingState::Escrowing => {
                let tx = format!("market/list/{id}");
                let change = Change { cards: listing.cards(-1), kind: ChangeKind::Transfer, ..Change::default() };
                match apply(ctx, &listing.seller, tx, change, false, None).await {
                    Ok(Ok(())) => {
                        self.set_open(n);
                        self.cards_held += listing.count as u64;
                        let view = Listing { state: ListingState::Open, ..listing.clone() }.view();
                        self.feed.offer(view.clone());
                        self.finish(OpRef::Listing(n), Ok(view))
                    }
                    Ok(Err(refused)) => {
                        self.listings.remove(&n);
                        self.unindex(&listing.seller, n);
                        self.finish(OpRef::Listing(n), Err(refused))
                    }
                    Err(stalled) => Step::Stalled(stalled),
                }
            }
            ListingState::Returning { reason } => {
                let reason = *reason;
                let tx = format!("market/return/{id}");
                let change = Change { cards: listing.cards(1), kind: ChangeKind::Transfer, ..Change::default() };
                let name = card_def(listing.kind).map_or("?", |d| d.name);
                let notice = match reason {
                    CloseReason::Expired => {
                        Some(format!("Your listing {id} expired: {}× {name} returned", listing.count))
                    }
                    _ => None,
                };
                match apply(ctx, &listing.seller, tx, change, true, notice).await {
                    Ok(Ok(())) => {
                        let view = self.close(n, reason, None);
                        self.finish(OpRef::Listing(n), Ok(view))
                    }
                    Ok(Err(refused)) => Step::Stalled(format!("returning {id} refused: {refused}")),
                    Err(stalled) => Step::Stalled(stalled),
                }
            }
            ListingState::Open | ListingState::Sold { .. } => Step::Done(Ok(listing.view())),
        }
    }

    async fn advance_buy(&mut self, op: u64, ctx: &Ctx) -> Step {
        let Some(buy) = self.buys.get(&op).cloned() else {
            return match self.finished.values().rev().find(|f| f.op == OpRef::Buy(op)) {
                Some(f) => Step::Done(f.result.clone()),
                None => Step::Stalled(format!("purchase {op} is not known")),
            };
        };
        let kind = self.kind;
        let id = listing_id(kind, buy.listing);
        match buy.stage {
            BuyStage::Intent => {
                let hold = Change { gold: -(buy.price as i64), kind: ChangeKind::Transfer, ..Change::default() };
                match apply(ctx, &buy.buyer, buy.tx(kind, "hold"), hold, false, None).await {
                    Ok(Ok(())) => {
                        self.gold_held += buy.price;
                        // The gold is held: now claim the listing, if it is
                        // still there. This decision is durable before any
                        // cards or gold move on.
                        let stage = match self.listings.get(&buy.listing) {
                            Some(l) if l.state == ListingState::Open => {
                                self.take_off_market(buy.listing, ListingState::Sold { buyer: buy.buyer.clone() });
                                BuyStage::Won
                            }
                            _ => BuyStage::Lost,
                        };
                        self.buys.get_mut(&op).expect("present").stage = stage;
                        Step::Pending
                    }
                    Ok(Err(refused)) => {
                        self.buys.remove(&op);
                        self.finish(OpRef::Buy(op), Err(refused))
                    }
                    Err(stalled) => Step::Stalled(stalled),
                }
            }
            BuyStage::Won => {
                let listing = self.listings.get(&buy.listing).cloned().expect("a won listing stays until delivered");
                let cards = Change { cards: listing.cards(1), kind: ChangeKind::Transfer, ..Change::default() };
                match apply(ctx, &buy.buyer, buy.tx(kind, "cards"), cards, true, None).await {
                    Ok(Ok(())) => {}
                    Ok(Err(refused)) => return Step::Stalled(format!("delivering {id} refused: {refused}")),
                    Err(stalled) => return Step::Stalled(stalled),
                }
                let fee = sale_fee(buy.price);
                let pay = Change { gold: (buy.price - fee) as i64, kind: ChangeKind::Transfer, ..Change::default() };
                let name = card_def(kind).map_or("?", |d| d.name);
                let notice =
                    format!("Sold {}× {name} ({id}) for {} gold; {} gold fee burnt", listing.count, buy.price, fee);
                match apply(ctx, &listing.seller, format!("market/pay/{id}"), pay, true, Some(notice)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(refused)) => return Step::Stalled(format!("paying {id} refused: {refused}")),
                    Err(stalled) => return Step::Stalled(stalled),
                }
                self.gold_held -= buy.price;
                self.fees_burnt += fee;
                self.sales += 1;
                self.buys.remove(&op);
                let view = self.close(buy.listing, CloseReason::Sold, Some(buy.buyer.clone()));
                self.finish(OpRef::Buy(op), Ok(view))
            }
            BuyStage::Lost => {
                let refund = Change { gold: buy.price as i64, kind: ChangeKind::Transfer, ..Change::default() };
                match apply(ctx, &buy.buyer, buy.tx(kind, "refund"), refund, true, None).await {
                    Ok(Ok(())) => {
                        self.gold_held -= buy.price;
                        self.buys.remove(&op);
                        let lost = self.not_open(buy.listing);
                        self.finish(OpRef::Buy(op), Err(lost))
                    }
                    Ok(Err(refused)) => Step::Stalled(format!("refund of {id} refused: {refused}")),
                    Err(stalled) => Step::Stalled(stalled),
                }
            }
        }
    }
}

/// One transaction step on a player. `Err` when the call itself failed (the
/// step may or may not have been applied: retry with the same `tx`).
async fn apply(
    ctx: &Ctx,
    player: &str,
    tx: String,
    change: Change,
    notify: bool,
    notice: Option<String>,
) -> Result<Result<(), GameError>, String> {
    let msg = PlayerMsg::Apply { tx: tx.clone(), change, notify, notice };
    match ctx.runtime().call::<Player>(player, msg).await {
        Ok(reply) => Ok(reply.map(|_| ())),
        Err(e) => {
            tracing::warn!(player, tx, error = %e, "market step failed; retried on the next tick");
            Err(format!("a step of {tx} did not complete ({e}); it is retried automatically"))
        }
    }
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
            obj.insert("listings".into(), self.listings.to_json());
            obj.insert("closed".into(), self.closed.to_json());
            obj.insert("finished".into(), self.finished.to_json());
        }
        v
    }

    async fn handle(&mut self, msg: MarketMsg, ctx: &mut Ctx) -> Self::Reply {
        let reply = self.handle_inner(msg, ctx).await;
        self.publish_feed_if_due(ctx);
        reply
    }
}

impl Market {
    /// Publishes what changed since the last feed event, if that was at
    /// least [`FEED_EVERY_MS`] ago. Runs after every handler, browses included: the clock is read only
    /// when there is something to publish.
    fn publish_feed_if_due(&mut self, ctx: &Ctx) {
        if self.feed.is_empty() {
            return;
        }
        let now = ctx.now_ms();
        if self.feed_sent_ms.is_some_and(|t| now < t + FEED_EVERY_MS) {
            return;
        }
        let Feed { offers, closed } = std::mem::take(&mut self.feed);
        let event = MarketEvent::Feed { kind: self.kind, offers, closed };
        ctx.publish(&market_topic(self.kind), GameEvent::Market(event).encode());
        self.feed_sent_ms = Some(now);
    }

    async fn handle_inner(&mut self, msg: MarketMsg, ctx: &mut Ctx) -> Result<MarketReply, GameError> {
        let now = ctx.now_ms();
        match msg {
            MarketMsg::List { seller, count, price, others_active } => {
                let n = self.begin_list(&seller, count, price, others_active, now).inspect_err(|_| ctx.unchanged())?;
                // The intent is on disk before the seller's cards move.
                ctx.durable();
                Ok(MarketReply::Started(OpRef::Listing(n)))
            }
            MarketMsg::Buy { listing, buyer } => {
                let before = self.next_op;
                let begin = self.begin_buy(listing, &buyer).inspect_err(|_| ctx.unchanged())?;
                if self.next_op == before {
                    ctx.unchanged();
                } else {
                    ctx.durable();
                }
                Ok(begin.into())
            }
            MarketMsg::Cancel { listing, player } => {
                let was = self.listings.get(&listing).map(|l| l.state.clone());
                let begin = self.begin_cancel(listing, &player).inspect_err(|_| ctx.unchanged())?;
                if was == Some(ListingState::Open) {
                    ctx.durable();
                } else {
                    ctx.unchanged();
                }
                Ok(begin.into())
            }
            MarketMsg::Settle { op } => {
                let was_pending = self.is_pending(op);
                let step = self.advance(op, ctx).await;
                if was_pending {
                    ctx.durable();
                } else {
                    ctx.unchanged();
                }
                match step {
                    Step::Pending => Ok(MarketReply::Pending),
                    Step::Stalled(why) => Ok(MarketReply::Stalled(why)),
                    Step::Done(result) => result.map(MarketReply::Done),
                }
            }
            MarketMsg::Browse { max_price, limit } => {
                ctx.unchanged();
                let (listings, total) = self.browse(max_price, limit);
                Ok(MarketReply::Listings { listings, total })
            }
            MarketMsg::ListingsOf { player } => {
                ctx.unchanged();
                let listings: Vec<ListingView> = self.active_of(&player).map(Listing::view).collect();
                let total = listings.len() as u64;
                Ok(MarketReply::Listings { listings, total })
            }
            MarketMsg::Tick => {
                // The feed, if due, goes out after this handler.
                let expired = self.expire_due(now);
                if expired > 0 {
                    ctx.durable();
                } else {
                    ctx.unchanged();
                }
                Ok(MarketReply::Ticked { expired, pending: self.pending_ops().len() as u32 })
            }
            MarketMsg::Drive => {
                let ops = self.pending_ops();
                if ops.is_empty() {
                    ctx.unchanged();
                } else {
                    // Each op advances one step and all of them are written
                    // together before the reply: a later step of the same op
                    // waits for the next Drive, after this write.
                    ctx.durable();
                }
                for op in ops {
                    let _ = self.advance(op, ctx).await;
                }
                Ok(MarketReply::Ticked { expired: 0, pending: self.pending_ops().len() as u32 })
            }
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

/// Periodic market work for [`crate::tick`]: expire due listings, then drive
/// pending operations until none is left or a step stalls. Calls (not casts)
/// so that when it returns the work is done: tests move the clock, call the
/// server's `maintain()`, and assert.
pub async fn tick(rt: &guildhall_entity::Runtime) {
    for kind in 0..MARKET_SHARDS {
        let key = shard_key(kind);
        let Ok(Ok(MarketReply::Ticked { mut pending, .. })) = rt.call::<Market>(&key, MarketMsg::Tick).await else {
            continue;
        };
        // A purchase takes three steps; what is still pending after that is
        // stalled on a player and waits for the next tick.
        for _ in 0..3 {
            if pending == 0 {
                break;
            }
            match rt.call::<Market>(&key, MarketMsg::Drive).await {
                Ok(Ok(MarketReply::Ticked { pending: p, .. })) => pending = p,
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_600_000;

    #[test]
    fn the_fee_is_five_percent_rounded_down_at_least_one() {
        assert_eq!(sale_fee(1), 1);
        assert_eq!(sale_fee(19), 1);
        assert_eq!(sale_fee(40), 2);
        assert_eq!(sale_fee(100), 5);
        assert_eq!(sale_fee(1_000_000), 50_000);
    }

    #[test]
    fn listing_ids_name_their_shard() {
        assert_eq!(listing_id(7, 12), "7-12");
        assert_eq!(parse_listing_id("7-12"), Some((7, 12)));
        assert_eq!(parse_listing_id("16-1"), None, "no such kind");
        assert_eq!(parse_listing_id("x-1"), None);
        assert_eq!(parse_listing_id("3"), None);
    }

    fn open(m: &mut Market, seller: &str, price: u64, now: u64) -> u64 {
        let n = m.begin_list(seller, 1, price, 0, now).unwrap();
        m.set_open(n);
        n
    }

    #[test]
    fn the_feed_keeps_the_newest_and_never_announces_what_came_and_went() {
        let mut m = Market::new(3);
        let views: Vec<ListingView> = (0..FEED_OFFERS as u64 + 5)
            .map(|i| {
                let n = open(&mut m, &format!("s{i}"), 10 + i, T0);
                m.listings.get(&n).unwrap().view()
            })
            .collect();
        for v in &views {
            m.feed.offer(v.clone());
        }
        assert_eq!(m.feed.offers.len(), FEED_OFFERS, "bounded");
        assert_eq!(m.feed.offers[0].listing_id, views[5].listing_id, "the oldest fell out");
        // Opened and closed within one period: in neither list.
        let last = views.last().unwrap().listing_id.clone();
        m.feed.close(last.clone(), CloseReason::Sold);
        assert!(m.feed.offers.iter().all(|o| o.listing_id != last));
        assert!(m.feed.closed.is_empty());
        // Announced earlier, closed now: a closing.
        m.feed.close("3-1".into(), CloseReason::Cancelled);
        assert_eq!(m.feed.closed, [("3-1".to_string(), CloseReason::Cancelled)]);
        for i in 0..FEED_CLOSED + 3 {
            m.feed.close(format!("3-{}", 100 + i), CloseReason::Expired);
        }
        assert_eq!(m.feed.closed.len(), FEED_CLOSED);
        assert_eq!(m.feed.closed.last().unwrap().0, format!("3-{}", 100 + FEED_CLOSED + 2));
    }

    #[test]
    fn listing_checks_price_count_and_the_per_player_limit() {
        let mut m = Market::new(3);
        assert_eq!(
            m.begin_list("s", 1, 0, 0, T0),
            Err(GameError::PriceOutOfRange { price: 0, min: MIN_PRICE, max: MAX_PRICE })
        );
        assert!(matches!(m.begin_list("s", 1, MAX_PRICE + 1, 0, T0), Err(GameError::PriceOutOfRange { .. })));
        assert!(matches!(m.begin_list("s", 0, 10, 0, T0), Err(GameError::ListingCountOutOfRange { .. })));
        assert_eq!(m.begin_list("s", 1, 10, 9, T0), Ok(1), "ids come from the shard's counter");
        assert_eq!(m.listings.get(&1).unwrap().expires_at_ms, T0 + LISTING_TTL_MS);
        assert_eq!(
            m.begin_list("s", 1, 10, 9, T0),
            Err(GameError::TooManyListings { max: MAX_ACTIVE_LISTINGS }),
            "nine elsewhere and one here"
        );
        assert_eq!(m.begin_list("other", 1, 10, 9, T0), Ok(2));
        assert_eq!(m.next_listing, 2, "a refusal uses no id");
    }

    #[test]
    fn buying_refuses_own_and_closed_listings_and_is_idempotent_per_buyer() {
        let mut m = Market::new(0);
        let n = open(&mut m, "s", 50, T0);
        assert_eq!(m.begin_buy(n, "s"), Err(GameError::OwnListing("0-1".into())));
        assert_eq!(m.begin_buy(99, "b"), Err(GameError::ListingGone("0-99".into())));
        let Ok(Begin::Started(op)) = m.begin_buy(n, "b") else { panic!() };
        assert_eq!(m.begin_buy(n, "b"), Ok(Begin::Started(op)), "a retry joins the pending purchase");
        let Ok(Begin::Started(op2)) = m.begin_buy(n, "c") else { panic!() };
        assert_ne!(op, op2, "another buyer may try too: the hold decides");
        m.take_off_market(n, ListingState::Sold { buyer: "b".into() });
        assert_eq!(m.begin_buy(n, "d"), Err(GameError::AlreadySold("0-1".into())));
        assert_eq!(m.browse(None, 10), (vec![], 0), "sold: off the market");
    }

    #[test]
    fn cancel_is_for_the_seller_and_expiry_follows_the_clock() {
        let mut m = Market::new(0);
        let a = open(&mut m, "s", 50, T0);
        let b = open(&mut m, "s", 60, T0 + 1000);
        assert_eq!(m.begin_cancel(a, "x"), Err(GameError::NotSeller("0-1".into())));
        assert_eq!(m.begin_cancel(a, "s"), Ok(Begin::Started(OpRef::Listing(a))));
        assert_eq!(m.begin_cancel(a, "s"), Ok(Begin::Started(OpRef::Listing(a))), "a retry joins");
        assert_eq!(m.expire_due(T0 + LISTING_TTL_MS), 0, "b is one second younger; a is cancelled");
        assert_eq!(m.expire_due(T0 + 1000 + LISTING_TTL_MS), 1);
        assert_eq!(m.listings.get(&b).unwrap().state, ListingState::Returning { reason: CloseReason::Expired });
        assert_eq!(m.pending_ops(), vec![OpRef::Listing(a), OpRef::Listing(b)]);
    }

    #[test]
    fn browse_sorts_by_price_then_age_and_pages() {
        let mut m = Market::new(0);
        open(&mut m, "s", 30, T0 + 2);
        open(&mut m, "s", 10, T0 + 5);
        open(&mut m, "s", 30, T0 + 1);
        open(&mut m, "s", 99, T0);
        let _escrowing = m.begin_list("s", 1, 1, 0, T0).unwrap();
        let (page, total) = m.browse(Some(50), 2);
        assert_eq!(total, 3, "escrowing and too dear ones do not match");
        let ids: Vec<_> = page.iter().map(|v| v.listing_id.as_str()).collect();
        assert_eq!(ids, ["0-2", "0-3"], "cheapest first; equal prices oldest first");
        assert_eq!(m.browse(None, 10).1, 4);

        // The index follows every way off the market, and a reload.
        assert_eq!(m.begin_cancel(3, "s"), Ok(Begin::Started(OpRef::Listing(3))));
        assert_eq!(m.expire_due(T0 + LISTING_TTL_MS), 1, "the dearest (listed first) expired");
        let ids = |m: &Market| m.browse(None, 10).0.into_iter().map(|v| v.listing_id).collect::<Vec<_>>();
        assert_eq!(ids(&m), ["0-2", "0-1"]);
        let mut reloaded = m.clone();
        reloaded.open.clear();
        reloaded.rebuild_indexes();
        assert_eq!(ids(&reloaded), ["0-2", "0-1"]);
    }
}
