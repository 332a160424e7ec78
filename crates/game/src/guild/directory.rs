//! The guild directory: one entity (key [`DIRECTORY_KEY`]) that lists every
//! guild, reserves names and tags, hands out guild ids, answers searches and
//! recommendations, and remembers when each guild wants its next `Tick`.
//!
//! Why one entity: uniqueness of names and tags needs a single authority, and
//! an entity handles one message at a time, so "is the name free? reserve it"
//! is atomic without a lock. Guilds keep it current by *casting* updates
//! (never calling: the directory never waits on a guild, so no call cycle is
//! possible); searches read a slightly stale but consistent picture.
//!
//! The searchable part is [`DirectoryIndex`], a plain struct with no runtime
//! in it, so that the benchmark (`examples/directory_bench.rs`) and the unit
//! tests exercise exactly the code the entity runs.

use std::collections::BTreeMap;

use guildhall_entity::{Ctx, Entity};
use serde::{Deserialize, Serialize};

use super::directory_parts::Changed;
use super::model::GuildSummary;
use super::rules::{week_of, GUILD_NAME};
use crate::text::{clean, fold_key};
use crate::{GameError, GuildError};

/// The key of the one directory entity.
pub const DIRECTORY_KEY: &str = "all";
/// Results of one search or recommendation at most.
pub const MAX_RESULTS: usize = 20;
pub const TAG_MIN: usize = 2;
pub const TAG_MAX: usize = 5;
/// A reservation older than this whose guild never confirmed is released by
/// the directory's `Due` pass (the founder was never charged, or the guild
/// completes the creation when asked again with the same id).
pub const RESERVATION_TTL_MS: u64 = 10 * 60 * 1000;

/// One guild as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub summary: GuildSummary,
    /// False while the name is only reserved (creation in progress): such an
    /// entry blocks the name but is never shown.
    pub founded: bool,
    /// The guild's update counter: an update older than the last applied one
    /// (casts may overtake each other) is ignored.
    pub seq: u64,
}

/// A name and tag held for a founder while the guild is being created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub guild_id: String,
    pub founder: String,
    pub name: String,
    pub tag: String,
    pub language: String,
    pub open: bool,
    pub description: String,
    pub at_ms: u64,
}

/// Filters of a search. Empty/zero fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchQuery {
    /// Case-insensitive name prefix.
    pub prefix: String,
    pub open_only: bool,
    pub has_room: bool,
    pub language: String,
    pub min_members: u32,
    /// 0: no maximum.
    pub max_members: u32,
    /// 0 or over [`MAX_RESULTS`]: [`MAX_RESULTS`].
    pub limit: usize,
}

/// The searchable listing. Names are keyed by [`fold_key`] in a `BTreeMap`,
/// so a prefix search is a range scan that stops at the first name past the
/// prefix, and results come out in name order (deterministic).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DirectoryIndex {
    /// Name key ([`fold_key`]) -> entry (reserved or founded).
    pub by_name: BTreeMap<String, DirEntry>,
    /// Guild id -> name key.
    pub by_id: BTreeMap<String, String>,
    /// Lowercase tag -> guild id.
    pub tags: BTreeMap<String, String>,
}

fn limit_of(limit: usize) -> usize {
    if limit == 0 {
        MAX_RESULTS
    } else {
        limit.min(MAX_RESULTS)
    }
}

/// Checks a guild name, tag and language, and returns the name in the form
/// to store (NFC); the directory refuses anything else so that every listed
/// guild is displayable and no two look alike.
pub fn validate(name: &str, tag: &str, language: &str) -> Result<String, GameError> {
    let name = clean(&GUILD_NAME, name).map_err(|e| GuildError::InvalidGuildInput(e.to_string()))?;
    let t = tag.chars().count();
    if !(TAG_MIN..=TAG_MAX).contains(&t) || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(GuildError::InvalidGuildInput(format!(
            "a guild tag has {TAG_MIN}-{TAG_MAX} ASCII letters or digits"
        ))
        .into());
    }
    if language.len() > 8 || !language.chars().all(|c| c.is_ascii_alphabetic() || c == '-') {
        return Err(
            GuildError::InvalidGuildInput("a language is a short code such as \"en\" or \"pt-BR\"".into()).into()
        );
    }
    Ok(name)
}

