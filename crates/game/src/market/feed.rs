//! The offer stream: a shard's new offers and closings, conflated and
//! published at most once a period.

use guildhall_entity::Ctx;

use super::model::*;
use super::msg::*;
use super::rules::*;
use super::shard::Market;
use crate::GameEvent;

/// New offers and closings of one shard not yet published.
#[derive(Debug, Clone, Default)]
pub struct Feed {
    pub offers: Vec<ListingView>,
    pub closed: Vec<(String, CloseReason)>,
}

impl Feed {
    pub(super) fn offer(&mut self, view: ListingView) {
        if self.offers.len() == FEED_OFFERS {
            self.offers.remove(0);
        }
        self.offers.push(view);
    }

    /// A listing that opened and closed within one feed period is never
    /// announced at all.
    pub(super) fn close(&mut self, listing_id: String, reason: CloseReason) {
        if let Some(i) = self.offers.iter().position(|o| o.listing_id == listing_id) {
            self.offers.remove(i);
            return;
        }
        if self.closed.len() == FEED_CLOSED {
            self.closed.remove(0);
        }
        self.closed.push((listing_id, reason));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.offers.is_empty() && self.closed.is_empty()
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
