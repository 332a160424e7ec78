//! A transaction id as a player remembers it: a stable 64-bit hash.
//!
//! Every player remembers the outcomes of its last [`crate::player::REMEMBERED_TXS`]
//! transaction steps. Kept as strings (`market/buy/3-120/<player>/7/hold`,
//! ~50 bytes plus a heap allocation each), that history was a few KiB per
//! active player in memory and in every snapshot; as a hash it is 8 bytes.
//! The hash is FNV-1a, fixed forever (it is stored), and two ids of one
//! player's last 128 colliding has a probability of about 128² / 2⁶⁴.
//!
//! Snapshots written before this type kept the id itself; those still load:
//! a string is hashed on the way in.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxKey(pub u64);

impl TxKey {
    pub fn of(tx: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in tx.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        TxKey(h)
    }
}

impl Serialize for TxKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for TxKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Hash(u64),
            Id(String),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Hash(h) => TxKey(h),
            Stored::Id(id) => TxKey::of(&id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_and_old_string_ids_load_as_their_hash() {
        // FNV-1a's published test vectors: the hash must never change.
        assert_eq!(TxKey::of("").0, 0xcbf2_9ce4_8422_2325);
        assert_eq!(TxKey::of("a").0, 0xaf63_dc4c_8601_ec8c);
        let k = TxKey::of("market/list/3-1");
        assert_eq!(serde_json::from_str::<TxKey>("\"market/list/3-1\"").unwrap(), k);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<TxKey>(&json).unwrap(), k);
        assert_ne!(TxKey::of("market/list/3-1"), TxKey::of("market/list/3-2"));
    }
}
