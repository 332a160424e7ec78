//! Typed calls of the market (`market.*`). See `proto/guildhall.proto` for
//! the refusals of each.

use guildhall_protocol::{method, pb};

use crate::{Client, ClientError};

impl Client {
    /// `market.list`: puts `count` cards of `kind` on the market for `price`
    /// gold; the cards leave the player at once (escrow).
    pub async fn market_list(&self, kind: u32, count: u32, price: u64) -> Result<pb::MarketListResponse, ClientError> {
        self.call(method::MARKET_LIST, &pb::MarketListRequest { kind, count, price }).await
    }

    /// `market.browse`: open listings matching `filter`, cheapest then oldest.
    pub async fn market_browse(
        &self,
        filter: pb::MarketBrowseRequest,
    ) -> Result<pb::MarketBrowseResponse, ClientError> {
        self.call(method::MARKET_BROWSE, &filter).await
    }

    /// `market.buy`: buys a listing; exactly one buyer wins it. A retry of a
    /// purchase that succeeded answers the same success and pays nothing.
    pub async fn market_buy(&self, listing_id: &str) -> Result<pb::MarketBuyResponse, ClientError> {
        self.call(method::MARKET_BUY, &pb::MarketBuyRequest { listing_id: listing_id.to_string() }).await
    }

    /// `market.cancel`: the seller takes a listing back.
    pub async fn market_cancel(&self, listing_id: &str) -> Result<pb::MarketCancelResponse, ClientError> {
        self.call(method::MARKET_CANCEL, &pb::MarketCancelRequest { listing_id: listing_id.to_string() }).await
    }

    /// `market.subscribe`: receive `MarketFeed` pushes (new offers and
    /// closed listings, conflated) for these card kinds (replacing the previous choice; empty
    /// stops the stream). Lasts as long as the session: subscribe again
    /// after a new login.
    pub async fn market_subscribe(&self, kinds: &[u32]) -> Result<pb::MarketSubscribeResponse, ClientError> {
        self.call(method::MARKET_SUBSCRIBE, &pb::MarketSubscribeRequest { kinds: kinds.to_vec() }).await
    }

    /// `market.my_listings`: the player's listings on the market.
    pub async fn market_my_listings(&self) -> Result<pb::MarketMyListingsResponse, ClientError> {
        self.call(method::MARKET_MY_LISTINGS, &pb::MarketMyListingsRequest {}).await
    }
}
