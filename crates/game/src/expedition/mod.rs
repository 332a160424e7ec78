//! Weekly guild-versus-guild expeditions.
//!
//! One hub entity (`expedition/season`) runs the cycle. Guilds sign up for
//! the current period and are grouped into brackets of up to eight in
//! sign-up order. Members' battles add points to their guild (the player
//! casts them here; players never wait on a hub). Standings are pushed to the
//! guilds of a bracket at most once per tick. When the period ends, the hub
//! writes a payout plan (who gets what, by rank) durably, starts the next
//! period at once, and pays the plan a few players per tick with
//! deterministic transaction ids (`expedition/{period}/{player}`): a restart
//! in the middle of paying resumes the plan, and a payment repeated because
//! its "paid" mark was not yet written is a no-op at the player. Rewards go
//! to every member who scored for the guild in that period.

mod error;
pub mod ops;

pub use error::ExpeditionError;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use guildhall_entity::{Ctx, Entity};
use serde::{Deserialize, Serialize};

use crate::parts::PartMap;
use crate::tx::{self, StepError, TxStep};
use crate::{guild_topic, Change, ChangeKind, GameError, GameEvent};

/// Key of the one expedition hub.
pub const SEASON: &str = "season";
/// Default period: one week.
pub const DEFAULT_PERIOD_MS: u64 = 7 * 24 * 3600 * 1000;
/// Guilds per bracket.
pub const BRACKET_SIZE: usize = 8;
/// Payments per tick: bounds how long one tick holds the hub.
pub const DEFAULT_PAYOUTS_PER_TICK: usize = 200;
/// How often the hub's timer fires (period ends, payouts, standings).
pub const TICK_EVERY_MS: u64 = 1_000;
/// Live standings are pushed at most this often. Every battle moves a
/// bracket, so pushing each second would send every member of every active
/// guild a push a second; the final standings still go out at once.
///
/// Each bracket has its own second of the 30 (bracket `b` pushes in the
/// seconds `s` with `s % 30 == b % 30`): pushed all at once, the standings
/// of every bracket reached every member of every signed-up guild in the
/// same tick, a burst that grew with the sign-ups (16,600 pushes and a
/// 175-ms stall of the server every 30 s at 19,500 players,
/// docs/bench-log/scaling-rounds.md, "Long runs").
pub const STANDINGS_PUSH_MS: u64 = 30_000;

/// The seconds of one round of standings pushes: each bracket has one.
const STANDINGS_SLOTS: u64 = STANDINGS_PUSH_MS / 1000;

/// The bracket of sign-up number `n`.
fn bracket_of(n: u64) -> u32 {
    (n / BRACKET_SIZE as u64) as u32
}

/// Gems per scoring member, by rank in the bracket (1st, 2nd, ...).
pub fn reward_for_rank(rank: u32) -> u64 {
    match rank {
        1 => 100,
        2 => 60,
        3 => 40,
        _ => 20,
    }
}

/// A signed-up guild. Its sign-up number (the part's key) gives its bracket:
/// brackets fill in sign-up order, so sign-up `n` is in bracket `n / 8`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Empty in an old snapshot's inline map, which keyed entries by guild.
    #[serde(default)]
    pub guild: String,
    pub points: u64,
    /// Points per member, for the payout (who scored).
    pub members: BTreeMap<String, u64>,
}

/// One guild's place in its bracket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub guild: String,
    pub points: u64,
    pub rank: u32,
}

