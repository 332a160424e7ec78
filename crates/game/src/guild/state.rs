//! The guild entity's state, how it is stored (parts), and what every
//! handler reads from it.

use std::collections::{BTreeMap, VecDeque};

use guildhall_entity::{Ctx, Entity};
use serde::{Deserialize, Serialize};

use super::chat_log::ChatLog;
use super::cooldown::{Cooldowns, OldCooldowns};
use super::model::*;
use super::msg::{GuildEvent, GuildMsg, GuildReply};
use super::rules::*;
use crate::parts::PartMap;
use crate::tx::StepError;
use crate::{guild_topic, GameError, GameEvent, GuildError};

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
    /// (docs/bench-log/scaling-rounds.md, "Long runs"); as parts, a step writes what it touched.
    #[serde(default, skip_serializing, rename = "member_parts")]
    pub members: PartMap<Member>,
    /// (player, requested at) of pending join requests, oldest first.
    pub join_requests: Vec<(String, u64)>,
    /// One counter for join order, chat ids, help ids and donation numbers.
    pub counter: u64,
    /// The chat: the last [`CHAT_HISTORY`] messages in a ring of cold parts
    /// `k/{slot}`, the last [`CHAT_HOT`] in memory (`chat_log.rs`).
    #[serde(default, rename = "chat_log")]
    pub chat: ChatLog,
    /// Chat stored by an older layout (hot parts `c/{id}`), moved into the
    /// ring on load (the renamed field is never in a snapshot).
    #[serde(default, skip_serializing, rename = "chat_parts")]
    pub(super) old_chat: PartMap<ChatMessage>,
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
    /// while the cooldown runs: in parts `a/{hash}` (`cooldown.rs`).
    #[serde(skip)]
    pub help_asked_at: Cooldowns,
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
    pub(super) old_members: Vec<Member>,
    #[serde(default, skip_serializing, rename = "help")]
    pub(super) old_help: BTreeMap<String, HelpRequest>,
    #[serde(default, skip_serializing, rename = "help_asked_at")]
    pub(super) old_help_asked_at: OldCooldowns,
}

impl Guild {
    pub(super) fn member(&self, player: &str) -> Option<&Member> {
        self.member_key(player).and_then(|k| self.members.get(&k))
    }

    /// The `joined_seq` (the part key) of member `player`.
    pub(super) fn member_key(&self, player: &str) -> Option<u64> {
        self.members.iter().find(|(_, m)| m.player_id == player).map(|(k, _)| *k)
    }

    pub(super) fn live(&self) -> Result<(), GameError> {
        if self.founded && !self.disbanded {
            Ok(())
        } else {
            Err(GuildError::GuildNotFound(self.id.clone()).into())
        }
    }

    pub(super) fn next(&mut self) -> u64 {
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

    pub(super) fn bump_activity(&mut self, by: u64, now_ms: u64) {
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

    pub(super) fn role_of(&self, player: &str) -> Result<GuildRole, GameError> {
        self.member(player).map(|m| m.role).ok_or_else(|| GuildError::NotGuildMember(player.to_string()).into())
    }

    pub(super) fn publish(&self, ctx: &Ctx, event: GuildEvent) {
        ctx.publish(&guild_topic(&self.id), GameEvent::Guild(event).encode());
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
    const READS_PARTS: bool = true;

    fn is_cold_part(name: &str) -> bool {
        ChatLog::is_part(name)
    }

    fn take_part_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        self.old_chat.take_changes("c/", &mut out);
        self.chat.take_changes(&mut out);
        self.outcomes.take_changes("o/", &mut out);
        self.members.take_changes("m/", &mut out);
        self.help.take_changes("h/", &mut out);
        self.help_asked_at.take_changes(&mut out);
        out
    }

    fn load_parts(&mut self, parts: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        for (name, value) in parts {
            let known = self.old_chat.load("c/", &name, &value)?
                || self.outcomes.load("o/", &name, &value)?
                || self.members.load("m/", &name, &value)?
                || self.help.load("h/", &name, &value)?
                || self.help_asked_at.load(&name, &value)?;
            if !known {
                return Err(format!("unknown part {name:?}"));
            }
        }
        if !self.old_chat.is_empty() {
            self.chat.migrate(self.old_chat.values().cloned());
            self.old_chat.clear();
        }
        for m in std::mem::take(&mut self.old_members) {
            self.members.insert(m.joined_seq, m);
        }
        for h in std::mem::take(&mut self.old_help).into_values() {
            self.help.insert(h.id, h);
        }
        for (player, at) in std::mem::take(&mut self.old_help_asked_at.0) {
            self.help_asked_at.insert(player, at);
        }
        Ok(())
    }

    fn state_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("members".into(), self.members.values().map(|m| serde_json::json!(m)).collect());
            obj.insert("help".into(), self.help.values().map(|h| serde_json::json!(h)).collect());
            obj.insert("chat_in_memory".into(), self.chat.recent().map(|m| serde_json::json!(m)).collect());
            let outcomes = self.outcomes.iter().map(|(n, o)| serde_json::json!([n, o])).collect();
            obj.insert("outcomes".into(), outcomes);
            obj.insert("help_asked_at".into(), self.help_asked_at.to_json());
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

/// A failed step on a player, as the guild's caller sees it: a refusal as
/// it is; an unknown outcome as "finishes later" (the guild's tick sends
/// the step again with the same id).
pub(super) fn step_refusal(e: StepError) -> GameError {
    match e {
        StepError::Refused(g) => g,
        StepError::Unknown(why) => GuildError::GuildRetryLater(why).into(),
    }
}
