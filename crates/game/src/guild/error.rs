use serde::{Deserialize, Serialize};

/// Refusals of guilds, their chat and help requests, and the directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum GuildError {
    #[error("no guild {0}")]
    GuildNotFound(String),
    #[error("{0} is not a member of this guild")]
    NotGuildMember(String),
    #[error("no permission: {0}")]
    NoGuildPermission(String),
    #[error("the guild is full ({0} members)")]
    GuildFull(u32),
    #[error("already in guild {0}")]
    AlreadyInGuild(String),
    #[error("guild name {0:?} is taken")]
    GuildNameTaken(String),
    #[error("guild tag {0:?} is taken")]
    GuildTagTaken(String),
    #[error("invalid guild input: {0}")]
    InvalidGuildInput(String),
    #[error("no pending join request from {0}")]
    JoinRequestNotFound(String),
    #[error("{0} already has that role (or is the leader)")]
    GuildRoleUnchanged(String),
    #[error("chat message too long: {len} characters, at most {max}")]
    ChatTooLong { len: usize, max: usize },
    #[error("at most {max} chat messages per {window_ms} ms; retry at {retry_at_ms}")]
    ChatRateLimited { max: usize, window_ms: u64, retry_at_ms: u64 },
    #[error("the next help request is possible at {ready_at_ms}")]
    HelpCooldown { ready_at_ms: u64 },
    #[error("a help request of yours is already open")]
    HelpAlreadyOpen,
    #[error("the help request is closed or gone")]
    HelpRequestClosed,
    #[error("card {0} cannot be requested (legendary)")]
    CardNotRequestable(u32),
    #[error("you cannot donate to your own help request")]
    CannotDonateToSelf,
    /// A guild step's player did not answer; the guild finishes it later.
    #[error("guild step pending: {0}; it completes later")]
    GuildRetryLater(String),
}
