//! The market's periodic work.

use super::model::*;
use super::msg::*;
use super::rules::*;
use super::shard::Market;

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
