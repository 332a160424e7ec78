//! Help requests: a member asks for cards of one kind; they close when
//! filled, expired, or when the requester leaves.

use guildhall_entity::Ctx;

use super::model::*;
use super::msg::{GuildEvent, GuildReply};
use super::rules::*;
use super::state::Guild;
use crate::catalogue::card_def;
use crate::{GameError, GuildError, PlayerError};

impl Guild {
    /// The open help request of `player`, if any (at most one each).
    pub(super) fn help_key_of(&self, player: &str) -> Option<u64> {
        self.help.iter().find(|(_, h)| h.requester == player).map(|(k, _)| *k)
    }

    pub(super) fn help_of(&self, player: &str) -> Option<&HelpRequest> {
        self.help_key_of(player).and_then(|k| self.help.get(&k))
    }

    /// Validates a new help request of `player` (member checks aside) and
    /// returns how many cards it may ask for.
    pub fn check_help(&self, player: &str, kind: u32, count: u32, now_ms: u64) -> Result<u32, GameError> {
        let def = card_def(kind).ok_or(PlayerError::UnknownCard(kind))?;
        let max = help_max_cards(def.rarity);
        if max == 0 {
            return Err(GuildError::CardNotRequestable(kind).into());
        }
        if self.help_of(player).is_some() {
            return Err(GuildError::HelpAlreadyOpen.into());
        }
        if let Some(at) = self.help_asked_at.get(player) {
            if now_ms < at + HELP_COOLDOWN_MS {
                return Err(GuildError::HelpCooldown { ready_at_ms: at + HELP_COOLDOWN_MS }.into());
            }
        }
        Ok(if count == 0 { max } else { count.min(max) })
    }

    /// Closes expired help requests, and forgets cooldowns that ran out.
    pub(super) fn expire_help(&mut self, ctx: &Ctx) -> bool {
        let now = ctx.now_ms();
        self.help_asked_at.retain(|at| now < at + HELP_COOLDOWN_MS);
        let expired: Vec<u64> = self.help.iter().filter(|(_, h)| h.expires_at_ms <= now).map(|(id, _)| *id).collect();
        for id in &expired {
            if let Some(request) = self.help.remove(id) {
                self.publish(
                    ctx,
                    GuildEvent::HelpClosed { guild_id: self.id.clone(), request, reason: HelpClose::Expired },
                );
            }
        }
        !expired.is_empty()
    }

    pub(super) fn close_help_of(&mut self, ctx: &Ctx, player: &str) {
        if let Some(request) = self.help_key_of(player).and_then(|id| self.help.remove(&id)) {
            self.publish(ctx, GuildEvent::HelpClosed { guild_id: self.id.clone(), request, reason: HelpClose::Left });
        }
    }

    /// Opens a help request (one per member, a cooldown between two).
    pub(super) async fn ask_help(
        &mut self,
        ctx: &mut Ctx,
        player: String,
        kind: u32,
        count: u32,
    ) -> Result<GuildReply, GameError> {
        let now = ctx.now_ms();
        self.live()?;
        self.role_of(&player)?;
        let wanted = self.check_help(&player, kind, count, now)?;
        let request = HelpRequest {
            id: self.next(),
            requester: player.clone(),
            kind,
            wanted,
            received: 0,
            pledged: 0,
            opened_at_ms: now,
            expires_at_ms: now + HELP_LIFETIME_MS,
            donors: Vec::new(),
        };
        self.help.insert(request.id, request.clone());
        self.help_asked_at.insert(player, now);
        self.publish(ctx, GuildEvent::HelpOpened { guild_id: self.id.clone(), request: request.clone() });
        self.push_directory(ctx, true);
        ctx.durable();
        Ok(GuildReply::Help(request))
    }
}
