//! What a guild is made of, as data: members and roles, chat messages,
//! help requests, donations in flight, and the guild as listed and shown.

use serde::{Deserialize, Serialize};

use crate::player::PlayerView;

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

/// What a founder chooses for a new guild.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildInput {
    pub name: String,
    pub tag: String,
    pub language: String,
    pub open: bool,
    pub description: String,
}