impl DirectoryIndex {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Reserves `name` and `tag` for guild `id` (not listed until founded).
    pub fn reserve(&mut self, id: &str, name: &str, tag: &str, language: &str, open: bool) -> Result<(), GameError> {
        let lname = fold_key(name);
        let ltag = tag.to_lowercase();
        if self.by_name.contains_key(&lname) {
            return Err(GuildError::GuildNameTaken(name.to_string()).into());
        }
        if self.tags.contains_key(&ltag) {
            return Err(GuildError::GuildTagTaken(tag.to_string()).into());
        }
        let summary = GuildSummary {
            id: id.to_string(),
            name: name.to_string(),
            tag: tag.to_string(),
            members: 0,
            capacity: 0,
            open,
            language: language.to_string(),
            activity: 0,
            activity_week: 0,
        };
        self.by_id.insert(id.to_string(), lname.clone());
        self.tags.insert(ltag, id.to_string());
        self.by_name.insert(lname, DirEntry { summary, founded: false, seq: 0 });
        Ok(())
    }

    /// Applies a guild's own update (newer `seq` only).
    pub fn upsert(&mut self, summary: GuildSummary, seq: u64) {
        // An unknown id is a guild already removed (a late update overtook
        // nothing: casts from one guild may arrive out of order): ignore it.
        let Some(lname) = self.by_id.get(&summary.id).cloned() else {
            return;
        };
        if let Some(entry) = self.by_name.get_mut(&lname) {
            if seq < entry.seq {
                return;
            }
            entry.summary = summary;
            entry.founded = true;
            entry.seq = seq;
        }
    }

    /// Removes a guild (disbanded, or its creation failed): frees name and tag.
    pub fn remove(&mut self, id: &str) -> Option<DirEntry> {
        let lname = self.by_id.remove(id)?;
        let entry = self.by_name.remove(&lname)?;
        self.tags.remove(&entry.summary.tag.to_lowercase());
        Some(entry)
    }

    pub fn get(&self, id: &str) -> Option<&DirEntry> {
        self.by_name.get(self.by_id.get(id)?)
    }