/// One payment of a finished period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub player: String,
    pub guild: String,
    pub rank: u32,
    pub gems: u64,
    pub paid: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Expedition {
    /// Period number, from 1.
    pub period: u64,
    pub started_at_ms: u64,
    pub period_ms: u64,
    pub payouts_per_tick: usize,
    /// Signed-up guilds of the current period by sign-up number: in parts
    /// `g/{n}`. Inline, every guild's first sign-up (a durable write) wrote
    /// every entry with every scorer's points: 430-590 KB at 19,500 players,
    /// 0.1-0.5 MB/s of the store's writes while guilds were founded
    /// (docs/bench-log/scaling-rounds.md, "Long runs"). As parts, it writes one entry.
    #[serde(default, skip_serializing, rename = "entry_parts")]
    pub entries: PartMap<Entry>,
    /// Sign-up number by guild; rebuilt from `entries` on load.
    #[serde(skip)]
    index: HashMap<String, u64>,
    /// Old snapshots' inline entries and brackets, moved into `entries` on
    /// load.
    #[serde(default, skip_serializing, rename = "guilds")]
    old_guilds: BTreeMap<String, Entry>,
    #[serde(default, skip_serializing, rename = "brackets")]
    old_brackets: Vec<Vec<String>>,
    /// Brackets whose standings changed since the last push.
    pub changed: BTreeSet<u32>,
    /// Payout plans of ended periods not yet fully paid, by period.
    pub payouts: BTreeMap<u64, Vec<Payment>>,
    /// Final standings of the last ended period, per bracket.
    pub last_results: Vec<Vec<Standing>>,
    /// Gems paid out over all periods (for audits).
    pub gems_paid: u64,
    /// The last second (clock time / 1000) whose brackets' standings were
    /// pushed; 0: none yet.
    #[serde(default)]
    pub standings_second: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ExpeditionMsg {
    /// From the server at start: the period length and payout pace.
    Configure { period_ms: u64, payouts_per_tick: usize },
    /// Sign a guild up for the current period.
    SignUp { guild: String },
    /// A member's battle earned points for its guild.
    AddPoints { guild: String, player: String, points: u32 },
    /// The status of the current period as seen by a guild.
    Status { guild: Option<String> },
    /// Periodic work: end the period, pay, push standings.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpeditionStatus {
    pub period: u64,
    pub ends_at_ms: u64,
    pub signed_up: bool,
    /// The guild's bracket standings (empty when not signed up).
    pub standings: Vec<Standing>,
    /// Final standings of the guild's bracket in the last ended period.
    pub last_results: Vec<Standing>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpeditionReply {
    Done,
    SignedUp { period: u64, bracket: u32 },
    Status(ExpeditionStatus),
}

/// Events pushed to guild topics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpeditionEvent {
    Standings { period: u64, ends_at_ms: u64, standings: Vec<Standing> },
    Ended { period: u64, standings: Vec<Standing> },
}

impl Expedition {
    pub fn new(now_ms: u64) -> Self {
        Expedition {
            period: 1,
            started_at_ms: now_ms,
            period_ms: DEFAULT_PERIOD_MS,
            payouts_per_tick: DEFAULT_PAYOUTS_PER_TICK,
            entries: PartMap::default(),
            index: HashMap::new(),
            old_guilds: BTreeMap::new(),
            old_brackets: Vec::new(),
            changed: BTreeSet::new(),
            payouts: BTreeMap::new(),
            last_results: Vec::new(),
            gems_paid: 0,
            standings_second: 0,
        }
    }

    pub fn ends_at_ms(&self) -> u64 {
        self.started_at_ms + self.period_ms
    }

    /// Guilds signed up for the current period.
    pub fn signed_up(&self) -> usize {
        self.index.len()
    }

    /// Brackets of the current period (the last may not be full).
    pub fn bracket_count(&self) -> u32 {
        self.entries.last_key().map_or(0, |n| n / BRACKET_SIZE as u64 + 1) as u32
    }

    /// The guild's bracket, if it signed up for the current period.
    pub fn bracket_of(&self, guild: &str) -> Option<u32> {
        self.index.get(guild).map(|n| bracket_of(*n))
    }

    fn entry(&self, guild: &str) -> Option<&Entry> {
        self.index.get(guild).and_then(|n| self.entries.get(n))
    }

    /// Signs `guild` up; idempotent within a period.
    pub fn sign_up(&mut self, guild: &str) -> u32 {
        if let Some(bracket) = self.bracket_of(guild) {
            return bracket;
        }
        let n = self.entries.last_key().map_or(0, |n| n + 1);
        self.entries.insert(n, Entry { guild: guild.to_string(), ..Entry::default() });
        self.index.insert(guild.to_string(), n);
        self.changed.insert(bracket_of(n));
        bracket_of(n)
    }

    /// Adds a member's points; ignored for guilds not signed up.
    pub fn add_points(&mut self, guild: &str, player: &str, points: u32) -> bool {
        let Some(&n) = self.index.get(guild) else { return false };
        let Some(entry) = self.entries.get_mut(&n) else { return false };
        entry.points += points as u64;
        *entry.members.entry(player.to_string()).or_default() += points as u64;
        self.changed.insert(bracket_of(n));
        true
    }

    /// Standings of one bracket: most points first, ties by sign-up order.
    pub fn standings(&self, bracket: u32) -> Vec<Standing> {
        let first = bracket as u64 * BRACKET_SIZE as u64;
        let mut rows: Vec<(u64, &Entry)> =
            (first..first + BRACKET_SIZE as u64).filter_map(|n| Some((n, self.entries.get(&n)?))).collect();
        rows.sort_by(|a, b| b.1.points.cmp(&a.1.points).then(a.0.cmp(&b.0)));
        rows.into_iter()
            .enumerate()
            .map(|(i, (_, e))| Standing { guild: e.guild.clone(), points: e.points, rank: i as u32 + 1 })
            .collect()
    }

    /// Moves an old snapshot's inline entries into parts (all marked
    /// changed, so the next write stores them as parts) and rebuilds the
    /// index.
    fn after_load(&mut self) {
        let mut old = std::mem::take(&mut self.old_guilds);
        for (b, names) in std::mem::take(&mut self.old_brackets).into_iter().enumerate() {
            for (i, guild) in names.into_iter().enumerate() {
                let Some(entry) = old.remove(&guild) else { continue };
                let n = (b * BRACKET_SIZE + i) as u64;
                self.entries.insert(n, Entry { guild, ..entry });
            }
        }
        self.index = self.entries.iter().map(|(n, e)| (e.guild.clone(), *n)).collect();
    }

    /// Ends the current period if its time has come: writes the payout plan,
    /// keeps the final standings, starts the next period. Returns the final
    /// standings per bracket when it ended one.
    pub fn end_period_if_due(&mut self, now_ms: u64) -> Option<Vec<Vec<Standing>>> {
        if now_ms < self.ends_at_ms() {
            return None;
        }
        let results: Vec<Vec<Standing>> = (0..self.bracket_count()).map(|b| self.standings(b)).collect();
        let mut plan = Vec::new();
        for standing in results.iter().flatten() {
            let Some(entry) = self.entry(&standing.guild) else { continue };
            for (player, points) in &entry.members {
                if *points > 0 {
                    plan.push(Payment {
                        player: player.clone(),
                        guild: standing.guild.clone(),
                        rank: standing.rank,
                        gems: reward_for_rank(standing.rank),
                        paid: false,
                    });
                }
            }
        }
        if !plan.is_empty() {
            self.payouts.insert(self.period, plan);
        }
        self.last_results = results.clone();
        // The next period starts where this one ended (not at `now`), so
        // that periods stay aligned even when a tick comes late; a long
        // outage skips the periods that passed meanwhile.
        let elapsed = (now_ms - self.started_at_ms) / self.period_ms;
        self.started_at_ms += elapsed * self.period_ms;
        self.period += 1;
        self.entries.clear();
        self.index.clear();
        self.changed.clear();
        Some(results)
    }

    /// The next unpaid payments, at most `n`, with their transaction ids.
    pub fn next_payments(&self, n: usize) -> Vec<(u64, usize, String, Payment)> {
        let mut out = Vec::new();
        for (period, plan) in &self.payouts {
            for (i, p) in plan.iter().enumerate() {
                if out.len() >= n {
                    return out;
                }
                if !p.paid {
                    out.push((*period, i, format!("expedition/{period}/{}", p.player), p.clone()));
                }
            }
        }
        out
    }

    fn mark_paid(&mut self, period: u64, index: usize) {
        if let Some(plan) = self.payouts.get_mut(&period) {
            if let Some(p) = plan.get_mut(index) {
                if !p.paid {
                    p.paid = true;
                    self.gems_paid += p.gems;
                }
            }
            if plan.iter().all(|p| p.paid) {
                self.payouts.remove(&period);
            }
        }
    }

    fn status(&self, guild: Option<&str>) -> ExpeditionStatus {
        let bracket = guild.and_then(|g| self.bracket_of(g));
        let last_results = guild
            .and_then(|g| self.last_results.iter().find(|b| b.iter().any(|s| s.guild == g)))
            .cloned()
            .unwrap_or_default();
        ExpeditionStatus {
            period: self.period,
            ends_at_ms: self.ends_at_ms(),
            signed_up: bracket.is_some(),
            standings: bracket.map(|b| self.standings(b)).unwrap_or_default(),
            last_results,
        }
    }

    /// The changed brackets whose second came since the last push (all of
    /// them on the first tick, or after a whole round without ticks); they
    /// leave `changed`.
    fn standings_due(&mut self, now_ms: u64) -> Vec<u32> {
        let second = now_ms / 1000;
        let first = self.standings_second + 1;
        if second < first {
            return Vec::new();
        }
        let every = self.standings_second == 0 || second - first + 1 >= STANDINGS_SLOTS;
        self.standings_second = second;
        // Slots whose second came: one bit each (at most 30 seconds apart).
        let slots: u64 = if every { u64::MAX } else { (first..=second).fold(0, |m, s| m | 1 << (s % STANDINGS_SLOTS)) };
        let due: Vec<u32> =
            self.changed.iter().copied().filter(|b| slots & (1 << (*b as u64 % STANDINGS_SLOTS)) != 0).collect();
        for b in &due {
            self.changed.remove(b);
        }
        due
    }

    fn publish_bracket(&self, ctx: &Ctx, standings: &[Standing], event: ExpeditionEvent) {
        let payload = GameEvent::Expedition(event).encode();
        for s in standings {
            ctx.publish(&guild_topic(&s.guild), payload.clone());
        }
    }

    async fn tick(&mut self, ctx: &mut Ctx) {
        let now = ctx.now_ms();
        let ended_period = self.period;
        if let Some(results) = self.end_period_if_due(now) {
            // The plan is written when this handler returns; payments start
            // on the next tick, so none goes out before the plan is on disk.
            ctx.durable();
            for standings in &results {
                let event = ExpeditionEvent::Ended { period: ended_period, standings: standings.clone() };
                self.publish_bracket(ctx, standings, event);
            }
            return;
        }
        let mut paid_any = false;
        for (period, index, tx, p) in self.next_payments(self.payouts_per_tick) {
            let change = Change { gems: p.gems as i64, kind: ChangeKind::Reward, ..Change::default() };
            let notice = Some(format!("Expedition {period}: your guild ranked #{}, +{} gems", p.rank, p.gems));
            match tx::apply(ctx.runtime(), &p.player, TxStep::new(tx, change).notice(notice)).await {
                Ok(_) => {
                    self.mark_paid(period, index);
                    paid_any = true;
                }
                // A reward cannot be refused by the rules; were it ever,
                // sending it again would not change that.
                Err(StepError::Refused(e)) => {
                    tracing::error!(player = %p.player, error = %e, "expedition payment refused");
                    self.mark_paid(period, index);
                    paid_any = true;
                }
                // Not paid, or not known to be: stays in the plan, sent
                // again with the same id next tick.
                Err(StepError::Unknown(why)) => tracing::warn!(player = %p.player, why, "expedition payment deferred"),
            }
        }
        if paid_any {
            // A crash before this write repeats these payments with the same
            // transaction ids: the players apply them once.
            ctx.durable();
        }
        for bracket in self.standings_due(now) {
            let standings = self.standings(bracket);
            let event = ExpeditionEvent::Standings {
                period: self.period,
                ends_at_ms: self.ends_at_ms(),
                standings: standings.clone(),
            };
            self.publish_bracket(ctx, &standings, event);
        }
    }
}

impl Entity for Expedition {
    const KIND: &'static str = "expedition";
    /// The hub's live points change with every battle of every guild, and
    /// its entries grow with everyone who scored (430 KB for 19,500
    /// players, inline then): written each flush interval, they became a
    /// third of the store's write volume (docs/bench-log/scaling-rounds.md, "Long runs"); as
    /// parts, every entry still changes between two writes. Points are not
    /// value: a crash loses at most this much of a week's standings, while
    /// the payout plan and payments are durable writes of their own.
    const WRITE_BEHIND_MS: u64 = 30_000;
    type Msg = ExpeditionMsg;
    type Reply = Result<ExpeditionReply, GameError>;

    fn create(_key: &str, now_ms: u64) -> Self {
        Expedition::new(now_ms)
    }

    const HAS_PARTS: bool = true;

    fn take_part_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        self.entries.take_changes("g/", &mut out);
        out
    }

    fn load_parts(&mut self, parts: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        for (name, value) in parts {
            if !self.entries.load("g/", &name, &value)? {
                return Err(format!("unknown part {name:?}"));
            }
        }
        self.after_load();
        Ok(())
    }

    fn state_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("entries".into(), self.entries.to_json());
        }
        v
    }

    fn timer_msg() -> Option<ExpeditionMsg> {
        Some(ExpeditionMsg::Tick)
    }

    async fn handle(&mut self, msg: ExpeditionMsg, ctx: &mut Ctx) -> Self::Reply {
        let reply = self.handle_msg(msg, ctx).await;
        // The hub's clock runs where the hub is hosted: it ends periods,
        // pays rewards and pushes standings on its own timer.
        if ctx.timer().is_none() {
            ctx.set_timer(ctx.now_ms() + TICK_EVERY_MS);
        }
        reply
    }
}

