//! Compact stored forms of a player's two collections.
//!
//! A player's snapshot is written on nearly every flush of a busy player
//! (~1,950 writes a second at 19,500 players), and its default JSON spelled
//! each card as `"3":{"count":2,"level":1}` and each remembered transaction
//! as `[12764648553781409443,null]`. Over a ten-minute run the snapshot grew
//! from 550 to 1,170 bytes, mostly the transaction list filling up, and the
//! players' writes to 2.2 MB/s, most of the store's write volume
//! (docs/bench-log/scaling-rounds.md, "Long runs"). Stored as below, a full collection and a
//! full list take about a third of that.
//!
//! * cards: `[[kind, count, level], ...]`;
//! * transactions: `{"keys": "<11 characters per key, oldest first>",
//!   "refused": [[index, refusal], ...]}` (most steps succeed). Snapshots
//!   no longer hold them (they are parts: `remembered.rs`, which keeps the
//!   11-character keys); older snapshots' lists are read and moved.
//!
//! Both still read the old forms, so snapshots written before load. The
//! admin view shows the readable forms (`Player::state_json`).

use std::collections::{BTreeMap, VecDeque};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cards::CardStack;
use crate::txkey::TxKey;
use crate::GameError;

pub mod cards {
    use super::*;

    pub fn serialize<S: Serializer>(cards: &BTreeMap<u32, CardStack>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(cards.iter().map(|(kind, c)| (kind, c.count, c.level)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, CardStack>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Compact(Vec<(u32, u32, u32)>),
            // String keys: within an untagged enum, JSON object keys do not
            // read as numbers.
            Readable(BTreeMap<String, CardStack>),
        }
        match Stored::deserialize(d)? {
            Stored::Compact(v) => {
                Ok(v.into_iter().map(|(kind, count, level)| (kind, CardStack { count, level })).collect())
            }
            Stored::Readable(m) => m
                .into_iter()
                .map(|(kind, c)| {
                    kind.parse().map(|k| (k, c)).map_err(|_| D::Error::custom("card kind is not a number"))
                })
                .collect(),
        }
    }
}

pub mod applied {
    use super::*;

    type Applied = VecDeque<(TxKey, Option<Box<GameError>>)>;

    #[derive(Serialize, Deserialize)]
    struct Compact {
        keys: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refused: Vec<(usize, GameError)>,
    }

    /// Snapshots no longer hold the list (`super::super::remembered`); kept
    /// to test that the older forms still read.
    #[cfg(test)]
    pub fn serialize<S: Serializer>(applied: &Applied, s: S) -> Result<S::Ok, S::Error> {
        let mut keys = String::with_capacity(applied.len() * KEY_CHARS);
        let mut refused = Vec::new();
        for (i, (key, outcome)) in applied.iter().enumerate() {
            push_key(&mut keys, key.0);
            if let Some(e) = outcome {
                refused.push((i, (**e).clone()));
            }
        }
        Compact { keys, refused }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Applied, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Compact(Compact),
            Readable(Applied),
        }
        let c = match Stored::deserialize(d)? {
            Stored::Readable(v) => return Ok(v),
            Stored::Compact(c) => c,
        };
        let bytes = c.keys.as_bytes();
        if bytes.len() % KEY_CHARS != 0 {
            return Err(D::Error::custom("applied keys: length is not a multiple of 11"));
        }
        let mut out: Applied = bytes
            .chunks(KEY_CHARS)
            .map(|chunk| read_key(chunk).map(|k| (TxKey(k), None)))
            .collect::<Option<_>>()
            .ok_or_else(|| D::Error::custom("applied keys: not a key"))?;
        for (i, e) in c.refused {
            let slot = out.get_mut(i).ok_or_else(|| D::Error::custom("applied refusal: index out of range"))?;
            slot.1 = Some(Box::new(e));
        }
        Ok(out)
    }

    /// The readable form, for the admin view.
    pub fn readable(applied: &Applied) -> serde_json::Value {
        serde_json::to_value(applied).unwrap_or(serde_json::Value::Null)
    }
}

/// A 64-bit key in 11 characters of base64url (6 bits each, the first
/// character carrying the top 4).
pub(super) const KEY_CHARS: usize = 11;
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub(super) fn push_key(out: &mut String, key: u64) {
    for i in (0..KEY_CHARS).rev() {
        out.push(ALPHABET[((key >> (6 * i)) & 63) as usize] as char);
    }
}

pub(super) fn read_key(chars: &[u8]) -> Option<u64> {
    let mut key: u64 = 0;
    for (i, c) in chars.iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u64;
        // The first character holds the top 4 bits only.
        if i == 0 && v >= 16 {
            return None;
        }
        key = (key << 6) | v;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Both {
        #[serde(with = "cards")]
        cards: BTreeMap<u32, CardStack>,
        #[serde(with = "applied")]
        applied: VecDeque<(TxKey, Option<Box<GameError>>)>,
    }

    #[test]
    fn compact_forms_round_trip_and_old_forms_still_load() {
        let both = Both {
            cards: BTreeMap::from([(0, CardStack { count: 2, level: 1 }), (15, CardStack { count: 1, level: 3 })]),
            applied: VecDeque::from([
                (TxKey(0), None),
                (TxKey(u64::MAX), Some(Box::new(crate::PlayerError::NotEnoughGold { need: 5, have: 1 }.into()))),
                (TxKey::of("market/list/3-1"), None),
            ]),
        };
        let json = serde_json::to_string(&both).unwrap();
        assert!(json.starts_with(r#"{"cards":[[0,2,1],[15,1,3]],"applied":{"keys":"AAAAAAAAAAAP__________"#), "{json}");
        assert_eq!(serde_json::from_str::<Both>(&json).unwrap(), both);

        let old = serde_json::json!({
            "cards": {"0": {"count": 2, "level": 1}, "15": {"count": 1, "level": 3}},
            "applied": [[0, null], [u64::MAX, {"NotEnoughGold": {"need": 5, "have": 1}}], ["market/list/3-1", null]],
        });
        assert_eq!(serde_json::from_value::<Both>(old).unwrap(), both);
    }

    #[test]
    fn damaged_keys_are_refused_not_misread() {
        let parse =
            |keys: &str| serde_json::from_str::<Both>(&format!(r#"{{"cards":[],"applied":{{"keys":"{keys}"}}}}"#));
        assert!(parse("AAAA").is_err(), "not a whole key");
        assert!(parse("QAAAAAAAAAA").is_err(), "more than 64 bits");
        assert!(parse("AAAAAAAAA*A").is_err(), "not base64url");
        assert!(serde_json::from_str::<Both>(
            r#"{"cards":[],"applied":{"keys":"","refused":[[0,"HelpAlreadyOpen"]]}}"#
        )
        .is_err());
    }
}
