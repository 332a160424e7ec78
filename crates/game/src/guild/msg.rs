//! The guild entity's messages, replies and published events.

use serde::{Deserialize, Serialize};

use super::model::*;

/// Events published on the guild's topic; every member's session gets them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuildEvent {
    MemberJoined {
        guild_id: String,
        player_id: String,
        role: GuildRole,
    },
    /// Left on its own (`kicked_by` None) or kicked; `new_leader` when
    /// leadership passed on.
    MemberLeft {
        guild_id: String,
        player_id: String,
        kicked_by: Option<String>,
        new_leader: Option<String>,
    },
    RoleChanged {
        guild_id: String,
        player_id: String,
        role: GuildRole,
        by: String,
    },
    JoinRequested {
        guild_id: String,
        player_id: String,
    },
    Chat {
        guild_id: String,
        message: ChatMessage,
    },
    HelpOpened {
        guild_id: String,
        request: HelpRequest,
    },
    HelpDonated {
        guild_id: String,
        request: HelpRequest,
        donor: String,
        count: u32,
    },
    HelpClosed {
        guild_id: String,
        request: HelpRequest,
        reason: HelpClose,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GuildMsg {
    /// Founds the guild reserved in the directory under this id: charges the
    /// founder (Burn), makes them leader. Idempotent for the same founder.
    Found {
        founder: String,
        input: GuildInput,
    },
    Get {
        viewer: String,
    },
    /// Joins an open guild at once, or files a join request for a closed one.
    Join {
        player: String,
    },
    /// An officer or the leader approves or rejects a join request.
    DecideJoin {
        officer: String,
        player: String,
        approve: bool,
    },
    Leave {
        player: String,
    },
    Kick {
        by: String,
        player: String,
    },
    Promote {
        by: String,
        player: String,
    },
    Demote {
        by: String,
        player: String,
    },
    PostChat {
        player: String,
        text: String,
    },
    ChatHistory {
        player: String,
        limit: usize,
    },
    AskHelp {
        player: String,
        kind: u32,
        count: u32,
    },
    /// Records a donation's intent durably; `ContinueDonation` runs it.
    PrepareDonation {
        donor: String,
        requester: String,
        count: u32,
    },
    ContinueDonation {
        n: u64,
    },
    /// Expiries and retries of unfinished steps; the guilds' waker sends it
    /// when the directory says this guild's wake-up time has come.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuildReply {
    View(GuildView),
    /// `joined` false: a join request was filed (closed guild).
    Joined {
        joined: bool,
        view: GuildView,
    },
    Left {
        new_leader: Option<String>,
        disbanded: bool,
    },
    Chat(ChatMessage),
    History(Vec<ChatMessage>),
    Help(HelpRequest),
    Prepared {
        n: u64,
    },
    Donated(DonationOutcome),
    Done,
}