    /// Guilds whose name starts with `q.prefix` (under [`fold_key`]) and pass
    /// the filters, in name order, at most `q.limit`.
    pub fn search(&self, q: &SearchQuery, now_ms: u64) -> Vec<GuildSummary> {
        let prefix = fold_key(&q.prefix);
        let limit = limit_of(q.limit);
        let week = week_of(now_ms);
        let mut out = Vec::with_capacity(limit);
        for (lname, entry) in self.by_name.range(prefix.clone()..) {
            if !lname.starts_with(&prefix) {
                break;
            }
            if !entry.founded {
                continue;
            }
            let s = &entry.summary;
            if (q.open_only && !s.open)
                || (q.has_room && s.members >= s.capacity)
                || (!q.language.is_empty() && !s.language.eq_ignore_ascii_case(&q.language))
                || s.members < q.min_members
                || (q.max_members > 0 && s.members > q.max_members)
            {
                continue;
            }
            out.push(s.current(week));
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    /// Guilds with room that fit a player speaking `language`, best first:
    /// same language, open (joinable at once), active this week, and well
    /// filled (a lively guild) weigh in that order. Ties go by name, so the
    /// answer is deterministic. `exclude` is the player's own guild.
    pub fn recommend(&self, language: &str, exclude: Option<&str>, limit: usize, now_ms: u64) -> Vec<GuildSummary> {
        let limit = limit_of(limit);
        let week = week_of(now_ms);
        // Keep the best `limit` in a small sorted vector: one pass over the
        // listing, no allocation per guild.
        let mut best: Vec<(u64, &str, &GuildSummary)> = Vec::with_capacity(limit + 1);
        for (lname, entry) in &self.by_name {
            let s = &entry.summary;
            if !entry.founded || s.members >= s.capacity || exclude == Some(s.id.as_str()) {
                continue;
            }
            let score = recommend_score(s, language, week);
            if best.len() == limit {
                let (worst_score, worst_name, _) = best[limit - 1];
                // Names are visited in ascending order, so an equal score
                // never displaces an earlier name.
                if score < worst_score || (score == worst_score && lname.as_str() > worst_name) {
                    continue;
                }
            }
            let pos = best.partition_point(|(sc, n, _)| *sc > score || (*sc == score && *n < lname.as_str()));
            best.insert(pos, (score, lname.as_str(), s));
            best.truncate(limit);
        }
        best.into_iter().map(|(_, _, s)| s.current(week)).collect()
    }
}

/// The recommendation score of a guild for a player (higher is better).
pub fn recommend_score(s: &GuildSummary, language: &str, week: u64) -> u64 {
    let mut score = 0;
    if !language.is_empty() && s.language.eq_ignore_ascii_case(language) {
        score += 10_000;
    }
    if s.open {
        score += 2_000;
    }
    let activity = if s.activity_week == week { s.activity } else { 0 };
    score += activity.min(1_000);
    score += 20 * s.members as u64;
    score
}

/// The directory entity.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GuildDirectory {
    /// Next guild number: ids are "g1", "g2", ... never reused, so a guild's
    /// transaction ids ("guild/g7/...") are unique for ever.
    pub next_id: u64,
    /// Every guild's entry: one part each (`directory_parts`), not in the
    /// snapshot; an old snapshot's inline index is still read.
    #[serde(default, skip_serializing)]
    pub index: DirectoryIndex,
    /// Founder -> their creation in progress. A retried create finds it and
    /// continues with the same guild id instead of reserving again.
    #[serde(default)]
    pub reservations: BTreeMap<String, Reservation>,
    /// Guild id -> clock time of its next `Tick` (help expiry, unfinished
    /// transaction steps). Stored in the guild's part, with its entry.
    #[serde(default, skip_serializing)]
    pub wakeups: BTreeMap<String, u64>,
    /// Guilds whose entry or wake-up changed since the last write.
    #[serde(skip)]
    pub(super) changed: Changed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DirectoryMsg {
    /// Reserves name and tag for `founder`'s new guild, or returns the
    /// founder's creation already in progress.
    Reserve {
        founder: String,
        name: String,
        tag: String,
        language: String,
        open: bool,
        description: String,
    },
    /// The guild was founded: forget the reservation.
    Confirm {
        founder: String,
        guild_id: String,
    },
    /// The creation failed (the founder was not charged): free name and tag.
    Release {
        founder: String,
        guild_id: String,
    },
    /// A guild's current listing and its next wake-up (cast by the guild).
    Update {
        summary: GuildSummary,
        seq: u64,
        wake_at: Option<u64>,
    },
    /// The guild disbanded (cast by the guild).
    Remove {
        guild_id: String,
    },
    Search(SearchQuery),
    Recommend {
        language: String,
        exclude: Option<String>,
        limit: usize,
    },
    /// Guilds whose wake-up time has come (asked by the guilds' waker).
    Due,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryReply {
    Reserved(Reservation),
    Done,
    Guilds(Vec<GuildSummary>),
    /// Guilds to tick, and reservations a crash left behind (older than
    /// [`RESERVATION_TTL_MS`]) for the tick to complete or release.
    Due {
        guilds: Vec<String>,
        stale: Vec<Reservation>,
    },
}

impl Entity for GuildDirectory {
    const KIND: &'static str = "guild_directory";
    type Msg = DirectoryMsg;
    type Reply = Result<DirectoryReply, GameError>;

    const HAS_PARTS: bool = true;

    fn create(_key: &str, _now_ms: u64) -> Self {
        GuildDirectory::default()
    }

    fn take_part_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        self.entry_changes()
    }

    fn load_parts(&mut self, parts: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        self.load_entries(parts)
    }

    fn state_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("index".into(), serde_json::json!(self.index));
            obj.insert("wakeups".into(), serde_json::json!(self.wakeups));
        }
        v
    }

