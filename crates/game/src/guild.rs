//! The guild entity (one per guild, key = guild id "g1", "g2", ...):
//! membership and roles, join requests, chat, and help requests with card
//! donations routed between members.
//!
//! The guild is a *hub*: it calls players (`PlayerMsg::Apply`, `SetGuild`,
//! `Get`) and never the other way round, and it only *casts* to the
//! directory, so no call cycle can form. Every value it moves goes through
//! an intent recorded in its own state first ([`Donation`]), with
//! deterministic transaction ids, so that a crash between two steps is
//! completed by re-running the same steps (idempotent on the player) from
//! `Tick` after the restart: no card is created or lost.

use std::collections::{BTreeMap, VecDeque};

use guildhall_entity::{Ctx, Entity, Runtime};
use serde::{Deserialize, Serialize};

use crate::catalogue::card_def;
use crate::guild_directory::{DirectoryMsg, DirectoryReply, GuildDirectory, Reservation, DIRECTORY_KEY};
use crate::parts::PartMap;
use crate::player::{Change, ChangeKind, Player, PlayerMsg, PlayerReply, PlayerView};
use crate::{guild_topic, player_topic, GameError, GameEvent, Rarity};

// ------------------------------------------------------------------ rules --

/// Gold burnt to found a guild.
pub const GUILD_CREATE_COST: u64 = 100;
/// Members a guild holds at most.
pub const GUILD_CAPACITY: u32 = 30;
/// Pending join requests a closed guild keeps (the oldest is dropped).
pub const MAX_JOIN_REQUESTS: usize = 50;
/// Longest chat message, in characters.
pub const CHAT_MAX_CHARS: usize = 280;
/// Chat messages a guild remembers.
pub const CHAT_HISTORY: usize = 100;
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
/// 64 were a fifth of a long run's heap (BENCHMARKS.md, "Long runs").
const REMEMBERED_OUTCOMES: usize = 16;

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

// ------------------------------------------------------------------ types --

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GuildRole {
    Member,
    Officer,
    Leader,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub player_id: String,
    pub role: GuildRole,
    pub joined_at_ms: u64,
    /// Order of joining: "longest-serving" is the smallest, even when two
    /// joined at the same clock millisecond.
    pub joined_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: u64,
    pub player_id: String,
    pub text: String,
    pub at_ms: u64,
}

/// An open help request: `requester` wants `wanted` cards of `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelpRequest {
    pub id: u64,
    pub requester: String,
    pub kind: u32,
    pub wanted: u32,
    /// Cards delivered so far.
    pub received: u32,
    /// Cards of donations in flight (counted against `wanted` so that two
    /// donors can never overfill a request).
    pub pledged: u32,
    pub opened_at_ms: u64,
    pub expires_at_ms: u64,
    /// (donor, cards) in order of delivery.
    pub donors: Vec<(String, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelpClose {
    Filled,
    Expired,
    /// The requester left or was kicked.
    Left,
}

/// The next step of a donation in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DonationStep {
    /// Take the cards from the donor (into this guild's escrow).
    Take,
    /// Give the escrowed cards to the requester.
    Give,
    /// Pay the donor's reward.
    Reward,
    /// Giving failed for good: return the escrowed cards to the donor.
    Refund,
}

/// A donation in flight: the intent, recorded durably before any value
/// moves. Cards are in this guild's escrow while `step` is `Give` or
/// `Refund` (an audit sums them from the guild's JSON state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Donation {
    pub n: u64,
    pub request_id: u64,
    pub donor: String,
    pub requester: String,
    pub kind: u32,
    pub count: u32,
    pub reward_gold: u64,
    pub step: DonationStep,
    pub created_at_ms: u64,
    /// `Tick` re-drives the donation from this time on.
    pub retry_at_ms: u64,
}

impl Donation {
    /// The transaction id of one step ("take", "give", "reward", "refund").
    pub fn tx(&self, guild: &str, step: &str) -> String {
        format!("guild/{guild}/donation/{}/{step}", self.n)
    }

    /// Cards of this donation currently held by the guild.
    pub fn escrowed_cards(&self) -> u32 {
        match self.step {
            DonationStep::Give | DonationStep::Refund => self.count,
            DonationStep::Take | DonationStep::Reward => 0,
        }
    }
}

/// What a donor learns about a donation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonationOutcome {
    pub donated: u32,
    pub reward_gold: u64,
    /// The request after this donation (possibly closed: `received == wanted`).
    pub request: HelpRequest,
    /// The donor's profile after the reward; `None` in a remembered outcome
    /// (the caller reads the profile then).
    pub donor: Option<PlayerView>,
}

/// A guild as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildSummary {
    pub id: String,
    pub name: String,
    pub tag: String,
    pub members: u32,
    pub capacity: u32,
    pub open: bool,
    pub language: String,
    /// Chat messages plus cards donated in week `activity_week`.
    pub activity: u64,
    pub activity_week: u64,
}

impl GuildSummary {
    /// This summary as of week `week` (older activity counts as none).
    pub fn current(&self, week: u64) -> GuildSummary {
        let mut s = self.clone();
        if s.activity_week != week {
            s.activity = 0;
            s.activity_week = week;
        }
        s
    }
}

/// A guild as shown to a player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildView {
    pub summary: GuildSummary,
    pub description: String,
    pub members: Vec<Member>,
    /// Players waiting for approval (shown to officers and the leader only).
    pub join_requests: Vec<String>,
    /// Open help requests (shown to members only).
    pub help: Vec<HelpRequest>,
}

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
        name: String,
        tag: String,
        language: String,
        open: bool,
        description: String,
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
    /// Expiries and retries of unfinished steps; the game's tick sends it
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

