//! Guild chat: posting under a rate limit, and the history.

use guildhall_entity::Ctx;

use super::chat_log;
use super::model::*;
use super::msg::{GuildEvent, GuildReply};
use super::rules::*;
use super::state::Guild;
use crate::text::{clean, TextError};
use crate::{GameError, GuildError};

impl Guild {
    /// Checks the chat rate limit for `player` at `now_ms` and records the
    /// post if allowed.
    pub fn take_chat_slot(&mut self, player: &str, now_ms: u64) -> Result<(), GameError> {
        let times = self.chat_times.entry(player.to_string()).or_default();
        while times.front().is_some_and(|t| t + CHAT_RATE_WINDOW_MS <= now_ms) {
            times.pop_front();
        }
        if times.len() >= CHAT_RATE_MAX {
            let retry_at_ms = times.front().copied().unwrap_or(now_ms) + CHAT_RATE_WINDOW_MS;
            return Err(GuildError::ChatRateLimited {
                max: CHAT_RATE_MAX,
                window_ms: CHAT_RATE_WINDOW_MS,
                retry_at_ms,
            }
            .into());
        }
        times.push_back(now_ms);
        Ok(())
    }

    /// Posts a chat message: members only, rate-limited, kept as the last messages.
    pub(super) async fn post_chat(
        &mut self,
        ctx: &mut Ctx,
        player: String,
        text: String,
    ) -> Result<GuildReply, GameError> {
        let now = ctx.now_ms();
        self.live()?;
        self.role_of(&player)?;
        let text = match clean(&CHAT_TEXT, &text) {
            Ok(text) => text,
            Err(TextError::TooLong { len, max, .. }) => return Err(GuildError::ChatTooLong { len, max }.into()),
            Err(e) => return Err(GuildError::InvalidGuildInput(e.to_string()).into()),
        };
        self.take_chat_slot(&player, now)?;
        let message = ChatMessage { id: self.next(), player_id: player, text, at_ms: now };
        self.chat.post(message.clone());
        self.bump_activity(1, now);
        self.publish(ctx, GuildEvent::Chat { guild_id: self.id.clone(), message: message.clone() });
        self.push_directory(ctx, false);
        Ok(GuildReply::Chat(message))
    }

    /// The last `limit` chat messages (all kept, if 0).
    pub(super) async fn chat_history(
        &mut self,
        ctx: &mut Ctx,
        player: String,
        limit: usize,
    ) -> Result<GuildReply, GameError> {
        self.live()?;
        self.role_of(&player)?;
        ctx.unchanged();
        let limit = if limit == 0 { CHAT_HISTORY } else { limit.min(CHAT_HISTORY) };
        let messages = match self.chat.in_memory(limit) {
            Some(messages) => messages,
            None => {
                let parts = ctx
                    .read_cold(chat_log::PREFIX)
                    .await
                    .map_err(|e| GuildError::GuildRetryLater(format!("chat history: {e}")))?;
                let all = self.chat.absorb(parts).map_err(GuildError::GuildRetryLater)?;
                let skip = all.len().saturating_sub(limit);
                all.into_iter().skip(skip).collect()
            }
        };
        let shown_from = ctx.now_ms().saturating_sub(CHAT_RETENTION_MS);
        Ok(GuildReply::History(messages.into_iter().filter(|m| m.at_ms >= shown_from).collect()))
    }
}
