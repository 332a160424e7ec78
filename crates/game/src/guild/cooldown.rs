//! When each member last asked for help, while the cooldown runs: one part
//! per player (`a/{hash of the player id}`).
//!
//! In the snapshot, this map was the largest thing every guild write
//! carried (about 1 KB in a full guild, filling as members asked), so a
//! guild's write grew with its members' history rather than with what
//! changed. As parts, asking writes one small record and the expiry of a
//! cooldown deletes one.

use serde::{Deserialize, Serialize};

use crate::parts::PartMap;
use crate::txkey::TxKey;

/// Part name prefix.
pub(super) const PREFIX: &str = "a/";

/// Help cooldowns by player.
#[derive(Debug, Clone, Default)]
pub struct Cooldowns {
    /// By a stable 64-bit hash of the player id (parts are keyed by
    /// numbers); the players whose ids share a hash share the entry, so a
    /// collision costs nothing but a longer list.
    map: PartMap<Vec<(String, u64)>>,
}

fn key_of(player: &str) -> u64 {
    // FNV-1a, as transaction ids: fixed for ever, since it names stored parts.
    TxKey::of(player).0
}

impl Cooldowns {
    /// When `player` last asked, if its cooldown has not been forgotten.
    pub fn get(&self, player: &str) -> Option<u64> {
        self.map.get(&key_of(player))?.iter().find(|(p, _)| p == player).map(|(_, at)| *at)
    }

    pub fn insert(&mut self, player: String, at_ms: u64) {
        let key = key_of(&player);
        let mut list: Vec<(String, u64)> = self.map.get(&key).cloned().unwrap_or_default();
        list.retain(|(p, _)| *p != player);
        list.push((player, at_ms));
        self.map.insert(key, list);
    }

    /// Forgets the cooldowns for which `running` is false.
    pub fn retain(&mut self, running: impl Fn(u64) -> bool) {
        let done: Vec<u64> =
            self.map.iter().filter(|(_, list)| list.iter().any(|(_, at)| !running(*at))).map(|(k, _)| *k).collect();
        for key in done {
            let mut list = self.map.get(&key).cloned().unwrap_or_default();
            list.retain(|(_, at)| running(*at));
            if list.is_empty() {
                self.map.remove(&key);
            } else {
                self.map.insert(key, list);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn take_changes(&mut self, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        self.map.take_changes(PREFIX, out);
    }

    pub fn load(&mut self, name: &str, value: &[u8]) -> Result<bool, String> {
        self.map.load(PREFIX, name, value)
    }

    /// The cooldowns as `{player: asked at}` (introspection).
    pub fn to_json(&self) -> serde_json::Value {
        self.map.values().flatten().map(|(p, at)| (p.clone(), serde_json::json!(at))).collect()
    }
}

/// The old snapshot form (a map inline), still read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OldCooldowns(pub std::collections::BTreeMap<String, u64>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ask_writes_one_part_and_an_expiry_deletes_it() {
        let mut c = Cooldowns::default();
        for (i, p) in ["a", "b", "c"].into_iter().enumerate() {
            c.insert(p.into(), 100 + i as u64);
        }
        let mut out = Vec::new();
        c.take_changes(&mut out);
        assert_eq!(out.len(), 3);
        c.insert("b".into(), 500);
        let mut out = Vec::new();
        c.take_changes(&mut out);
        assert_eq!(out.len(), 1, "one part for one ask: {out:?}");
        assert_eq!(c.get("b"), Some(500));

        c.retain(|at| at >= 102);
        assert_eq!((c.get("a"), c.get("b"), c.get("c")), (None, Some(500), Some(102)));
        let mut out = Vec::new();
        c.take_changes(&mut out);
        assert_eq!(out, vec![(format!("{PREFIX}{}", key_of("a")), None)], "the expired one is deleted");

        let mut back = Cooldowns::default();
        for p in ["b", "c"] {
            let name = format!("{PREFIX}{}", key_of(p));
            back.load(&name, &serde_json::to_vec(&vec![(p.to_string(), c.get(p).unwrap())]).unwrap()).unwrap();
        }
        assert_eq!((back.get("b"), back.get("c"), back.len()), (Some(500), Some(102), 2));
    }
}