/// The guild entity's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Guild {
    pub id: String,
    /// False until `Found` succeeded: an unfounded guild answers nothing but
    /// `Found` (any id a client makes up stays an empty, unstored instance).
    pub founded: bool,
    pub disbanded: bool,
    pub founder: String,
    pub name: String,
    pub tag: String,
    pub description: String,
    pub language: String,
    pub open: bool,
    pub capacity: u32,
    pub created_at_ms: u64,
    /// Members by `joined_seq` (so in order of joining): in parts `m/{seq}`.
    /// With the help requests, the members were most of a snapshot that
    /// every guild step rewrote, and guilds most of the store's write volume
    /// (BENCHMARKS.md, "Long runs"); as parts, a step writes what it touched.
    #[serde(default, skip_serializing, rename = "member_parts")]
    pub members: PartMap<Member>,
    /// (player, requested at) of pending join requests, oldest first.
    pub join_requests: Vec<(String, u64)>,
    /// One counter for join order, chat ids, help ids and donation numbers.
    pub counter: u64,
    /// The last [`CHAT_HISTORY`] messages by id: in parts `c/{id}`, so that
    /// a post writes one message, not the history (renamed so that an old
    /// snapshot's inline list is not read as a map).
    #[serde(default, skip_serializing, rename = "chat_parts")]
    pub chat: PartMap<ChatMessage>,
    /// Recent post times per member, for the chat rate limit. Not stored:
    /// a limit over ten seconds need not outlive a restart, and it changed
    /// with every post.
    #[serde(skip)]
    pub chat_times: BTreeMap<String, VecDeque<u64>>,
    /// Open help requests by id (one per requester at most): in parts
    /// `h/{id}`, so that a donation writes the request it fills.
    #[serde(default, skip_serializing, rename = "help_parts")]
    pub help: PartMap<HelpRequest>,
    /// When each player last opened a help request (the cooldown), kept
    /// while the cooldown runs.
    pub help_asked_at: BTreeMap<String, u64>,
    /// Donations in flight, by number: the guild's escrow.
    pub pending: BTreeMap<u64, Donation>,
    /// Finished donations' outcomes, for a `ContinueDonation` that arrives
    /// after `Tick` already finished the donation.
    /// In parts `o/{n}`, like the chat.
    #[serde(default, skip_serializing, rename = "outcome_parts")]
    pub outcomes: PartMap<Result<DonationOutcome, GameError>>,
    /// Players whose `SetGuild` did not go through yet (retried by `Tick`).
    pub unsynced: BTreeMap<String, Option<String>>,
    pub activity: u64,
    pub activity_week: u64,
    /// Update counter of the directory listing.
    pub dir_seq: u64,
    pub dir_pushed_ms: u64,
    /// Totals, for operators and audits.
    pub cards_routed: u64,
    pub gold_rewarded: u64,
    /// Members and help requests of a snapshot written before they moved
    /// into parts; `load_parts` moves them (the next write stores them as
    /// parts).
    #[serde(default, skip_serializing, rename = "members")]
    old_members: Vec<Member>,
    #[serde(default, skip_serializing, rename = "help")]
    old_help: BTreeMap<String, HelpRequest>,
}

/// A step on a player failed: refused by the rules, or the player did not
/// answer (the step's outcome is unknown and must be retried with its tx).
enum StepError {
    Refused(GameError),
    Unreachable(String),
}

impl From<StepError> for GameError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::Refused(g) => g,
            StepError::Unreachable(why) => GameError::GuildRetryLater(why),
        }
    }
}

async fn call_player(rt: &Runtime, player: &str, msg: PlayerMsg) -> Result<PlayerReply, StepError> {
    match rt.call::<Player>(player, msg).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(StepError::Refused(e)),
        Err(e) => Err(StepError::Unreachable(format!("player {player}: {e}"))),
    }
}

async fn player_view(rt: &Runtime, player: &str) -> Result<PlayerView, StepError> {
    match call_player(rt, player, PlayerMsg::Get).await? {
        PlayerReply::Profile(v) | PlayerReply::Applied(v) => Ok(v),
        other => Err(StepError::Unreachable(format!("unexpected reply {other:?}"))),
    }
}

async fn apply(
    rt: &Runtime,
    player: &str,
    tx: String,
    change: Change,
    notify: bool,
    notice: Option<String>,
) -> Result<PlayerView, StepError> {
    match call_player(rt, player, PlayerMsg::Apply { tx, change, notify, notice }).await? {
        PlayerReply::Applied(v) | PlayerReply::Profile(v) => Ok(v),
        other => Err(StepError::Unreachable(format!("unexpected reply {other:?}"))),
    }
}

impl Guild {
    fn member(&self, player: &str) -> Option<&Member> {
        self.member_key(player).and_then(|k| self.members.get(&k))
    }

    /// The `joined_seq` (the part key) of member `player`.
    fn member_key(&self, player: &str) -> Option<u64> {
        self.members.iter().find(|(_, m)| m.player_id == player).map(|(k, _)| *k)
    }

    /// Sets a member's role (marks only that member changed).
    fn set_member_role(&mut self, player: &str, role: GuildRole) {
        if let Some(m) = self.member_key(player).and_then(|k| self.members.get_mut(&k)) {
            m.role = role;
        }
    }

    fn add_member(&mut self, player: &str, role: GuildRole, now_ms: u64) {
        let seq = self.next();
        self.members.insert(seq, Member { player_id: player.to_string(), role, joined_at_ms: now_ms, joined_seq: seq });
    }

    /// The open help request of `player`, if any (at most one each).
    fn help_key_of(&self, player: &str) -> Option<u64> {
        self.help.iter().find(|(_, h)| h.requester == player).map(|(k, _)| *k)
    }

    fn help_of(&self, player: &str) -> Option<&HelpRequest> {
        self.help_key_of(player).and_then(|k| self.help.get(&k))
    }

    fn role_of(&self, player: &str) -> Result<GuildRole, GameError> {
        self.member(player).map(|m| m.role).ok_or_else(|| GameError::NotGuildMember(player.to_string()))
    }