    async fn handle(&mut self, msg: DirectoryMsg, ctx: &mut Ctx) -> Self::Reply {
        let now = ctx.now_ms();
        match msg {
            DirectoryMsg::Reserve { founder, name, tag, language, open, description } => {
                if let Some(r) = self.reservations.get(&founder) {
                    // A retry (or a creation interrupted by a crash): go on
                    // with the same guild id, so nothing is reserved or
                    // charged twice.
                    ctx.unchanged();
                    return Ok(DirectoryReply::Reserved(r.clone()));
                }
                let name = validate(&name, &tag, &language).inspect_err(|_| ctx.unchanged())?;
                let guild_id = format!("g{}", self.next_id + 1);
                self.index.reserve(&guild_id, &name, &tag, &language, open).inspect_err(|_| ctx.unchanged())?;
                self.changed.insert(guild_id.clone());
                self.next_id += 1;
                let r = Reservation {
                    guild_id,
                    founder: founder.clone(),
                    name,
                    tag,
                    language,
                    open,
                    description,
                    at_ms: now,
                };
                self.reservations.insert(founder, r.clone());
                ctx.durable();
                Ok(DirectoryReply::Reserved(r))
            }
            DirectoryMsg::Confirm { founder, guild_id } => {
                if self.reservations.get(&founder).is_some_and(|r| r.guild_id == guild_id) {
                    self.reservations.remove(&founder);
                    self.changed.insert(guild_id.clone());
                    if let Some(lname) = self.index.by_id.get(&guild_id).cloned() {
                        if let Some(e) = self.index.by_name.get_mut(&lname) {
                            e.founded = true;
                        }
                    }
                } else {
                    ctx.unchanged();
                }
                Ok(DirectoryReply::Done)
            }
            DirectoryMsg::Release { founder, guild_id } => {
                if self.reservations.get(&founder).is_some_and(|r| r.guild_id == guild_id) {
                    self.reservations.remove(&founder);
                    self.index.remove(&guild_id);
                    self.changed.insert(guild_id);
                    ctx.durable();
                } else {
                    ctx.unchanged();
                }
                Ok(DirectoryReply::Done)
            }
            DirectoryMsg::Update { summary, seq, wake_at } => {
                let known = self.index.get(&summary.id).is_some_and(|e| seq >= e.seq);
                if !known {
                    ctx.unchanged();
                    return Ok(DirectoryReply::Done);
                }
                match wake_at {
                    Some(t) => self.wakeups.insert(summary.id.clone(), t),
                    None => self.wakeups.remove(&summary.id),
                };
                self.changed.insert(summary.id.clone());
                self.index.upsert(summary, seq);
                Ok(DirectoryReply::Done)
            }
            DirectoryMsg::Remove { guild_id } => {
                self.index.remove(&guild_id);
                self.wakeups.remove(&guild_id);
                self.changed.insert(guild_id);
                Ok(DirectoryReply::Done)
            }
            DirectoryMsg::Search(q) => {
                ctx.unchanged();
                Ok(DirectoryReply::Guilds(self.index.search(&q, now)))
            }
            DirectoryMsg::Recommend { language, exclude, limit } => {
                ctx.unchanged();
                Ok(DirectoryReply::Guilds(self.index.recommend(&language, exclude.as_deref(), limit, now)))
            }
            DirectoryMsg::Due => {
                let guilds: Vec<String> =
                    self.wakeups.iter().filter(|(_, t)| **t <= now).map(|(g, _)| g.clone()).collect();
                // Until the guild reports its next wake-up, ask again in a
                // while rather than every second.
                for g in &guilds {
                    if let Some(t) = self.wakeups.get_mut(g) {
                        *t = now + 30_000;
                        self.changed.insert(g.clone());
                    }
                }
                let stale: Vec<Reservation> = self
                    .reservations
                    .values()
                    .filter(|r| now.saturating_sub(r.at_ms) >= RESERVATION_TTL_MS)
                    .cloned()
                    .collect();
                if guilds.is_empty() {
                    ctx.unchanged();
                }
                Ok(DirectoryReply::Due { guilds, stale })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_600_000;

    fn summary(id: &str, name: &str, members: u32, open: bool, language: &str, activity: u64) -> GuildSummary {
        GuildSummary {
            id: id.into(),
            name: name.into(),
            tag: id.to_uppercase(),
            members,
            capacity: 30,
            open,
            language: language.into(),
            activity,
            activity_week: week_of(T0),
        }
    }

    fn listed(ix: &mut DirectoryIndex, s: GuildSummary) {
        ix.reserve(&s.id, &s.name, &s.tag, &s.language, s.open).unwrap();
        ix.upsert(s, 1);
    }

    #[test]
    fn names_and_tags_are_unique_case_insensitively() {
        let mut ix = DirectoryIndex::default();
        ix.reserve("g1", "Dragons", "DRG", "en", true).unwrap();
        assert_eq!(
            ix.reserve("g2", "dragons", "XX", "en", true),
            Err(GuildError::GuildNameTaken("dragons".into()).into())
        );
        assert_eq!(ix.reserve("g2", "Wyrms", "drg", "en", true), Err(GuildError::GuildTagTaken("drg".into()).into()));
        assert!(ix.search(&SearchQuery::default(), T0).is_empty(), "a reservation is not listed");
        ix.remove("g1");
        ix.reserve("g2", "dragons", "drg", "en", true).unwrap();
    }

    #[test]
    fn prefix_search_is_case_insensitive_filtered_and_limited() {
        let mut ix = DirectoryIndex::default();
        listed(&mut ix, summary("g1", "Dragon Riders", 5, true, "en", 0));
        listed(&mut ix, summary("g2", "dragonfly", 30, true, "en", 0));
        listed(&mut ix, summary("g3", "Drakes", 3, false, "de", 0));
        listed(&mut ix, summary("g4", "Elves", 3, true, "en", 0));
        let names = |v: Vec<GuildSummary>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        let q = |prefix: &str| SearchQuery { prefix: prefix.into(), ..SearchQuery::default() };
        assert_eq!(names(ix.search(&q("DRAGON"), T0)), ["g1", "g2"]);
        assert_eq!(names(ix.search(&q("dr"), T0)), ["g1", "g2", "g3"]);
        assert_eq!(names(ix.search(&SearchQuery { has_room: true, ..q("dr") }, T0)), ["g1", "g3"]);
        assert_eq!(names(ix.search(&SearchQuery { open_only: true, ..q("dr") }, T0)), ["g1", "g2"]);
        assert_eq!(names(ix.search(&SearchQuery { language: "DE".into(), ..q("") }, T0)), ["g3"]);
        assert_eq!(names(ix.search(&SearchQuery { min_members: 4, max_members: 10, ..q("") }, T0)), ["g1"]);
        assert_eq!(names(ix.search(&SearchQuery { limit: 2, ..q("") }, T0)), ["g1", "g2"]);
    }

    #[test]
    fn recommendations_have_room_fit_the_language_and_are_deterministic() {
        let mut ix = DirectoryIndex::default();
        listed(&mut ix, summary("g1", "Full", 30, true, "en", 500));
        listed(&mut ix, summary("g2", "Quiet", 2, true, "en", 0));
        listed(&mut ix, summary("g3", "Busy", 20, true, "en", 300));
        listed(&mut ix, summary("g4", "Fremd", 25, true, "de", 900));
        listed(&mut ix, summary("g5", "Closed", 20, false, "en", 300));
        listed(&mut ix, summary("g6", "Busy Too", 20, true, "en", 300));
        let ids: Vec<_> = ix.recommend("en", None, 10, T0).into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["g3", "g6", "g2", "g5", "g4"], "full guilds never; same language, open, active first");
        let ids: Vec<_> = ix.recommend("en", Some("g3"), 2, T0).into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["g6", "g2"]);
        // Last week's activity does not count.
        let later = T0 + 8 * 24 * 3600 * 1000;
        assert_eq!(ix.search(&SearchQuery::default(), later)[0].activity, 0);
    }

    #[test]
    fn stale_updates_are_ignored() {
        let mut ix = DirectoryIndex::default();
        listed(&mut ix, summary("g1", "Order", 5, true, "en", 0));
        ix.upsert(summary("g1", "Order", 7, true, "en", 0), 5);
        ix.upsert(summary("g1", "Order", 6, true, "en", 0), 4);
        assert_eq!(ix.get("g1").unwrap().summary.members, 7);
    }

    #[test]
    fn names_tags_and_languages_are_validated() {
        assert!(validate("Good Name", "GN1", "en").is_ok());
        assert!(validate("ab", "GN", "en").is_err());
        assert!(validate(" padded", "GN", "en").is_err());
        assert!(validate("Good", "G", "en").is_err());
        assert!(validate("Good", "G-N", "en").is_err());
        assert!(validate("Good", "GN", "english-long").is_err());
    }
}
