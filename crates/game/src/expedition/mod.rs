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
///
/// Each bracket has its own second of the 30 (bracket `b` pushes in the
/// seconds `s` with `s % 30 == b % 30`): pushed all at once, the standings
/// of every bracket reached every member of every signed-up guild in the
/// same tick, a burst that grew with the sign-ups (16,600 pushes and a
/// 175-ms stall of the server every 30 s at 19,500 players, BENCHMARKS.md
/// "Long runs", rounds 44 and 45).
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
    /// (BENCHMARKS.md, "Long runs"). As parts, it writes one entry.
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
    /// third of the store's write volume (BENCHMARKS.md, "Long runs"); as
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
        assert_eq!((e.bracket_count(), e.signed_up()), (3, 17));
        assert_eq!(e.standings(2).len(), 1);
    }

    #[test]
    fn standings_pushes_spread_over_the_round_each_bracket_at_most_once_a_round() {
        let mut e = Expedition::new(T0);
        let brackets = 90u32;
        let changed_all = |e: &mut Expedition| e.changed.extend(0..brackets);
        changed_all(&mut e);
        // The first tick pushes whatever changed.
        assert_eq!(e.standings_due(T0).len(), brackets as usize);
        // Then a second at a time: every bracket changes every second, and
        // each second pushes only the brackets of its slot.
        let mut pushes = vec![0u32; brackets as usize];
        for s in 1..=60u64 {
            changed_all(&mut e);
            let due = e.standings_due(T0 + s * 1000);
            assert_eq!(due.len(), (brackets as u64 / STANDINGS_SLOTS) as usize, "second {s}: {due:?}");
            for b in due {
                assert_eq!(
                    (b as u64) % STANDINGS_SLOTS,
                    (T0 / 1000 + s) % STANDINGS_SLOTS,
                    "bracket {b} in its own second"
                );
                pushes[b as usize] += 1;
            }
        }
        assert!(pushes.iter().all(|&n| n == 2), "once a round, two rounds: {pushes:?}");
        // Within the same second, nothing more; a bracket that did not change
        // is not pushed in its second.
        assert!(e.standings_due(T0 + 60 * 1000 + 500).is_empty());
        e.changed.clear();
        e.changed.insert(5);
        let mut at = T0 + 60 * 1000;
        let mut seen = 0;
        for _ in 0..STANDINGS_SLOTS {
            at += 1000;
            seen += e.standings_due(at).len();
        }
        assert_eq!(seen, 1, "pushed once, in its second");
        // Ticks two seconds apart serve both seconds' brackets; after a
        // whole round without a tick, every changed bracket is due.
        changed_all(&mut e);
        assert_eq!(e.standings_due(at + 2000).len(), 2 * (brackets as u64 / STANDINGS_SLOTS) as usize);
        changed_all(&mut e);
        assert_eq!(e.standings_due(at + 2000 + STANDINGS_PUSH_MS).len(), brackets as usize);
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
        assert!(e.signed_up() == 0 && e.bracket_count() == 0, "sign-ups are per period");
        assert_eq!(
            e.take_part_changes(),
            vec![("g/0".to_string(), None), ("g/1".to_string(), None)],
            "the period's entries are deleted"
        );
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

    /// Stores the hub as the runtime does: the snapshot, then the parts
    /// changed since the last store.
    fn store(e: &mut Expedition, parts: &mut BTreeMap<String, Vec<u8>>) -> Vec<u8> {
        for (name, value) in e.take_part_changes() {
            match value {
                Some(v) => parts.insert(name, v),
                None => parts.remove(&name),
            };
        }
        serde_json::to_vec(e).unwrap()
    }

    fn load(snapshot: &[u8], parts: &BTreeMap<String, Vec<u8>>) -> Expedition {
        let mut e: Expedition = serde_json::from_slice(snapshot).unwrap();
        e.load_parts(parts.iter().map(|(n, v)| (n.clone(), v.clone())).collect()).unwrap();
        e
    }

    #[test]
    fn a_sign_up_or_a_score_writes_one_entry_and_the_snapshot_holds_none() {
        let mut e = Expedition::new(T0);
        let mut parts = BTreeMap::new();
        for i in 0..20 {
            e.sign_up(&format!("guild-{i}"));
            e.add_points(&format!("guild-{i}"), &format!("p{i}"), 3);
        }
        store(&mut e, &mut parts);
        assert_eq!(parts.len(), 20);
        e.sign_up("late");
        let names: Vec<_> = e.take_part_changes().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["g/20"], "a new sign-up writes its own entry");
        e.add_points("guild-7", "p1", 5);
        let names: Vec<_> = e.take_part_changes().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["g/7"]);
        let snapshot = String::from_utf8(serde_json::to_vec(&e).unwrap()).unwrap();
        assert!(!snapshot.contains("guild-"), "entries live in parts only: {snapshot}");
    }

    #[test]
    fn the_entries_survive_a_store_and_load() {
        let mut e = Expedition::new(T0);
        let mut parts = BTreeMap::new();
        for g in ["a", "b", "c", "d", "e", "f", "g", "h", "i"] {
            e.sign_up(g);
        }
        e.add_points("c", "p1", 4);
        e.add_points("i", "p2", 1);
        let snapshot = store(&mut e, &mut parts);
        let back = load(&snapshot, &parts);
        assert_eq!(back.standings(0), e.standings(0));
        assert_eq!(back.standings(1), e.standings(1));
        assert_eq!((back.bracket_of("i"), back.bracket_of("c"), back.bracket_of("zz")), (Some(1), Some(0), None));
        let mut back = back;
        assert_eq!(back.sign_up("j"), 1, "numbering goes on after a load");
        assert_eq!(back.take_part_changes().into_iter().map(|(n, _)| n).collect::<Vec<_>>(), vec!["g/9"]);
    }

    #[test]
    fn an_old_snapshot_with_inline_entries_loads_and_moves_them_into_parts() {
        let old = serde_json::json!({
            "period": 3, "started_at_ms": T0, "period_ms": 60_000, "payouts_per_tick": 200,
            "guilds": {
                "a": {"bracket": 0, "points": 5, "members": {"p1": 5}},
                "b": {"bracket": 0, "points": 5, "members": {"p2": 5}},
            },
            "brackets": [["b", "a"]],
            "changed": [0], "payouts": {}, "last_results": [], "gems_paid": 0,
        });
        let mut e = load(&serde_json::to_vec(&old).unwrap(), &BTreeMap::new());
        let s = e.standings(0);
        assert_eq!(
            s.iter().map(|s| (s.guild.as_str(), s.rank)).collect::<Vec<_>>(),
            vec![("b", 1), ("a", 2)],
            "sign-up order kept"
        );
        assert_eq!(e.entry("a").map(|x| x.members.clone()), Some(BTreeMap::from([("p1".to_string(), 5)])));
        let names: Vec<_> = e.take_part_changes().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["g/0", "g/1"], "the next write moves them into parts");
        let snapshot = String::from_utf8(serde_json::to_vec(&e).unwrap()).unwrap();
        assert!(!snapshot.contains("\"guilds\""), "and drops the inline form: {snapshot}");
    }
}
