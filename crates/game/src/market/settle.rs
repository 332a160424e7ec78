//! The later steps of every operation: each one a transaction step on a
//! player, then a durable write of the shard.

use guildhall_entity::Ctx;

use super::model::*;
use super::rules::*;
use super::shard::{Market, Step};
use crate::catalogue::card_def;
use crate::player::{Change, ChangeKind};
use crate::tx::{self, StepError, TxStep};
use crate::MarketError;

impl Market {
    /// Advances `op` by one step. Every player step is an idempotent
    /// `Apply`; a failed call leaves the step to be retried.
    pub(super) async fn advance(&mut self, op: OpRef, ctx: &Ctx) -> Step {
        // An open listing's record may be in the store only.
        let listing = match op {
            OpRef::Listing(n) => Some(n),
            OpRef::Buy(op) => self.buys.get(&op).map(|b| b.listing),
        };
        if let Some(n) = listing {
            if let Err(e) = self.load(&[n], ctx).await {
                return Step::Stalled(e.to_string());
            }
        }
        match op {
            OpRef::Listing(n) => self.advance_listing(n, ctx).await,
            OpRef::Buy(op) => self.advance_buy(op, ctx).await,
        }
    }

    pub(super) async fn advance_listing(&mut self, n: u64, ctx: &Ctx) -> Step {
        let Some(listing) = self.listings.get(&n).cloned() else {
            if let Some(f) = self.finished.values().rev().find(|f| f.op == OpRef::Listing(n)) {
                return Step::Done(f.result.clone());
            }
            return match self.closed_view(n) {
                Some(v) => Step::Done(Ok(v.clone())),
                None => Step::Done(Err(MarketError::ListingGone(listing_id(self.kind, n)).into())),
            };
        };
        let id = listing.id();
        match &listing.state {
            ListingState::Escrowing => {
                let tx = format!("market/list/{id}");
                let change = Change { cards: listing.cards(-1), kind: ChangeKind::Transfer, ..Change::default() };
                match tx::apply(ctx.runtime(), &listing.seller, TxStep::new(tx, change)).await {
                    Ok(_) => {
                        self.set_open(n);
                        self.cards_held += listing.count as u64;
                        let view = Listing { state: ListingState::Open, ..listing.clone() }.view();
                        self.feed.offer(view.clone());
                        self.finish(OpRef::Listing(n), Ok(view))
                    }
                    Err(StepError::Refused(refused)) => {
                        self.listings.remove(&n);
                        self.book.remove_seller(&listing.seller, n);
                        self.finish(OpRef::Listing(n), Err(refused))
                    }
                    Err(StepError::Unknown(stalled)) => Step::Stalled(stalled),
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
                match tx::apply(ctx.runtime(), &listing.seller, TxStep::new(tx, change).notify(true).notice(notice))
                    .await
                {
                    Ok(_) => {
                        let closed = self.close(n, reason, None).map_err(Into::into);
                        self.finish(OpRef::Listing(n), closed)
                    }
                    Err(StepError::Refused(refused)) => Step::Stalled(format!("returning {id} refused: {refused}")),
                    Err(StepError::Unknown(stalled)) => Step::Stalled(stalled),
                }
            }
            ListingState::Open | ListingState::Sold { .. } => Step::Done(Ok(listing.view())),
        }
    }

    pub(super) async fn advance_buy(&mut self, op: u64, ctx: &Ctx) -> Step {
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
                match tx::apply(ctx.runtime(), &buy.buyer, TxStep::new(buy.tx(kind, "hold"), hold)).await {
                    Ok(_) => {
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
                        if let Some(b) = self.buys.get_mut(&op) {
                            b.stage = stage;
                        }
                        Step::Pending
                    }
                    Err(StepError::Refused(refused)) => {
                        self.buys.remove(&op);
                        self.finish(OpRef::Buy(op), Err(refused))
                    }
                    Err(StepError::Unknown(stalled)) => Step::Stalled(stalled),
                }
            }
            BuyStage::Won => {
                // A won listing stays on the books until delivered.
                let Some(listing) = self.listings.get(&buy.listing).cloned() else {
                    return Step::Stalled(format!("won listing {id} is missing from the books"));
                };
                let cards = Change { cards: listing.cards(1), kind: ChangeKind::Transfer, ..Change::default() };
                match tx::apply(ctx.runtime(), &buy.buyer, TxStep::new(buy.tx(kind, "cards"), cards).notify(true)).await
                {
                    Ok(_) => {}
                    Err(StepError::Refused(refused)) => {
                        return Step::Stalled(format!("delivering {id} refused: {refused}"))
                    }
                    Err(StepError::Unknown(stalled)) => return Step::Stalled(stalled),
                }
                let fee = sale_fee(buy.price);
                let pay = Change { gold: (buy.price - fee) as i64, kind: ChangeKind::Transfer, ..Change::default() };
                let name = card_def(kind).map_or("?", |d| d.name);
                let notice =
                    format!("Sold {}× {name} ({id}) for {} gold; {} gold fee burnt", listing.count, buy.price, fee);
                match tx::apply(
                    ctx.runtime(),
                    &listing.seller,
                    TxStep::new(format!("market/pay/{id}"), pay).notice(Some(notice)),
                )
                .await
                {
                    Ok(_) => {}
                    Err(StepError::Refused(refused)) => {
                        return Step::Stalled(format!("paying {id} refused: {refused}"))
                    }
                    Err(StepError::Unknown(stalled)) => return Step::Stalled(stalled),
                }
                self.gold_held -= buy.price;
                self.fees_burnt += fee;
                self.sales += 1;
                self.buys.remove(&op);
                let closed = self.close(buy.listing, CloseReason::Sold, Some(buy.buyer.clone())).map_err(Into::into);
                self.finish(OpRef::Buy(op), closed)
            }
            BuyStage::Lost => {
                let refund = Change { gold: buy.price as i64, kind: ChangeKind::Transfer, ..Change::default() };
                match tx::apply(ctx.runtime(), &buy.buyer, TxStep::new(buy.tx(kind, "refund"), refund).notify(true))
                    .await
                {
                    Ok(_) => {
                        self.gold_held -= buy.price;
                        self.buys.remove(&op);
                        let lost = self.not_open(buy.listing);
                        self.finish(OpRef::Buy(op), Err(lost.into()))
                    }
                    Err(StepError::Refused(refused)) => Step::Stalled(format!("refund of {id} refused: {refused}")),
                    Err(StepError::Unknown(stalled)) => Step::Stalled(stalled),
                }
            }
        }
    }
}
