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

use std::collections::{BTreeMap, BTreeSet};

use guildhall_entity::{Ctx, Entity};
use serde::{Deserialize, Serialize};

use crate::{guild_topic, Change, ChangeKind, GameError, GameEvent, Player, PlayerMsg};

/// Key of the one expedition hub.
pub const SEASON: &str = "season";
/// Default period: one week.
pub const DEFAULT_PERIOD_MS: u64 = 7 * 24 * 3600 * 1000;
/// Guilds per bracket.
pub const BRACKET_SIZE: usize = 8;
/// Payments per tick: bounds how long one tick holds the hub.
pub const DEFAULT_PAYOUTS_PER_TICK: usize = 200;
/// Live standings are pushed at most this often. Every battle moves a
/// bracket, so pushing each second would send every member of every active
/// guild a push a second; the final standings still go out at once.
pub const STANDINGS_PUSH_MS: u64 = 30_000;

/// Gems per scoring member, by rank in the bracket (1st, 2nd, ...).
pub fn reward_for_rank(rank: u32) -> u64 {
    match rank {
        1 => 100,
        2 => 60,
        3 => 40,
        _ => 20,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub bracket: u32,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expedition {
    /// Period number, from 1.
    pub period: u64,
    pub started_at_ms: u64,
    pub period_ms: u64,
    pub payouts_per_tick: usize,
    /// Signed-up guilds of the current period.
    pub guilds: BTreeMap<String, Entry>,
    /// Sign-up order per bracket.
    pub brackets: Vec<Vec<String>>,
    /// Brackets whose standings changed since the last push.
    pub changed: BTreeSet<u32>,
    /// Payout plans of ended periods not yet fully paid, by period.
    pub payouts: BTreeMap<u64, Vec<Payment>>,
    /// Final standings of the last ended period, per bracket.
    pub last_results: Vec<Vec<Standing>>,
    /// Gems paid out over all periods (for audits).
    pub gems_paid: u64,
    /// Clock time of the last live standings push.
    #[serde(default)]
    pub standings_pushed_at_ms: u64,
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
            guilds: BTreeMap::new(),
            brackets: Vec::new(),
            changed: BTreeSet::new(),
            payouts: BTreeMap::new(),
            last_results: Vec::new(),
            gems_paid: 0,
            standings_pushed_at_ms: 0,
        }
    }

    pub fn ends_at_ms(&self) -> u64 {
        self.started_at_ms + self.period_ms
    }

    /// Signs `guild` up; idempotent within a period.
    pub fn sign_up(&mut self, guild: &str) -> u32 {
        if let Some(e) = self.guilds.get(guild) {
            return e.bracket;
        }
        if self.brackets.last().is_none_or(|b| b.len() >= BRACKET_SIZE) {
            self.brackets.push(Vec::new());
        }
        let bracket = (self.brackets.len() - 1) as u32;
        self.brackets[bracket as usize].push(guild.to_string());
        self.guilds.insert(guild.to_string(), Entry { bracket, ..Entry::default() });
        self.changed.insert(bracket);
        bracket
    }

    /// Adds a member's points; ignored for guilds not signed up.
    pub fn add_points(&mut self, guild: &str, player: &str, points: u32) -> bool {
        let Some(entry) = self.guilds.get_mut(guild) else { return false };
        entry.points += points as u64;
        *entry.members.entry(player.to_string()).or_default() += points as u64;
        self.changed.insert(entry.bracket);
        true
    }

    /// Standings of one bracket: most points first, ties by sign-up order.
    pub fn standings(&self, bracket: u32) -> Vec<Standing> {
        let Some(order) = self.brackets.get(bracket as usize) else { return Vec::new() };
        let mut rows: Vec<(usize, &String, u64)> =
            order.iter().enumerate().map(|(i, g)| (i, g, self.guilds.get(g).map_or(0, |e| e.points))).collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        rows.into_iter()
            .enumerate()
            .map(|(i, (_, g, points))| Standing { guild: g.clone(), points, rank: i as u32 + 1 })
            .collect()
    }

    /// Ends the current period if its time has come: writes the payout plan,
    /// keeps the final standings, starts the next period. Returns the final
    /// standings per bracket when it ended one.
    pub fn end_period_if_due(&mut self, now_ms: u64) -> Option<Vec<Vec<Standing>>> {
        if now_ms < self.ends_at_ms() {
            return None;
        }
        let results: Vec<Vec<Standing>> = (0..self.brackets.len() as u32).map(|b| self.standings(b)).collect();
        let mut plan = Vec::new();
        for standing in results.iter().flatten() {
            let entry = &self.guilds[&standing.guild];
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
        self.guilds.clear();
        self.brackets.clear();
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
        let entry = guild.and_then(|g| self.guilds.get(g));
        let last_results = guild
            .and_then(|g| self.last_results.iter().find(|b| b.iter().any(|s| s.guild == g)))
            .cloned()
            .unwrap_or_default();
        ExpeditionStatus {
            period: self.period,
            ends_at_ms: self.ends_at_ms(),
            signed_up: entry.is_some(),
            standings: entry.map(|e| self.standings(e.bracket)).unwrap_or_default(),
            last_results,
        }
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
            let msg = PlayerMsg::Apply { tx, change, notify: true, notice };
            match ctx.runtime().call::<Player>(&p.player, msg).await {
                Ok(_) => {
                    self.mark_paid(period, index);
                    paid_any = true;
                }
                // Not paid: stays in the plan, retried next tick.
                Err(e) => tracing::warn!(player = %p.player, error = %e, "expedition payment deferred"),
            }
        }
        if paid_any {
            // A crash before this write repeats these payments with the same
            // transaction ids: the players apply them once.
            ctx.durable();
        }
        if self.standings_pushed_at_ms != 0 && now.saturating_sub(self.standings_pushed_at_ms) < STANDINGS_PUSH_MS {
            return;
        }
        if !self.changed.is_empty() {
            self.standings_pushed_at_ms = now.max(1);
        }
        let changed = std::mem::take(&mut self.changed);
        for bracket in changed {
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
    /// its snapshot grows with everyone who scored (430 KB for 19,500
    /// players): written each flush interval, it became a third of the
    /// store's write volume (BENCHMARKS.md, "Long runs"). Points are not
    /// value: a crash loses at most this much of a week's standings, while
    /// the payout plan and payments are durable writes of their own.
    const WRITE_BEHIND_MS: u64 = 30_000;
    type Msg = ExpeditionMsg;
    type Reply = Result<ExpeditionReply, GameError>;

    fn create(_key: &str, now_ms: u64) -> Self {
        Expedition::new(now_ms)
    }

    async fn handle(&mut self, msg: ExpeditionMsg, ctx: &mut Ctx) -> Self::Reply {
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
                if let Some(e) = self.guilds.get(&guild) {
                    // Signed up already, and durably: that first call waited
                    // for its write. A repeat writing the whole hub again
                    // (430 KB at 19,500 players) was most of the hub's writes.
                    ctx.unchanged();
                    return Ok(ExpeditionReply::SignedUp { period: self.period, bracket: e.bracket });
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
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_600_000;

    #[test]
    fn brackets_fill_up_to_eight_in_sign_up_order() {
        let mut e = Expedition::new(T0);
        for i in 0..17 {
            let b = e.sign_up(&format!("g{i}"));
            assert_eq!(b, i / 8);
        }
        assert_eq!(e.sign_up("g3"), 0, "signing up twice changes nothing");
        assert_eq!(e.brackets.iter().map(Vec::len).collect::<Vec<_>>(), vec![8, 8, 1]);
    }

    #[test]
    fn standings_rank_by_points_then_sign_up_order() {
        let mut e = Expedition::new(T0);
        for g in ["a", "b", "c"] {
            e.sign_up(g);
        }
        e.add_points("b", "p1", 10);
        e.add_points("c", "p2", 10);
        e.add_points("a", "p3", 3);
        assert!(!e.add_points("zzz", "p4", 100), "not signed up: ignored");
        let s = e.standings(0);
        assert_eq!(
            s.iter().map(|s| (s.guild.as_str(), s.points, s.rank)).collect::<Vec<_>>(),
            vec![("b", 10, 1), ("c", 10, 2), ("a", 3, 3)]
        );
    }

    #[test]
    fn the_period_ends_on_time_with_a_plan_and_the_next_begins() {
        let mut e = Expedition::new(T0);
        e.period_ms = 60_000;
        e.sign_up("a");
        e.sign_up("b");
        e.add_points("a", "p1", 10);
        e.add_points("a", "p2", 2);
        e.add_points("b", "p3", 5);
        assert!(e.end_period_if_due(T0 + 59_999).is_none());
        let results = e.end_period_if_due(T0 + 60_000 + 5).unwrap();
        assert_eq!(results[0][0].guild, "a");
        assert_eq!((e.period, e.started_at_ms), (2, T0 + 60_000), "aligned to the period, not the late tick");
        assert!(e.guilds.is_empty() && e.brackets.is_empty(), "sign-ups are per period");
        let pay: Vec<_> = e.next_payments(10).into_iter().map(|(_, _, tx, p)| (tx, p.gems)).collect();
        assert_eq!(
            pay,
            vec![
                ("expedition/1/p1".to_string(), reward_for_rank(1)),
                ("expedition/1/p2".to_string(), reward_for_rank(1)),
                ("expedition/1/p3".to_string(), reward_for_rank(2)),
            ]
        );
        e.mark_paid(1, 0);
        e.mark_paid(1, 0);
        assert_eq!(e.gems_paid, reward_for_rank(1), "marking twice pays once");
        assert_eq!(e.next_payments(10).len(), 2);
        e.mark_paid(1, 1);
        e.mark_paid(1, 2);
        assert!(e.payouts.is_empty());
        // A long outage skips whole periods.
        assert!(e.end_period_if_due(T0 + 60_000 * 5 + 1).is_some());
        assert_eq!((e.period, e.started_at_ms), (3, T0 + 60_000 * 5));
    }
}