    fn live(&self) -> Result<(), GameError> {
        if self.founded && !self.disbanded {
            Ok(())
        } else {
            Err(GameError::GuildNotFound(self.id.clone()))
        }
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    pub fn summary(&self, now_ms: u64) -> GuildSummary {
        GuildSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            tag: self.tag.clone(),
            members: self.members.len() as u32,
            capacity: self.capacity,
            open: self.open,
            language: self.language.clone(),
            activity: self.activity,
            activity_week: self.activity_week,
        }
        .current(week_of(now_ms))
    }

    pub fn view(&self, viewer: &str, now_ms: u64) -> GuildView {
        let role = self.member(viewer).map(|m| m.role);
        GuildView {
            summary: self.summary(now_ms),
            description: self.description.clone(),
            members: self.members.values().cloned().collect(),
            join_requests: if role >= Some(GuildRole::Officer) {
                self.join_requests.iter().map(|(p, _)| p.clone()).collect()
            } else {
                Vec::new()
            },
            help: if role.is_some() { self.help.values().cloned().collect() } else { Vec::new() },
        }
    }

    /// Cards held in escrow by donations in flight, by kind (for audits).
    pub fn escrow(&self) -> BTreeMap<u32, u32> {
        let mut out = BTreeMap::new();
        for d in self.pending.values() {
            *out.entry(d.kind).or_insert(0) += d.escrowed_cards();
        }
        out.retain(|_, n| *n > 0);
        out
    }

    fn bump_activity(&mut self, by: u64, now_ms: u64) {
        let week = week_of(now_ms);
        if self.activity_week != week {
            self.activity_week = week;
            self.activity = 0;
        }
        self.activity += by;
    }

    /// When this guild next needs a `Tick`: the first help expiry, the first
    /// donation retry, or soon if a player's guild is not yet in sync.
    pub fn next_wake(&self, now_ms: u64) -> Option<u64> {
        let help = self.help.values().map(|h| h.expires_at_ms);
        let steps = self.pending.values().map(|d| d.retry_at_ms);
        let sync = (!self.unsynced.is_empty()).then_some(now_ms + STEP_RETRY_MS);
        help.chain(steps).chain(sync).min()
    }

    /// Checks the chat rate limit for `player` at `now_ms` and records the
    /// post if allowed.
    pub fn take_chat_slot(&mut self, player: &str, now_ms: u64) -> Result<(), GameError> {
        let times = self.chat_times.entry(player.to_string()).or_default();
        while times.front().is_some_and(|t| t + CHAT_RATE_WINDOW_MS <= now_ms) {
            times.pop_front();
        }
        if times.len() >= CHAT_RATE_MAX {
            let retry_at_ms = times.front().copied().unwrap_or(now_ms) + CHAT_RATE_WINDOW_MS;
            return Err(GameError::ChatRateLimited { max: CHAT_RATE_MAX, window_ms: CHAT_RATE_WINDOW_MS, retry_at_ms });
        }
        times.push_back(now_ms);
        Ok(())
    }

    /// Validates a new help request of `player` (member checks aside) and
    /// returns how many cards it may ask for.
    pub fn check_help(&self, player: &str, kind: u32, count: u32, now_ms: u64) -> Result<u32, GameError> {
        let def = card_def(kind).ok_or(GameError::UnknownCard(kind))?;
        let max = help_max_cards(def.rarity);
        if max == 0 {
            return Err(GameError::CardNotRequestable(kind));
        }
        if self.help_of(player).is_some() {
            return Err(GameError::HelpAlreadyOpen);
        }
        if let Some(at) = self.help_asked_at.get(player) {
            if now_ms < at + HELP_COOLDOWN_MS {
                return Err(GameError::HelpCooldown { ready_at_ms: at + HELP_COOLDOWN_MS });
            }
        }
        Ok(if count == 0 { max } else { count.min(max) })
    }

    /// The successor of a leaving leader: the longest-serving officer, else
    /// the longest-serving member.
    pub fn successor(&self) -> Option<String> {
        let by_seniority = |role| self.members.values().filter(move |m| m.role == role).min_by_key(|m| m.joined_seq);
        by_seniority(GuildRole::Officer).or_else(|| by_seniority(GuildRole::Member)).map(|m| m.player_id.clone())
    }

    fn publish(&self, ctx: &Ctx, event: GuildEvent) {
        ctx.publish(&guild_topic(&self.id), GameEvent::Guild(event).encode());
    }

    /// Casts this guild's listing (and next wake-up) to the directory.
    /// Membership changes pass `force`; activity alone goes at most every
    /// [`DIRECTORY_PUSH_MS`].
    fn push_directory(&mut self, ctx: &Ctx, force: bool) {
        let now = ctx.now_ms();
        if !force && now.saturating_sub(self.dir_pushed_ms) < DIRECTORY_PUSH_MS {
            return;
        }
        self.dir_seq += 1;
        self.dir_pushed_ms = now;
        let msg = DirectoryMsg::Update { summary: self.summary(now), seq: self.dir_seq, wake_at: self.next_wake(now) };
        ctx.runtime().spawn_cast::<GuildDirectory>(DIRECTORY_KEY, msg);
    }

    /// Claims `player` for this guild at the player (see
    /// `PlayerMsg::ClaimGuild`): refused when the player is in another guild.
    async fn claim(&self, rt: &Runtime, player: &str) -> Result<(), StepError> {
        call_player(rt, player, PlayerMsg::ClaimGuild { guild: self.id.clone() }).await.map(|_| ())
    }

    /// Tells a player which guild it is in; remembered for `Tick` if the
    /// player does not answer.
    async fn sync_player(&mut self, rt: &Runtime, player: &str, guild: Option<String>) {
        // Leaving releases only this guild's claim: never a newer one.
        let msg = match &guild {
            Some(g) => PlayerMsg::SetGuild { guild: Some(g.clone()) },
            None => PlayerMsg::ReleaseGuild { guild: self.id.clone() },
        };
        match call_player(rt, player, msg).await {
            Ok(_) => {
                self.unsynced.remove(player);
            }
            Err(_) => {
                self.unsynced.insert(player.to_string(), guild);
            }
        }
    }

