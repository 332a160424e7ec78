//! The guilds' waker: the one entity whose timer drives the guilds' periodic
//! work. Every second it asks the directory which guilds are due (help
//! expiry, donation steps to retry, players to resync: the wake-up times
//! the guilds last told it) and which creations a crash left half done, and
//! ticks or finishes each.
//!
//! A guild's work must happen while it is passivated too, so its wake-up
//! time lives in the directory's state rather than in a timer of the guild.
//! The waker is an entity of its own, hosted on one node: the directory
//! stays a hub that nothing blocks on (the waker may wait seconds for a
//! guild whose player does not answer), and each guild's tick runs on the
//! node that hosts that guild. Nothing calls the waker, so its calls cannot
//! form a cycle.

use guildhall_entity::{Ctx, Entity, Runtime};
use serde::{Deserialize, Serialize};

use super::directory::{DirectoryMsg, DirectoryReply, GuildDirectory, DIRECTORY_KEY};
use super::msg::GuildMsg;
use super::ops::found;
use super::state::Guild;

/// The waker's one key.
pub const WAKER_KEY: &str = "all";
/// How often the waker asks the directory.
pub const WAKE_EVERY_MS: u64 = 1_000;

/// The waker holds no state of its own.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GuildWaker {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WakerMsg {
    /// Tick the due guilds and finish stale creations (its timer; also sent
    /// once at start, which sets the timer).
    Wake,
}

impl Entity for GuildWaker {
    const KIND: &'static str = "guild_waker";
    type Msg = WakerMsg;
    type Reply = ();

    fn create(_key: &str, _now_ms: u64) -> Self {
        GuildWaker::default()
    }

    fn timer_msg() -> Option<WakerMsg> {
        Some(WakerMsg::Wake)
    }

    async fn handle(&mut self, WakerMsg::Wake: WakerMsg, ctx: &mut Ctx) {
        ctx.unchanged();
        wake_due(ctx.runtime()).await;
        ctx.set_timer(ctx.now_ms() + WAKE_EVERY_MS);
    }
}

/// Ticks the guilds whose wake-up time has come and finishes (or releases)
/// creations left behind by a crash. Calls, not casts, so that when the
/// runtime's maintenance returns the work is done.
async fn wake_due(rt: &Runtime) {
    let (due, stale) = match rt.call::<GuildDirectory>(DIRECTORY_KEY, DirectoryMsg::Due).await {
        Ok(Ok(DirectoryReply::Due { guilds, stale })) => (guilds, stale),
        Ok(other) => {
            tracing::warn!(?other, "guild directory: unexpected Due reply");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "guild directory unreachable for the guilds' wake-ups");
            return;
        }
    };
    for guild in due {
        if let Err(e) = rt.call::<Guild>(&guild, GuildMsg::Tick).await {
            tracing::warn!(guild, error = %e, "guild tick failed; retried later");
        }
    }
    for r in stale {
        // A creation interrupted by a crash: finish it (the same tx id, so
        // the founder is charged at most once) or give the name back.
        let _ = found(rt, r).await;
    }
}
