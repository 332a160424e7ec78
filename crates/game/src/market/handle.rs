//! The market shard's handler.

use guildhall_entity::Ctx;

use super::model::*;
use super::msg::*;
use super::shard::{Market, Step};
use crate::GameError;

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
