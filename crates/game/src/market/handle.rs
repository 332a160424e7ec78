//! The market shard's handler.

use guildhall_entity::Ctx;

use super::feed::Feed;
use super::model::*;
use super::msg::*;
use super::rules::{DRIVE_ROUNDS, EXPIRE_BATCH, FEED_EVERY_MS, WAKE_EVERY_MS};
use super::shard::{Market, Step};
use crate::{GameError, GameEvent};

impl Market {
    pub(super) async fn handle_inner(&mut self, msg: MarketMsg, ctx: &mut Ctx) -> Result<MarketReply, GameError> {
        let now = ctx.now_ms();
        match msg {
            MarketMsg::List { seller, count, price, others_active } => {
                let n = self.begin_list(&seller, count, price, others_active, now).inspect_err(|_| ctx.unchanged())?;
                // The intent is on disk before the seller's cards move.
                ctx.durable();
                Ok(MarketReply::Started(OpRef::Listing(n)))
            }
            MarketMsg::Buy { listing, buyer } => {
                self.load(&[listing], ctx).await.inspect_err(|_| ctx.unchanged())?;
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
                self.load(&[listing], ctx).await.inspect_err(|_| ctx.unchanged())?;
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
                self.load(&self.book.page(max_price, limit as usize).0, ctx).await?;
                let (listings, total) = self.browse(max_price, limit);
                Ok(MarketReply::Listings { listings, total })
            }
            MarketMsg::ListingsOf { player } => {
                ctx.unchanged();
                self.load(&self.book.of_seller(&player), ctx).await?;
                let listings: Vec<ListingView> = self.active_of(&player).map(Listing::view).collect();
                let total = listings.len() as u64;
                Ok(MarketReply::Listings { listings, total })
            }
            MarketMsg::CountOf { player } => {
                ctx.unchanged();
                Ok(MarketReply::Count(self.book.count_of(&player)))
            }
            MarketMsg::Tick => self.expire(ctx).await,
            MarketMsg::Drive => Ok(self.drive(ctx).await),
            MarketMsg::Wake if self.wake_round == 0 => self.expire(ctx).await,
            MarketMsg::Wake => Ok(self.drive(ctx).await),
        }
    }
}

impl Market {
    /// Marks listings past their expiry as returning (their cards go back
    /// by `Drive`, after this is written).
    async fn expire(&mut self, ctx: &mut Ctx) -> Result<MarketReply, GameError> {
        // The feed, if due, goes out after this handler.
        let now = ctx.now_ms();
        self.load(&self.book.due(now, EXPIRE_BATCH), ctx).await.inspect_err(|_| ctx.unchanged())?;
        let expired = self.expire_due(now);
        if expired > 0 {
            ctx.durable();
        } else {
            ctx.unchanged();
        }
        Ok(MarketReply::Ticked { expired, pending: self.pending_ops().len() as u32 })
    }

    /// Advances every pending operation by one step.
    async fn drive(&mut self, ctx: &mut Ctx) -> MarketReply {
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
        MarketReply::Ticked { expired: 0, pending: self.pending_ops().len() as u32 }
    }

    /// Sets the shard's timer after a handler: while it holds listings,
    /// purchases or an unpublished feed it wakes every [`WAKE_EVERY_MS`]
    /// (and when its first listing expires, if that is sooner);
    /// after a wake that left operations pending, again at once (the next
    /// round of the same maintenance), [`DRIVE_ROUNDS`] times at most.
    pub(super) fn schedule(&mut self, ctx: &mut Ctx, woken: bool, reply: &Result<MarketReply, GameError>) {
        let now = ctx.now_ms();
        if woken {
            let pending = matches!(reply, Ok(MarketReply::Ticked { pending, .. }) if *pending > 0);
            if pending && self.wake_round < DRIVE_ROUNDS {
                self.wake_round += 1;
                ctx.set_timer(now);
                return;
            }
            self.wake_round = 0;
        }
        let busy =
            !self.listings.is_empty() || self.book.open_len() > 0 || !self.buys.is_empty() || !self.feed.is_empty();
        if !busy {
            ctx.clear_timer();
            return;
        }
        let first_expiry = self.book.first_expiry().unwrap_or(u64::MAX);
        let due = (now + WAKE_EVERY_MS).min(first_expiry);
        if ctx.timer().is_none_or(|at| at > due) {
            ctx.set_timer(due);
        }
    }
}

impl Market {
    /// Publishes what changed since the last feed event, if that was at
    /// least [`FEED_EVERY_MS`] ago. Runs after every handler, browses included: the clock is read only
    /// when there is something to publish.
    pub(super) fn publish_feed_if_due(&mut self, ctx: &Ctx) {
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
}
