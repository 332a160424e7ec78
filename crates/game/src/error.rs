use serde::{Deserialize, Serialize};

/// Why the game refused an action. Every variant maps to a documented status
/// code of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum GameError {
    #[error("not enough gold: need {need}, have {have}")]
    NotEnoughGold { need: u64, have: u64 },
    #[error("not enough gems: need {need}, have {have}")]
    NotEnoughGems { need: u64, have: u64 },
    #[error("not enough mana: need {need}, have {have}")]
    NotEnoughMana { need: u32, have: u32 },
    #[error("not enough copies of card {kind}: need {need}, have {have}")]
    NotEnoughCards { kind: u32, need: u32, have: u32 },
    #[error("no card of kind {0} in the catalogue")]
    UnknownCard(u32),
    #[error("card {0} is at its maximum level")]
    MaxLevel(u32),
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
    // @guild-errors
    #[error("listing {0} is not on the market (cancelled, expired, or never listed)")]
    ListingGone(String),
    #[error("listing {0} is already sold")]
    AlreadySold(String),
    #[error("listing {0} is your own: you cannot buy it")]
    OwnListing(String),
    #[error("listing {0} is not yours")]
    NotSeller(String),
    #[error("price {price} is out of range ({min} to {max} gold)")]
    PriceOutOfRange { price: u64, min: u64, max: u64 },
    #[error("a listing holds 1 to {max} cards, not {count}")]
    ListingCountOutOfRange { count: u32, max: u32 },
    #[error("too many listings: at most {max} on the market at once")]
    TooManyListings { max: u32 },
    // @market-errors
    #[error("join a guild first: expeditions are for guilds")]
    NoGuild,
    #[error("only the guild's leader or officers can sign it up")]
    NotOfficer,
    // @expedition-errors
}
