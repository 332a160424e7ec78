//! The guild entity's handler: one method per message, in the file of its
//! concept (members, chat, help, donations, tick).

use guildhall_entity::Ctx;

use super::msg::{GuildMsg, GuildReply};
use super::state::Guild;
use crate::GameError;

impl Guild {
    pub(super) async fn handle_inner(&mut self, msg: GuildMsg, ctx: &mut Ctx) -> Result<GuildReply, GameError> {
        if self.founded && !self.disbanded && !matches!(msg, GuildMsg::Tick) && self.expire_help(ctx) {
            self.push_directory(ctx, true);
        }
        match msg {
            GuildMsg::Get { viewer } => {
                self.live()?;
                Ok(GuildReply::View(self.view(&viewer, ctx.now_ms())))
            }
            GuildMsg::Promote { by, player } => self.set_role(ctx, by, player, true),
            GuildMsg::Demote { by, player } => self.set_role(ctx, by, player, false),
            GuildMsg::Found { founder, input } => self.found(ctx, founder, input).await,
            GuildMsg::Join { player } => self.join(ctx, player).await,
            GuildMsg::DecideJoin { officer, player, approve } => self.decide_join(ctx, officer, player, approve).await,
            GuildMsg::Leave { player } => self.leave(ctx, player).await,
            GuildMsg::Kick { by, player } => self.kick(ctx, by, player).await,
            GuildMsg::PostChat { player, text } => self.post_chat(ctx, player, text).await,
            GuildMsg::ChatHistory { player, limit } => self.chat_history(ctx, player, limit).await,
            GuildMsg::AskHelp { player, kind, count } => self.ask_help(ctx, player, kind, count).await,
            GuildMsg::PrepareDonation { donor, requester, count } => {
                self.prepare_donation(ctx, donor, requester, count).await
            }
            GuildMsg::ContinueDonation { n } => self.continue_donation(ctx, n).await,
            GuildMsg::Tick => self.on_tick(ctx).await,
        }
    }
}