    /// Closes expired help requests, and forgets cooldowns that ran out.
    fn expire_help(&mut self, ctx: &Ctx) -> bool {
        let now = ctx.now_ms();
        self.help_asked_at.retain(|_, at| now < *at + HELP_COOLDOWN_MS);
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

    fn close_help_of(&mut self, ctx: &Ctx, player: &str) {
        if let Some(request) = self.help_key_of(player).and_then(|id| self.help.remove(&id)) {
            self.publish(ctx, GuildEvent::HelpClosed { guild_id: self.id.clone(), request, reason: HelpClose::Left });
        }
    }

    /// Checks that `player` is in no other guild (the player's own record
    /// is the authority).
    async fn check_not_elsewhere(&self, rt: &Runtime, player: &str) -> Result<(), GameError> {
        let p = player_view(rt, player).await?;
        match p.guild {
            // A player whose record names this guild but who is not listed
            // (a crash between the two writes) may enter again.
            Some(g) if g != self.id => Err(GameError::AlreadyInGuild(g)),
            _ => Ok(()),
        }
    }

    /// Checks that `player` may enter: in no other guild, room left.
    async fn check_can_enter(&self, rt: &Runtime, player: &str) -> Result<(), GameError> {
        self.check_not_elsewhere(rt, player).await?;
        if self.members.len() as u32 >= self.capacity {
            return Err(GameError::GuildFull(self.capacity));
        }
        Ok(())
    }

    /// Admits `player`: claims it at the player first (the authority on
    /// membership), then lists it.
    async fn admit(&mut self, ctx: &Ctx, player: &str) -> Result<(), StepError> {
        self.claim(ctx.runtime(), player).await?;
        self.add_member(player, GuildRole::Member, ctx.now_ms());
        self.join_requests.retain(|(p, _)| p != player);
        // The claim above already made the player's session follow the
        // guild's topic, so it receives its own join event.
        self.publish(
            ctx,
            GuildEvent::MemberJoined {
                guild_id: self.id.clone(),
                player_id: player.to_string(),
                role: GuildRole::Member,
            },
        );
        self.push_directory(ctx, true);
        Ok(())
    }

    /// Removes a member (left or kicked): passes leadership on, closes their
    /// help request, disbands the guild when nobody is left.
    async fn remove_member(&mut self, ctx: &Ctx, player: &str, kicked_by: Option<String>) -> (Option<String>, bool) {
        let Some(gone) = self.member_key(player).and_then(|k| self.members.remove(&k)) else {
            return (None, false);
        };
        let mut new_leader = None;
        if gone.role == GuildRole::Leader {
            if let Some(next) = self.successor() {
                self.set_member_role(&next, GuildRole::Leader);
                new_leader = Some(next);
            }
        }
        self.close_help_of(ctx, player);
        self.chat_times.remove(player);
        // The event first, while the player's session still follows the
        // guild's topic: a kicked player learns who kicked them.
        self.publish(
            ctx,
            GuildEvent::MemberLeft {
                guild_id: self.id.clone(),
                player_id: player.to_string(),
                kicked_by,
                new_leader: new_leader.clone(),
            },
        );
        self.sync_player(ctx.runtime(), player, None).await;
        let disbanded = self.members.is_empty();
        if disbanded {
            self.disbanded = true;
            self.join_requests.clear();
            ctx.runtime()
                .spawn_cast::<GuildDirectory>(DIRECTORY_KEY, DirectoryMsg::Remove { guild_id: self.id.clone() });
        } else {
            self.push_directory(ctx, true);
        }
        (new_leader, disbanded)
    }

    /// Runs a donation from its current step to the end. Every step is a
    /// player `Apply` with the donation's own tx id, so running it again
    /// (after a crash or an unreachable player) never applies anything twice.
    async fn run_donation(&mut self, ctx: &Ctx, n: u64, by_tick: bool) -> Result<DonationOutcome, GameError> {
        let rt = ctx.runtime().clone();
        let now = ctx.now_ms();
        let Some(mut d) = self.pending.get(&n).cloned() else {
            return self.outcome_of(n);
        };
        let name = card_def(d.kind).map_or("card", |c| c.name);
        let mut donor_view = None;
        let result = loop {
            let step = match d.step {
                DonationStep::Take => {
                    let change = Change { cards: vec![(d.kind, -(d.count as i64))], ..Change::default() };
                    apply(&rt, &d.donor, d.tx(&self.id, "take"), change, by_tick, None)
                        .await
                        .map(|_| DonationStep::Give)
                }
                DonationStep::Give => {
                    let change = Change { cards: vec![(d.kind, d.count as i64)], ..Change::default() };
                    let notice = format!("{} donated {} × {name}", d.donor, d.count);
                    match apply(&rt, &d.requester, d.tx(&self.id, "give"), change, true, Some(notice)).await {
                        Ok(_) => {
                            self.delivered(ctx, &d);
                            Ok(DonationStep::Reward)
                        }
                        // Giving cards of a catalogue kind cannot be refused;
                        // should it ever be, the donor gets them back.
                        Err(StepError::Refused(_)) => Ok(DonationStep::Refund),
                        Err(e) => Err(e),
                    }
                }
                DonationStep::Reward => {
                    let change = Change { gold: d.reward_gold as i64, kind: ChangeKind::Reward, ..Change::default() };
                    match apply(&rt, &d.donor, d.tx(&self.id, "reward"), change, by_tick, None).await {
                        Ok(v) => {
                            donor_view = Some(v);
                            self.gold_rewarded += d.reward_gold;
                            break Ok(());
                        }
                        Err(e) => Err(e),
                    }
                }
                DonationStep::Refund => {
                    let change = Change { cards: vec![(d.kind, d.count as i64)], ..Change::default() };
                    match apply(&rt, &d.donor, d.tx(&self.id, "refund"), change, true, None).await {
                        Ok(_) => break Err(GameError::HelpRequestClosed),
                        Err(e) => Err(e),
                    }
                }
            };
            match step {
                Ok(next) => {
                    d.step = next;
                    self.pending.insert(n, d.clone());
                }
                Err(StepError::Refused(e)) => {
                    // Only Take can be refused (the donor lacks the cards):
                    // nothing moved, the pledge is released.
                    break Err(e);
                }
                Err(StepError::Unreachable(why)) => {
                    // Outcome unknown: keep the intent, retry from Tick.
                    d.retry_at_ms = now + STEP_RETRY_MS;
                    self.pending.insert(n, d.clone());
                    self.push_directory(ctx, true);
                    return Err(GameError::GuildRetryLater(why));
                }
            }
        };
        self.pending.remove(&n);
        if d.step == DonationStep::Take || d.step == DonationStep::Refund {
            if let Some(h) = self.help.get_mut(&d.request_id) {
                h.pledged = h.pledged.saturating_sub(d.count);
            }
        }
        let outcome = result.map(|()| DonationOutcome {
            donated: d.count,
            reward_gold: d.reward_gold,
            request: self.request_view(&d),
            donor: donor_view,
        });
        // Remembered without the donor's profile: a whole card collection
        // in each of the 64 outcomes a guild kept made the outcomes most of a
        // long run's heap growth (issue 4, "Long runs" in BENCHMARKS.md). A
        // late caller reads the donor's profile as it is now.
        self.outcomes.insert(n, outcome.clone().map(|o| DonationOutcome { donor: None, ..o }));
        while self.outcomes.len() > REMEMBERED_OUTCOMES {
            self.outcomes.pop_first();
        }
        outcome
    }

    /// The request of a donation as it stands (closed requests as the
    /// donation left them).
    fn request_view(&self, d: &Donation) -> HelpRequest {
        self.help.get(&d.request_id).cloned().unwrap_or(HelpRequest {
            id: d.request_id,
            requester: d.requester.clone(),
            kind: d.kind,
            wanted: 0,
            received: 0,
            pledged: 0,
            opened_at_ms: 0,
            expires_at_ms: 0,
            donors: Vec::new(),
        })
    }

    /// Cards reached the requester: count them on the request, close it when
    /// filled, tell the guild.
    fn delivered(&mut self, ctx: &Ctx, d: &Donation) {
        let now = ctx.now_ms();
        self.cards_routed += d.count as u64;
        self.bump_activity(d.count as u64, now);
        let Some(h) = self.help.get_mut(&d.request_id) else {
            return; // closed meanwhile (expired, requester left): the cards are theirs anyway
        };
        h.received += d.count;
        h.pledged = h.pledged.saturating_sub(d.count);
        h.donors.push((d.donor.clone(), d.count));
        let request = h.clone();
        self.publish(
            ctx,
            GuildEvent::HelpDonated {
                guild_id: self.id.clone(),
                request: request.clone(),
                donor: d.donor.clone(),
                count: d.count,
            },
        );
        if request.received >= request.wanted {
            self.help.remove(&d.request_id);
            self.publish(ctx, GuildEvent::HelpClosed { guild_id: self.id.clone(), request, reason: HelpClose::Filled });
        }
    }

    /// Promotes a member to officer or demotes an officer to member; only
    /// the leader may.
    fn set_role(&mut self, ctx: &Ctx, by: String, player: String, promote: bool) -> Result<GuildReply, GameError> {
        self.live()?;
        let now = ctx.now_ms();
        if self.role_of(&by)? != GuildRole::Leader {
            return Err(GameError::NoGuildPermission("only the leader promotes and demotes".into()));
        }
        let target = self.role_of(&player)?;
        let role = match (promote, target) {
            (true, GuildRole::Member) => GuildRole::Officer,
            (false, GuildRole::Officer) => GuildRole::Member,
            _ => return Err(GameError::GuildRoleUnchanged(player)),
        };
        self.set_member_role(&player, role);
        self.publish(
            ctx,
            GuildEvent::RoleChanged { guild_id: self.id.clone(), player_id: player, role, by: by.clone() },
        );
        Ok(GuildReply::View(self.view(&by, now)))
    }

    fn outcome_of(&self, n: u64) -> Result<DonationOutcome, GameError> {
        self.outcomes.get(&n).cloned().unwrap_or(Err(GameError::HelpRequestClosed))
    }
}

impl Entity for Guild {
    const KIND: &'static str = "guild";
    type Msg = GuildMsg;
    type Reply = Result<GuildReply, GameError>;