impl Expedition {
    async fn handle_msg(&mut self, msg: ExpeditionMsg, ctx: &mut Ctx) -> Result<ExpeditionReply, GameError> {
        match msg {
            ExpeditionMsg::Configure { period_ms, payouts_per_tick } => {
                if self.period_ms == period_ms.max(1) && self.payouts_per_tick == payouts_per_tick.max(1) {
                    ctx.unchanged();
                } else {
                    self.period_ms = period_ms.max(1);
                    self.payouts_per_tick = payouts_per_tick.max(1);
                }
                Ok(ExpeditionReply::Done)
            }
            ExpeditionMsg::SignUp { guild } => {
                if let Some(bracket) = self.bracket_of(&guild) {
                    // Signed up already, and durably: that first call waited
                    // for its write. A repeat writing the whole hub again
                    // (430 KB at 19,500 players) was most of the hub's writes.
                    ctx.unchanged();
                    return Ok(ExpeditionReply::SignedUp { period: self.period, bracket });
                }
                let bracket = self.sign_up(&guild);
                ctx.durable();
                Ok(ExpeditionReply::SignedUp { period: self.period, bracket })
            }
            ExpeditionMsg::AddPoints { guild, player, points } => {
                if !self.add_points(&guild, &player, points) {
                    ctx.unchanged();
                }
                Ok(ExpeditionReply::Done)
            }
            ExpeditionMsg::Status { guild } => {
                ctx.unchanged();
                Ok(ExpeditionReply::Status(self.status(guild.as_deref())))
            }
            ExpeditionMsg::Tick => {
                let before = (self.period, self.changed.len(), self.payouts.len());
                self.tick(ctx).await;
                if before == (self.period, 0, 0) {
                    ctx.unchanged();
                }
                Ok(ExpeditionReply::Done)
            }
        }
    }
}

#[cfg(test)]
mod tests;
