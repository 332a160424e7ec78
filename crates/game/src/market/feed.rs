//! The offer stream: a shard's new offers and closings, conflated and
//! published at most once a period.

use super::model::*;
use super::rules::*;

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