    fn create(key: &str, _now_ms: u64) -> Self {
        Guild { id: key.to_string(), ..Guild::default() }
    }

    const HAS_PARTS: bool = true;

    fn take_part_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        self.chat.take_changes("c/", &mut out);
        self.outcomes.take_changes("o/", &mut out);
        self.members.take_changes("m/", &mut out);
        self.help.take_changes("h/", &mut out);
        out
    }

    fn load_parts(&mut self, parts: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        for (name, value) in parts {
            let known = self.chat.load("c/", &name, &value)?
                || self.outcomes.load("o/", &name, &value)?
                || self.members.load("m/", &name, &value)?
                || self.help.load("h/", &name, &value)?;
            if !known {
                return Err(format!("unknown part {name:?}"));
            }
        }
        for m in std::mem::take(&mut self.old_members) {
            self.members.insert(m.joined_seq, m);
        }
        for h in std::mem::take(&mut self.old_help).into_values() {
            self.help.insert(h.id, h);
        }
        Ok(())
    }

    fn state_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("members".into(), self.members.values().map(|m| serde_json::json!(m)).collect());
            obj.insert("help".into(), self.help.values().map(|h| serde_json::json!(h)).collect());
            obj.insert("chat".into(), self.chat.values().map(|m| serde_json::json!(m)).collect());
            let outcomes = self.outcomes.iter().map(|(n, o)| serde_json::json!([n, o])).collect();
            obj.insert("outcomes".into(), outcomes);
        }
        v
    }

    async fn handle(&mut self, msg: GuildMsg, ctx: &mut Ctx) -> Self::Reply {
        let result = self.handle_inner(msg, ctx).await;
        if !self.founded {
            // Nothing worth storing for an id that was never founded.
            ctx.unchanged();
        }
        result
    }
}

