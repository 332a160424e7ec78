//! The guilds' periodic work: expiries, retries of unfinished steps.

use guildhall_entity::{Ctx, Runtime};

use super::directory::{DirectoryMsg, DirectoryReply, GuildDirectory, DIRECTORY_KEY};
use super::msg::{GuildMsg, GuildReply};
use super::ops::found;
use super::state::Guild;
use crate::GameError;

impl Guild {
    /// Expiries and retries of unfinished steps; the game's tick sends it when the directory says this guild's wake-up time has come.
    pub(super) async fn on_tick(&mut self, ctx: &mut Ctx) -> Result<GuildReply, GameError> {
        let now = ctx.now_ms();
        let rt = ctx.runtime().clone();
        if !self.founded {
            return Ok(GuildReply::Done);
        }
        if !self.disbanded {
            self.expire_help(ctx);
        }
        let due: Vec<u64> = self.pending.values().filter(|d| d.retry_at_ms <= now).map(|d| d.n).collect();
        for n in due {
            let _ = self.run_donation(ctx, n, true).await;
        }
        let unsynced: Vec<(String, Option<String>)> =
            self.unsynced.iter().map(|(p, g)| (p.clone(), g.clone())).collect();
        for (player, guild) in unsynced {
            self.sync_player(&rt, &player, guild).await;
        }
        if self.disbanded {
            if self.pending.is_empty() && self.unsynced.is_empty() {
                // Nothing left to do: stop being woken.
                ctx.runtime()
                    .spawn_cast::<GuildDirectory>(DIRECTORY_KEY, DirectoryMsg::Remove { guild_id: self.id.clone() });
            }
        } else {
            self.push_directory(ctx, true);
        }
        ctx.durable();
        Ok(GuildReply::Done)
    }
}

/// The guilds' periodic work, from the game's tick: asks the directory which
/// guilds are due (help expiry, donation steps to retry, reservations left
/// by a crash) and ticks each. Calls, not casts, so that when the server's
/// maintenance returns (tests: `server.maintain().await`) the work is done.
/// The tick is not an entity, so calling the hubs here cannot form a cycle.
pub async fn tick(rt: &Runtime) {
    let (due, stale) = match rt.call::<GuildDirectory>(DIRECTORY_KEY, DirectoryMsg::Due).await {
        Ok(Ok(DirectoryReply::Due { guilds, stale })) => (guilds, stale),
        Ok(other) => {
            tracing::warn!(?other, "guild directory: unexpected Due reply");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "guild directory unreachable for tick");
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
