//! How the guild directory is stored: one part per guild (`e/{guild id}`:
//! its listing entry and its next wake-up), beside a small snapshot (the
//! next guild number and the creations in progress).
//!
//! As one snapshot, the directory rewrote every guild's entry on every
//! flush, because some guild's update had changed: its write grew with the
//! number of guilds the world ever founded (10 KB at 67 guilds, growing
//! with each), which a server that runs for weeks cannot afford. As parts,
//! a flush writes the entries that changed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::directory::{DirEntry, DirectoryIndex, GuildDirectory};
use crate::text::fold_key;

/// Prefix of an entry's part name.
const ENTRY: &str = "e/";

/// One guild's stored record.
#[derive(Debug, Serialize, Deserialize)]
struct StoredEntry {
    entry: DirEntry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wake_at: Option<u64>,
}

impl DirectoryIndex {
    /// Puts back an entry read from the store, with its name and tag keys.
    pub(super) fn restore(&mut self, entry: DirEntry) {
        let lname = fold_key(&entry.summary.name);
        self.by_id.insert(entry.summary.id.clone(), lname.clone());
        self.tags.insert(entry.summary.tag.to_lowercase(), entry.summary.id.clone());
        self.by_name.insert(lname, entry);
    }
}

/// Guild ids whose entry or wake-up changed since the last write.
pub type Changed = BTreeSet<String>;

impl GuildDirectory {
    /// The changed entries as parts (`None`: the guild is gone).
    pub(super) fn entry_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|id| {
                let value = self.index.get(&id).and_then(|entry| {
                    let stored = StoredEntry { entry: entry.clone(), wake_at: self.wakeups.get(&id).copied() };
                    serde_json::to_vec(&stored).ok()
                });
                (format!("{ENTRY}{id}"), value)
            })
            .collect()
    }

    /// Reads the entries back. Entries that came inline with an old
    /// snapshot are marked changed, so the next write moves them into parts.
    pub(super) fn load_entries(&mut self, parts: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        self.changed.extend(self.index.by_id.keys().cloned());
        self.changed.extend(self.wakeups.keys().cloned());
        for (name, value) in parts {
            let Some(id) = name.strip_prefix(ENTRY) else {
                return Err(format!("directory part {name:?}: unknown prefix"));
            };
            let stored: StoredEntry =
                serde_json::from_slice(&value).map_err(|e| format!("directory part {name:?}: {e}"))?;
            if stored.entry.summary.id != id {
                return Err(format!("directory part {name:?} holds guild {:?}", stored.entry.summary.id));
            }
            if let Some(t) = stored.wake_at {
                self.wakeups.insert(id.to_string(), t);
            }
            self.index.restore(stored.entry);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use guildhall_entity::Entity;

    use super::*;
    use crate::guild::model::GuildSummary;

    fn entry(id: &str, name: &str, tag: &str) -> DirEntry {
        let summary = GuildSummary {
            id: id.into(),
            name: name.into(),
            tag: tag.into(),
            members: 3,
            capacity: 30,
            open: true,
            language: "en".into(),
            activity: 7,
            activity_week: 1,
        };
        DirEntry { summary, founded: true, seq: 4 }
    }

    /// A write costs the entries that changed, never the whole listing, and
    /// what is written reads back as the same directory.
    #[test]
    fn a_write_carries_only_changed_entries_and_reads_back_whole() {
        let mut dir = GuildDirectory::default();
        for n in 1..=50 {
            let id = format!("g{n}");
            dir.index.restore(entry(&id, &format!("Guild {n}"), &format!("T{n}")));
            dir.changed.insert(id);
        }
        dir.wakeups.insert("g7".into(), 99);
        let first = dir.take_part_changes();
        assert_eq!(first.len(), 50);
        let snapshot = serde_json::to_vec(&dir).unwrap();
        assert!(snapshot.len() < 200, "the snapshot holds no entries: {} bytes", snapshot.len());

        dir.index.upsert(GuildSummary { members: 4, ..entry("g3", "Guild 3", "T3").summary }, 5);
        dir.changed.insert("g3".into());
        dir.index.remove("g9");
        dir.changed.insert("g9".into());
        let second = dir.take_part_changes();
        assert_eq!(second.len(), 2, "only what changed: {second:?}");
        assert!(second.iter().any(|(n, v)| n == "e/g9" && v.is_none()), "a removed guild's part is deleted");

        // The store's view: the first write, then the second on top.
        let mut stored: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
        for (name, value) in first.into_iter().chain(second) {
            match value {
                Some(v) => stored.insert(name, v),
                None => stored.remove(&name),
            };
        }
        let mut back: GuildDirectory = serde_json::from_slice(&snapshot).unwrap();
        back.load_parts(stored.into_iter().collect()).unwrap();
        assert_eq!(back.index.len(), 49);
        assert_eq!(back.index.get("g3").unwrap().summary.members, 4);
        assert_eq!(back.index.get("g7").unwrap(), dir.index.get("g7").unwrap());
        assert_eq!(back.wakeups.get("g7"), Some(&99));
        assert_eq!(back.index.tags.get("t12").map(String::as_str), Some("g12"));
        assert!(back.index.by_name.contains_key(&fold_key("Guild 12")));
        assert!(back.take_part_changes().is_empty(), "nothing to write after a load from parts");
    }

    /// A snapshot written before the entries moved into parts still loads,
    /// and its next write moves every entry into parts.
    #[test]
    fn an_inline_snapshot_loads_and_moves_into_parts() {
        let mut ix = DirectoryIndex::default();
        ix.restore(entry("g1", "Old Guild", "OLD"));
        let old = serde_json::json!({ "next_id": 1, "index": ix, "reservations": {}, "wakeups": { "g1": 5 } });
        let mut dir: GuildDirectory = serde_json::from_value(old).unwrap();
        dir.load_parts(Vec::new()).unwrap();
        assert_eq!(dir.index.get("g1").unwrap().summary.name, "Old Guild");
        let parts = dir.take_part_changes();
        assert_eq!(parts.len(), 1);
        let stored: StoredEntry = serde_json::from_slice(parts[0].1.as_ref().unwrap()).unwrap();
        assert_eq!(stored.wake_at, Some(5));
    }
}
