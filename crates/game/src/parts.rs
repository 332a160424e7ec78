//! A map whose entries live in entity parts (see `Entity::take_part_changes`):
//! one stored record per entry, written only when that entry changes.
//!
//! A market shard holds thousands of listings; as one snapshot, every durable
//! step of every purchase re-encoded and re-wrote all of them (the shard of
//! common cards reached 1,100 listings and 267 KB in 90 s, and the server's
//! CPU grew with it: docs/bench-log/scaling-rounds.md, "Rounds"). As parts, a step writes the
//! listing it touched.
//!
//! Entries are keyed by `u64` and named `"{prefix}{key}"` in the store. A map
//! read from an old snapshot (where it was inline) marks every entry changed,
//! so the first write after the upgrade moves them all into parts.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone)]
pub struct PartMap<V> {
    map: BTreeMap<u64, V>,
    /// Keys inserted, changed or removed since the last `take_changes`.
    changed: BTreeSet<u64>,
}

impl<V> Default for PartMap<V> {
    fn default() -> Self {
        Self { map: BTreeMap::new(), changed: BTreeSet::new() }
    }
}

impl<V: Serialize + DeserializeOwned> PartMap<V> {
    pub fn get(&self, key: &u64) -> Option<&V> {
        self.map.get(key)
    }

    /// The entry, marked changed (it will be written).
    pub fn get_mut(&mut self, key: &u64) -> Option<&mut V> {
        let v = self.map.get_mut(key)?;
        self.changed.insert(*key);
        Some(v)
    }

    pub fn insert(&mut self, key: u64, value: V) -> Option<V> {
        self.changed.insert(key);
        self.map.insert(key, value)
    }

    pub fn remove(&mut self, key: &u64) -> Option<V> {
        let v = self.map.remove(key)?;
        self.changed.insert(*key);
        Some(v)
    }

    /// Holds `value` in memory as read back from its stored part: not a
    /// change.
    pub fn cache(&mut self, key: u64, value: V) {
        self.map.insert(key, value);
    }

    /// Drops the entry from memory, keeping its stored part, unless it
    /// changed since the last `take_changes` (then it must be written
    /// first); returns whether it was dropped.
    pub fn forget(&mut self, key: &u64) -> bool {
        if self.changed.contains(key) {
            return false;
        }
        self.map.remove(key).is_some()
    }

    /// Removes the entry with the smallest key.
    pub fn pop_first(&mut self) -> Option<(u64, V)> {
        let (k, v) = self.map.pop_first()?;
        self.changed.insert(k);
        Some((k, v))
    }

    /// Removes every entry (each one's part is deleted by the next write).
    pub fn clear(&mut self) {
        self.changed.extend(self.map.keys().copied());
        self.map.clear();
    }

    pub fn contains_key(&self, key: &u64) -> bool {
        self.map.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn last_key(&self) -> Option<u64> {
        self.map.last_key_value().map(|(k, _)| *k)
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &u64> {
        self.map.keys()
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.map.values()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&u64, &V)> {
        self.map.iter()
    }

    /// The changes since the last call, as parts named `"{prefix}{key}"`.
    pub fn take_changes(&mut self, prefix: &str, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        for key in std::mem::take(&mut self.changed) {
            // A listing always encodes; if one ever did not, it is written as
            // removed rather than silently kept stale.
            let value = self.map.get(&key).and_then(|v| serde_json::to_vec(v).ok());
            out.push((format!("{prefix}{key}"), value));
        }
    }

    /// Takes a stored part if its name starts with `prefix`; `Ok(false)` if it
    /// belongs to another map.
    pub fn load(&mut self, prefix: &str, name: &str, value: &[u8]) -> Result<bool, String> {
        let Some(rest) = name.strip_prefix(prefix) else { return Ok(false) };
        let key: u64 = rest.parse().map_err(|_| format!("part {name:?}: key is not a number"))?;
        let v = serde_json::from_slice(value).map_err(|e| format!("part {name:?}: {e}"))?;
        self.map.insert(key, v);
        Ok(true)
    }

    /// The entries as a JSON object (introspection).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.map).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads the inline form of old snapshots; see the module docs.
impl<'de, V: Deserialize<'de>> Deserialize<'de> for PartMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<u64, V>::deserialize(d)?;
        let changed = map.keys().copied().collect();
        Ok(Self { map, changed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_touched_entry_once_and_removals_are_none() {
        let mut m = PartMap::<String>::default();
        m.insert(1, "a".into());
        m.insert(2, "b".into());
        m.get_mut(&1).unwrap().push('!');
        m.remove(&2);
        let _ = m.get(&1);
        let mut out = Vec::new();
        m.take_changes("x/", &mut out);
        assert_eq!(out, vec![("x/1".to_string(), Some(br#""a!""#.to_vec())), ("x/2".to_string(), None)]);
        out.clear();
        m.take_changes("x/", &mut out);
        assert!(out.is_empty(), "reads change nothing");

        let mut back = PartMap::<String>::default();
        assert_eq!(back.load("x/", "x/1", br#""a!""#), Ok(true));
        assert_eq!(back.load("x/", "y/1", br#""zzz""#), Ok(false));
        assert!(back.load("x/", "x/one", br#""a""#).is_err());
        assert_eq!(back.values().collect::<Vec<_>>(), ["a!"]);
    }

    #[test]
    fn an_inline_map_from_an_old_snapshot_is_all_changed() {
        let mut m: PartMap<u32> = serde_json::from_str(r#"{"3": 30, "7": 70}"#).unwrap();
        let mut out = Vec::new();
        m.take_changes("l/", &mut out);
        assert_eq!(out.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["l/3", "l/7"]);
    }
}
