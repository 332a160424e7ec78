//! A guild's chat as stored: the last [`CHAT_HISTORY`] messages in a ring
//! of cold parts (`k/{slot}`, slot = post number mod [`CHAT_HISTORY`]), the
//! last [`CHAT_HOT`] of them in memory.
//!
//! Chat is written all the time and read rarely (a member opening the
//! guild's chat). Kept whole in memory, a guild's hundred messages were
//! ~15 KB of every active guild; in memory now are the few a screen shows,
//! and a longer history is read from the store when asked for. The ring
//! needs neither deletes nor an index of what is stored: each post
//! overwrites the oldest slot.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::model::ChatMessage;
use super::rules::{CHAT_HISTORY, CHAT_HOT};

/// Cold part name prefix.
pub(super) const PREFIX: &str = "k/";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatLog {
    /// Messages posted so far: the next goes to slot `posts % CHAT_HISTORY`.
    posts: u64,
    /// The last messages, oldest first: the last `min(posts, CHAT_HOT)`
    /// once `loaded` (the ring was read, or this instance saw every post),
    /// else only those posted since the guild was activated.
    #[serde(skip)]
    recent: VecDeque<ChatMessage>,
    #[serde(skip)]
    loaded: bool,
    /// Slots written since the last write.
    #[serde(skip)]
    changes: Vec<(u64, ChatMessage)>,
}

impl ChatLog {
    pub fn is_part(name: &str) -> bool {
        name.starts_with(PREFIX)
    }

    pub fn post(&mut self, message: ChatMessage) {
        if self.posts == 0 {
            self.loaded = true;
        }
        let slot = self.posts % CHAT_HISTORY as u64;
        self.posts += 1;
        self.changes.push((slot, message.clone()));
        self.recent.push_back(message);
        while self.recent.len() > CHAT_HOT {
            self.recent.pop_front();
        }
    }

    /// Whether memory holds the last `min(posts, CHAT_HOT)` messages.
    fn complete(&self) -> bool {
        self.loaded || self.posts == 0
    }

    /// The last `limit` messages, oldest first, if memory holds them.
    pub fn in_memory(&self, limit: usize) -> Option<Vec<ChatMessage>> {
        let all_in_memory = self.posts <= self.recent.len() as u64;
        (self.complete() && (limit <= self.recent.len() || all_in_memory))
            .then(|| self.recent.iter().skip(self.recent.len().saturating_sub(limit)).cloned().collect())
    }

    /// Takes the ring as read from the store (`Ctx::read_cold`): returns
    /// every stored message, oldest first, and keeps the last in memory.
    pub fn absorb(&mut self, parts: Vec<(String, Vec<u8>)>) -> Result<Vec<ChatMessage>, String> {
        let mut all = parts
            .into_iter()
            .map(|(name, value)| serde_json::from_slice(&value).map_err(|e| format!("chat part {name:?}: {e}")))
            .collect::<Result<Vec<ChatMessage>, String>>()?;
        all.sort_by_key(|m| m.id);
        self.recent = all.iter().skip(all.len().saturating_sub(CHAT_HOT)).cloned().collect();
        self.loaded = true;
        Ok(all)
    }

    /// Moves the chat of an older layout (hot parts by message id) into
    /// the ring.
    pub fn migrate(&mut self, old: impl DoubleEndedIterator<Item = ChatMessage>) {
        let mut keep: Vec<ChatMessage> = old.rev().take(CHAT_HISTORY).collect();
        keep.reverse();
        for m in keep {
            self.post(m);
        }
    }

    pub fn take_changes(&mut self, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        for (slot, m) in self.changes.drain(..) {
            out.push((format!("{PREFIX}{slot}"), serde_json::to_vec(&m).ok()));
        }
    }

    /// The messages in memory (introspection).
    pub fn recent(&self) -> impl Iterator<Item = &ChatMessage> {
        self.recent.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u64) -> ChatMessage {
        ChatMessage { id, player_id: "p".into(), text: format!("m{id}"), at_ms: id }
    }

    #[test]
    fn posts_overwrite_the_oldest_slot_and_memory_keeps_the_last_few() {
        let mut log = ChatLog::default();
        let mut stored = std::collections::BTreeMap::new();
        for id in 1..=(CHAT_HISTORY as u64 + 5) {
            log.post(msg(id));
            let mut out = Vec::new();
            log.take_changes(&mut out);
            assert_eq!(out.len(), 1, "one part a post");
            let (name, value) = out.pop().unwrap();
            stored.insert(name, value.unwrap());
        }
        assert_eq!(stored.len(), CHAT_HISTORY, "a ring: never more than the history");
        assert!(stored.contains_key("k/4") && !stored.contains_key(&format!("k/{CHAT_HISTORY}")));
        assert_eq!(log.recent().count(), CHAT_HOT);
        assert_eq!(log.in_memory(3).unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), [103, 104, 105]);

        // Activated again: memory is empty until the ring is read.
        let mut again: ChatLog = serde_json::from_value(serde_json::to_value(&log).unwrap()).unwrap();
        assert!(again.in_memory(1).is_none());
        again.post(msg(106));
        assert!(again.in_memory(1).is_none(), "one new message is not the history");
        let mut parts: Vec<(String, Vec<u8>)> = stored.into_iter().collect();
        parts.retain(|(n, _)| n != "k/5");
        parts.push(("k/5".into(), serde_json::to_vec(&msg(106)).unwrap()));
        let all = again.absorb(parts).unwrap();
        assert_eq!((all.first().unwrap().id, all.last().unwrap().id, all.len()), (7, 106, CHAT_HISTORY));
        assert_eq!(again.in_memory(CHAT_HOT).unwrap().last().unwrap().id, 106);
        assert!(again.in_memory(CHAT_HOT + 1).is_none(), "more than memory holds: read the ring");
    }

    #[test]
    fn a_new_guild_answers_in_memory_and_old_chat_moves_into_the_ring() {
        let mut log = ChatLog::default();
        assert_eq!(log.in_memory(50), Some(vec![]));
        log.post(msg(1));
        assert_eq!(log.in_memory(50).unwrap().len(), 1);

        let mut old = ChatLog::default();
        old.migrate((1..=120).map(msg));
        let mut out = Vec::new();
        old.take_changes(&mut out);
        assert_eq!(out.len(), CHAT_HISTORY, "the last hundred move");
        assert!(out[0].1.as_ref().is_some_and(|v| v.starts_with(br#"{"id":21,"#)), "{:?}", out[0]);
        assert_eq!(old.in_memory(CHAT_HOT).unwrap().last().unwrap().id, 120);
    }
}