impl Guild {
    async fn handle_inner(&mut self, msg: GuildMsg, ctx: &mut Ctx) -> Result<GuildReply, GameError> {
        let now = ctx.now_ms();
        let rt = ctx.runtime().clone();
        if self.founded && !self.disbanded && !matches!(msg, GuildMsg::Tick) && self.expire_help(ctx) {
            self.push_directory(ctx, true);
        }
        match msg {
            GuildMsg::Found { founder, name, tag, language, open, description } => {
                if self.founded {
                    ctx.unchanged();
                    return if self.founder == founder && !self.disbanded {
                        Ok(GuildReply::View(self.view(&founder, now)))
                    } else {
                        Err(GameError::GuildNotFound(self.id.clone()))
                    };
                }
                self.check_not_elsewhere(&rt, &founder).await?;
                // Claim the founder first: founding and joining elsewhere at
                // the same moment cannot both succeed.
                self.claim(&rt, &founder).await?;
                let fee = Change { gold: -(GUILD_CREATE_COST as i64), kind: ChangeKind::Burn, ..Change::default() };
                if let Err(e) = apply(&rt, &founder, format!("guild/{}/create", self.id), fee, false, None).await {
                    let _ = call_player(&rt, &founder, PlayerMsg::ReleaseGuild { guild: self.id.clone() }).await;
                    return Err(e.into());
                }
                *self = Guild {
                    id: self.id.clone(),
                    founded: true,
                    founder: founder.clone(),
                    name,
                    tag,
                    description,
                    language,
                    open,
                    capacity: GUILD_CAPACITY,
                    created_at_ms: now,
                    activity_week: week_of(now),
                    ..Guild::default()
                };
                self.add_member(&founder, GuildRole::Leader, now);
                self.sync_player(&rt, &founder, Some(self.id.clone())).await;
                self.publish(
                    ctx,
                    GuildEvent::MemberJoined {
                        guild_id: self.id.clone(),
                        player_id: founder.clone(),
                        role: GuildRole::Leader,
                    },
                );
                self.push_directory(ctx, true);
                ctx.durable();
                Ok(GuildReply::View(self.view(&founder, now)))
            }
            GuildMsg::Get { viewer } => {
                self.live()?;
                Ok(GuildReply::View(self.view(&viewer, now)))
            }
            GuildMsg::Join { player } => {
                self.live()?;
                if self.member(&player).is_some() {
                    return Ok(GuildReply::Joined { joined: true, view: self.view(&player, now) });
                }
                self.check_can_enter(&rt, &player).await?;
                if !self.open {
                    if !self.join_requests.iter().any(|(p, _)| *p == player) {
                        self.join_requests.push((player.clone(), now));
                        if self.join_requests.len() > MAX_JOIN_REQUESTS {
                            self.join_requests.remove(0);
                        }
                        self.publish(
                            ctx,
                            GuildEvent::JoinRequested { guild_id: self.id.clone(), player_id: player.clone() },
                        );
                    }
                    return Ok(GuildReply::Joined { joined: false, view: self.view(&player, now) });
                }
                self.admit(ctx, &player).await?;
                ctx.durable();
                Ok(GuildReply::Joined { joined: true, view: self.view(&player, now) })
            }
            GuildMsg::DecideJoin { officer, player, approve } => {
                self.live()?;
                if self.role_of(&officer)? < GuildRole::Officer {
                    return Err(GameError::NoGuildPermission(
                        "only officers and the leader decide join requests".into(),
                    ));
                }
                if !self.join_requests.iter().any(|(p, _)| *p == player) {
                    return Err(GameError::JoinRequestNotFound(player));
                }
                if approve {
                    match self.check_can_enter(&rt, &player).await {
                        Ok(()) => {}
                        Err(e @ GameError::AlreadyInGuild(_)) => {
                            self.join_requests.retain(|(p, _)| *p != player);
                            return Err(e);
                        }
                        Err(e) => return Err(e),
                    }
                    if let Err(e) = self.admit(ctx, &player).await {
                        if matches!(e, StepError::Refused(GameError::AlreadyInGuild(_))) {
                            self.join_requests.retain(|(p, _)| *p != player);
                            ctx.durable();
                        }
                        return Err(e.into());
                    }
                    ctx.durable();
                } else {
                    self.join_requests.retain(|(p, _)| *p != player);
                    let text = format!("Your request to join {} [{}] was declined", self.name, self.tag);
                    ctx.publish(&player_topic(&player), GameEvent::Notice { text }.encode());
                }
                Ok(GuildReply::View(self.view(&officer, now)))
            }
            GuildMsg::Leave { player } => {
                self.live()?;
                if self.member(&player).is_none() {
                    // Heal a player whose record still names this guild.
                    let p = player_view(&rt, &player).await?;
                    if p.guild.as_deref() == Some(self.id.as_str()) {
                        self.sync_player(&rt, &player, None).await;
                        return Ok(GuildReply::Left { new_leader: None, disbanded: false });
                    }
                    return Err(GameError::NotGuildMember(player));
                }
                let (new_leader, disbanded) = self.remove_member(ctx, &player, None).await;
                ctx.durable();
                Ok(GuildReply::Left { new_leader, disbanded })
            }
            GuildMsg::Kick { by, player } => {
                self.live()?;
                let by_role = self.role_of(&by)?;
                let target = self.role_of(&player)?;
                if by == player {
                    return Err(GameError::NoGuildPermission("leave the guild instead of kicking yourself".into()));
                }
                let allowed = match by_role {
                    GuildRole::Leader => true,
                    GuildRole::Officer => target == GuildRole::Member,
                    GuildRole::Member => false,
                };
                if !allowed {
                    return Err(GameError::NoGuildPermission(
                        "officers kick members; only the leader kicks officers".into(),
                    ));
                }
                self.remove_member(ctx, &player, Some(by)).await;
                ctx.durable();
                Ok(GuildReply::View(self.view(&player, now)))
            }
            GuildMsg::Promote { by, player } => self.set_role(ctx, by, player, true),
            GuildMsg::Demote { by, player } => self.set_role(ctx, by, player, false),
            GuildMsg::PostChat { player, text } => {
                self.live()?;
                self.role_of(&player)?;
                let len = text.chars().count();
                if len > CHAT_MAX_CHARS {
                    return Err(GameError::ChatTooLong { len, max: CHAT_MAX_CHARS });
                }
                if text.trim().is_empty() {
                    return Err(GameError::InvalidGuildInput("a chat message is not empty".into()));
                }
                self.take_chat_slot(&player, now)?;
                let message = ChatMessage { id: self.next(), player_id: player, text, at_ms: now };
                self.chat.insert(message.id, message.clone());
                while self.chat.len() > CHAT_HISTORY {
                    self.chat.pop_first();
                }
                self.bump_activity(1, now);
                self.publish(ctx, GuildEvent::Chat { guild_id: self.id.clone(), message: message.clone() });
                self.push_directory(ctx, false);
                Ok(GuildReply::Chat(message))
            }
            GuildMsg::ChatHistory { player, limit } => {
                self.live()?;
                self.role_of(&player)?;
                ctx.unchanged();
                let limit = if limit == 0 { CHAT_HISTORY } else { limit.min(CHAT_HISTORY) };
                let skip = self.chat.len().saturating_sub(limit);
                Ok(GuildReply::History(self.chat.values().skip(skip).cloned().collect()))
            }
            GuildMsg::AskHelp { player, kind, count } => {
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
            GuildMsg::PrepareDonation { donor, requester, count } => {
                self.live()?;
                self.role_of(&donor)?;
                if donor == requester {
                    return Err(GameError::CannotDonateToSelf);
                }
                let h = self.help_of(&requester).ok_or(GameError::HelpRequestClosed)?;
                let remaining = h.wanted.saturating_sub(h.received + h.pledged);
                if remaining == 0 {
                    return Err(GameError::HelpRequestClosed);
                }
                if count == 0 {
                    return Err(GameError::InvalidGuildInput("donate at least one card".into()));
                }
                let count = count.min(remaining);
                let (kind, request_id) = (h.kind, h.id);
                // Refuse early what the donor cannot give: no intent for it.
                let have = player_view(&rt, &donor).await?.cards.iter().find(|c| c.kind == kind).map_or(0, |c| c.count);
                if have < count {
                    return Err(GameError::NotEnoughCards { kind, need: count, have });
                }
                let rarity = card_def(kind).map_or(Rarity::Common, |c| c.rarity);
                let n = self.next();
                let d = Donation {
                    n,
                    request_id,
                    donor,
                    requester: requester.clone(),
                    kind,
                    count,
                    reward_gold: donation_reward_gold(rarity) * count as u64,
                    step: DonationStep::Take,
                    created_at_ms: now,
                    retry_at_ms: now + STEP_RETRY_MS,
                };
                self.pending.insert(n, d);
                if let Some(h) = self.help.get_mut(&request_id) {
                    h.pledged += count;
                }
                self.push_directory(ctx, true);
                // The intent is on disk before any card moves.
                ctx.durable();
                Ok(GuildReply::Prepared { n })
            }
            GuildMsg::ContinueDonation { n } => {
                let outcome = self.run_donation(ctx, n, false).await;
                if self.pending.is_empty() {
                    self.push_directory(ctx, true);
                }
                ctx.durable();
                outcome.map(GuildReply::Donated)
            }
            GuildMsg::Tick => {
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
                        ctx.runtime().spawn_cast::<GuildDirectory>(
                            DIRECTORY_KEY,
                            DirectoryMsg::Remove { guild_id: self.id.clone() },
                        );
                    }
                } else {
                    self.push_directory(ctx, true);
                }
                ctx.durable();
                Ok(GuildReply::Done)
            }
        }
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

/// Founds the guild of reservation `r` and tells the directory the outcome.
/// Shared by the create request and the tick's clean-up of old reservations.
pub async fn found(rt: &Runtime, r: Reservation) -> Result<GuildView, GameError> {
    let msg = GuildMsg::Found {
        founder: r.founder.clone(),
        name: r.name,
        tag: r.tag,
        language: r.language,
        open: r.open,
        description: r.description,
    };
    let outcome = match rt.call::<Guild>(&r.guild_id, msg).await {
        Ok(Ok(GuildReply::View(v))) => Ok(v),
        Ok(Ok(other)) => Err(GameError::GuildRetryLater(format!("unexpected reply {other:?}"))),
        Ok(Err(GameError::GuildRetryLater(why))) => return Err(GameError::GuildRetryLater(why)),
        Ok(Err(e)) => Err(e),
        Err(e) => return Err(GameError::GuildRetryLater(e.to_string())),
    };
    let (founder, guild_id) = (r.founder, r.guild_id);
    let msg = match &outcome {
        Ok(_) => DirectoryMsg::Confirm { founder, guild_id },
        Err(_) => DirectoryMsg::Release { founder, guild_id },
    };
    // Lost only by a crash; the next tick's clean-up repeats it.
    let _ = rt.call::<GuildDirectory>(DIRECTORY_KEY, msg).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_600_000;

    fn guild_with(members: &[(&str, GuildRole)]) -> Guild {
        let mut g = Guild { id: "g1".into(), founded: true, capacity: GUILD_CAPACITY, ..Guild::default() };
        for (p, role) in members {
            g.add_member(p, *role, T0);
        }
        g
    }

    #[test]
    fn leadership_passes_to_the_longest_serving_officer_else_member() {
        use GuildRole::*;
        let g = guild_with(&[("lead", Leader), ("m1", Member), ("o1", Officer), ("o2", Officer)]);
        assert_eq!(g.successor().as_deref(), Some("o1"));
        let g = guild_with(&[("lead", Leader), ("m1", Member), ("m2", Member)]);
        assert_eq!(g.successor().as_deref(), Some("m1"));
        let g = guild_with(&[("lead", Leader)]);
        assert_eq!(g.successor(), None);
    }

    #[test]
    fn chat_rate_limit_follows_the_clock() {
        let mut g = guild_with(&[("a", GuildRole::Leader)]);
        for i in 0..CHAT_RATE_MAX as u64 {
            g.take_chat_slot("a", T0 + i).unwrap();
        }
        assert_eq!(
            g.take_chat_slot("a", T0 + 100),
            Err(GameError::ChatRateLimited {
                max: CHAT_RATE_MAX,
                window_ms: CHAT_RATE_WINDOW_MS,
                retry_at_ms: T0 + CHAT_RATE_WINDOW_MS
            })
        );
        assert!(g.take_chat_slot("b", T0 + 100).is_ok(), "per player");
        assert!(g.take_chat_slot("a", T0 + CHAT_RATE_WINDOW_MS - 1).is_err());
        assert!(g.take_chat_slot("a", T0 + CHAT_RATE_WINDOW_MS).is_ok(), "the oldest post left the window");
    }

    #[test]
    fn help_requests_respect_rarity_limits_and_the_cooldown() {
        let mut g = guild_with(&[("a", GuildRole::Leader)]);
        assert_eq!(g.check_help("a", 0, 50, T0), Ok(10), "commons: at most 10");
        assert_eq!(g.check_help("a", 0, 0, T0), Ok(10), "0 asks for the most");
        assert_eq!(g.check_help("a", 8, 10, T0), Ok(4), "rares: at most 4");
        assert_eq!(g.check_help("a", 15, 1, T0), Err(GameError::CardNotRequestable(15)));
        assert_eq!(g.check_help("a", 99, 1, T0), Err(GameError::UnknownCard(99)));
        g.help_asked_at.insert("a".into(), T0);
        assert_eq!(
            g.check_help("a", 0, 1, T0 + HELP_COOLDOWN_MS - 1),
            Err(GameError::HelpCooldown { ready_at_ms: T0 + HELP_COOLDOWN_MS })
        );
        assert_eq!(g.check_help("a", 0, 1, T0 + HELP_COOLDOWN_MS), Ok(1));
    }

    #[test]
    fn members_and_help_are_parts_and_an_old_inline_snapshot_moves_into_them() {
        let mut g = guild_with(&[("lead", GuildRole::Leader), ("m1", GuildRole::Member)]);
        g.chat_times.insert("lead".into(), VecDeque::from([T0]));
        let snapshot = serde_json::to_value(&g).unwrap();
        for gone in ["members", "member_parts", "help", "help_parts", "chat_times"] {
            assert!(snapshot.get(gone).is_none(), "{gone} is not in the snapshot: {snapshot}");
        }
        let mut out = Vec::new();
        g.members.take_changes("m/", &mut out);
        assert_eq!(out.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["m/1", "m/2"]);

        // A snapshot from before the parts: members inline, help by requester.
        let mut old = snapshot;
        old["members"] = serde_json::json!([
            {"player_id": "lead", "role": "Leader", "joined_at_ms": T0, "joined_seq": 1},
            {"player_id": "m1", "role": "Member", "joined_at_ms": T0, "joined_seq": 2}
        ]);
        old["help"] = serde_json::json!({"m1": {
            "id": 9, "requester": "m1", "kind": 0, "wanted": 3, "received": 1, "pledged": 0,
            "opened_at_ms": T0, "expires_at_ms": T0 + HELP_LIFETIME_MS, "donors": [["lead", 1]]
        }});
        let mut back: Guild = serde_json::from_value(old).unwrap();
        back.load_parts(Vec::new()).unwrap();
        assert_eq!(back.successor().as_deref(), Some("m1"));
        assert_eq!(back.help_of("m1").map(|h| (h.id, h.received)), Some((9, 1)));
        let mut out = Vec::new();
        back.take_part_changes().into_iter().for_each(|(n, _)| out.push(n));
        assert_eq!(out, ["m/1", "m/2", "h/9"], "the next write stores them as parts");
    }

    #[test]
    fn weekly_activity_resets_and_wakeups_follow_pending_work() {
        let mut g = guild_with(&[("a", GuildRole::Leader)]);
        g.bump_activity(3, T0);
        assert_eq!(g.summary(T0).activity, 3);
        assert_eq!(g.summary(T0 + WEEK_MS).activity, 0, "a new week");
        g.bump_activity(1, T0 + WEEK_MS);
        assert_eq!(g.summary(T0 + WEEK_MS).activity, 1);
        assert_eq!(g.next_wake(T0), None);
        g.help.insert(
            1,
            HelpRequest {
                id: 1,
                requester: "a".into(),
                kind: 0,
                wanted: 3,
                received: 0,
                pledged: 0,
                opened_at_ms: T0,
                expires_at_ms: T0 + HELP_LIFETIME_MS,
                donors: vec![],
            },
        );
        assert_eq!(g.next_wake(T0), Some(T0 + HELP_LIFETIME_MS));
        g.pending.insert(
            7,
            Donation {
                n: 7,
                request_id: 1,
                donor: "b".into(),
                requester: "a".into(),
                kind: 0,
                count: 2,
                reward_gold: 20,
                step: DonationStep::Give,
                created_at_ms: T0,
                retry_at_ms: T0 + STEP_RETRY_MS,
            },
        );
        assert_eq!(g.next_wake(T0), Some(T0 + STEP_RETRY_MS));
        assert_eq!(g.escrow(), BTreeMap::from([(0, 2)]), "cards between take and give are in escrow");
    }
}
