//! The outcomes of a player's last transaction steps, stored one part per
//! step in a ring (`t/{slot}`, slot = step number mod [`REMEMBERED_TXS`]).
//!
//! Inline in the snapshot, the list was written whole on every flush of the
//! player, and filled over the first half hour of a run: a player's write
//! grew from 485 to ~700 bytes (docs/state-growth.md). As a ring of parts,
//! a flush writes the steps it added, so a write costs the same on the
//! first step as on the thousandth. In memory the list is allocated whole
//! at the first step: a player's memory does not creep up as it fills.

use std::collections::VecDeque;

use serde::Deserializer;

use super::snapshot_form::{self, push_key, read_key, KEY_CHARS};
use super::REMEMBERED_TXS;
use crate::txkey::TxKey;
use crate::GameError;

/// Part name prefix.
const PREFIX: &str = "t/";

// Changed slots are a bit set in one word.
const _: () = assert!(REMEMBERED_TXS <= 64);

type Outcome = Option<Box<GameError>>;

#[derive(Debug, Clone, Default)]
pub struct Remembered {
    /// Oldest first. The refusal is boxed: most steps succeed, and an entry
    /// stays 16 bytes.
    entries: VecDeque<(TxKey, Outcome)>,
    /// Number of the next step remembered.
    next: u64,
    /// Slots changed since the last write, as bits.
    unwritten: u64,
}

impl Remembered {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first outcome of step `key`, if it is remembered.
    pub fn outcome_of(&self, key: TxKey) -> Option<Result<(), GameError>> {
        self.entries.iter().rev().find(|(k, _)| *k == key).map(|(_, e)| match e {
            None => Ok(()),
            Some(e) => Err((**e).clone()),
        })
    }

    /// Remembers step `key`'s outcome, forgetting the oldest past
    /// [`REMEMBERED_TXS`].
    pub fn remember(&mut self, key: TxKey, outcome: Result<(), GameError>) {
        if self.entries.capacity() == 0 {
            self.entries.reserve_exact(REMEMBERED_TXS);
        }
        if self.entries.len() == REMEMBERED_TXS {
            self.entries.pop_front();
        }
        self.entries.push_back((key, outcome.err().map(Box::new)));
        self.unwritten |= 1 << slot(self.next);
        self.next += 1;
    }

    /// The steps added since the last call, as parts.
    pub fn take_changes(&mut self, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        let first = self.next - self.entries.len() as u64;
        for (i, (key, outcome)) in self.entries.iter().enumerate() {
            let seq = first + i as u64;
            if self.unwritten & (1 << slot(seq)) == 0 {
                continue;
            }
            let mut k = String::with_capacity(KEY_CHARS);
            push_key(&mut k, key.0);
            let value = serde_json::to_vec(&(seq, k, outcome));
            // A step always encodes; if one ever did not, its slot is
            // written as removed rather than left holding an older step.
            out.push((format!("{PREFIX}{}", slot(seq)), value.ok()));
        }
        self.unwritten = 0;
    }

    /// Rebuilds the list from its stored parts (those whose name starts
    /// with the prefix; `Ok(None)` if there are none).
    pub fn from_parts(parts: &[(String, Vec<u8>)]) -> Result<Option<Self>, String> {
        let mut steps = Vec::new();
        for (name, value) in parts.iter().filter(|(n, _)| n.starts_with(PREFIX)) {
            let bad = |e: String| format!("part {name:?}: {e}");
            let (seq, key, refusal): (u64, String, Option<GameError>) =
                serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?;
            let key =
                read_key(key.as_bytes()).filter(|_| key.len() == KEY_CHARS).ok_or_else(|| bad("not a key".into()))?;
            steps.push((seq, TxKey(key), refusal.map(Box::new)));
        }
        if steps.is_empty() {
            return Ok(None);
        }
        steps.sort_by_key(|(seq, _, _)| *seq);
        let next = steps.last().map_or(0, |(seq, _, _)| seq + 1);
        let mut entries = VecDeque::with_capacity(REMEMBERED_TXS);
        // Only a run of consecutive steps ending at the newest is a list;
        // an older stray (a slot not yet overwritten) is not part of it.
        for (seq, key, outcome) in steps.into_iter().rev() {
            if seq + 1 + entries.len() as u64 != next {
                break;
            }
            entries.push_front((key, outcome));
        }
        Ok(Some(Remembered { entries, next, unwritten: 0 }))
    }

    /// Part names this list uses.
    pub fn is_part(name: &str) -> bool {
        name.starts_with(PREFIX)
    }

    /// The readable form, for the admin view.
    pub fn readable(&self) -> serde_json::Value {
        snapshot_form::applied::readable(&self.entries)
    }
}

fn slot(seq: u64) -> u64 {
    seq % REMEMBERED_TXS as u64
}

/// Reads the list an older snapshot kept inline; every step is marked
/// changed, so the first write moves them into parts.
pub fn from_inline<'de, D: Deserializer<'de>>(d: D) -> Result<Remembered, D::Error> {
    let mut inline = snapshot_form::applied::deserialize(d)?;
    while inline.len() > REMEMBERED_TXS {
        inline.pop_front();
    }
    let mut list = Remembered::default();
    for (key, outcome) in inline {
        list.remember(key, outcome.map_or(Ok(()), |e| Err(*e)));
    }
    Ok(list)
}
