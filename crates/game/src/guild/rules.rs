//! The guilds' numbers: sizes, limits, cooldowns, rewards.

use crate::text::TextRule;
use crate::Rarity;

/// Gold burnt to found a guild.
pub const GUILD_CREATE_COST: u64 = 100;
/// Members a guild holds at most.
pub const GUILD_CAPACITY: u32 = 30;
/// Pending join requests a closed guild keeps (the oldest is dropped).
pub const MAX_JOIN_REQUESTS: usize = 50;
/// Longest chat message, in characters (graphemes).
pub const CHAT_MAX_CHARS: usize = 280;
/// What a chat message must be: one to [`CHAT_MAX_CHARS`] characters, any
/// lines.
pub const CHAT_TEXT: TextRule = TextRule { what: "a chat message", min: 1, max: CHAT_MAX_CHARS, multiline: true };
/// What a guild name must be: 3 to 24 characters on one line.
pub const GUILD_NAME: TextRule = TextRule { what: "a guild name", min: 3, max: 24, multiline: false };
/// What a guild description must be: at most [`DESCRIPTION_MAX_CHARS`]
/// characters, any lines, possibly empty.
pub const GUILD_DESCRIPTION: TextRule =
    TextRule { what: "a guild description", min: 0, max: DESCRIPTION_MAX_CHARS, multiline: true };
/// Chat messages a guild remembers (in the store).
pub const CHAT_HISTORY: usize = 100;
/// Of those, the last ones a guild keeps in memory (a chat screen's worth).
pub const CHAT_HOT: usize = 20;
/// Older messages are not shown (and are overwritten as the guild chats).
pub const CHAT_RETENTION_MS: u64 = 30 * 24 * 3600 * 1000;
/// A member posts at most `CHAT_RATE_MAX` messages per `CHAT_RATE_WINDOW_MS`.
pub const CHAT_RATE_MAX: usize = 5;
pub const CHAT_RATE_WINDOW_MS: u64 = 10_000;
/// Time between two help requests of one member.
pub const HELP_COOLDOWN_MS: u64 = 8 * 3600 * 1000;
/// A help request closes this long after it opened, filled or not.
pub const HELP_LIFETIME_MS: u64 = 8 * 3600 * 1000;
/// A donation step that did not finish (a player unreachable, a crash) is
/// retried by `Tick` this long after its last attempt.
pub const STEP_RETRY_MS: u64 = 5_000;
/// Activity-only changes reach the directory at most this often (membership
/// changes go at once).
pub const DIRECTORY_PUSH_MS: u64 = 60_000;
pub const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;
/// Outcomes of finished donations remembered for a late `ContinueDonation`
/// (one that comes after `Tick` finished the donation, at the earliest
/// [`STEP_RETRY_MS`] after its intent). A guild of the standard profile
/// finishes about one donation in 4 s, so 16 reach back about a minute;
/// 64 were a fifth of a long run's heap (docs/bench-log/scaling-rounds.md, "Long runs").
pub(super) const REMEMBERED_OUTCOMES: usize = 16;

/// Cards of one rarity a help request may ask for (0: not requestable).
pub fn help_max_cards(rarity: Rarity) -> u32 {
    match rarity {
        Rarity::Common => 10,
        Rarity::Rare => 4,
        Rarity::Epic => 1,
        Rarity::Legendary => 0,
    }
}

/// Gold a donor earns per card donated (minted: a Reward).
pub fn donation_reward_gold(rarity: Rarity) -> u64 {
    match rarity {
        Rarity::Common => 10,
        Rarity::Rare => 30,
        Rarity::Epic => 100,
        Rarity::Legendary => 0,
    }
}

/// The week number of a clock time; weekly activity resets when it changes.
pub fn week_of(now_ms: u64) -> u64 {
    now_ms / WEEK_MS
}
/// Longest guild description, in characters (a longer one is refused).
pub const DESCRIPTION_MAX_CHARS: usize = 500;
