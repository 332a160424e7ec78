//! The guilds' periodic work: expiries, retries of unfinished steps.

use guildhall_entity::Ctx;

use super::directory::{DirectoryMsg, GuildDirectory, DIRECTORY_KEY};
use super::msg::GuildReply;
use super::state::Guild;
use crate::GameError;

impl Guild {
    /// Expiries and retries of unfinished steps; the [`super::waker`] sends
    /// it when the directory says this guild's wake-up time has come.
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
