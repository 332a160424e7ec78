use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The address of an entity: its kind (e.g. "player") and its key within that
/// kind. The key is an `Arc<str>` and the kind a borrowed `&'static str`
/// where it can be (every kind's name is a constant) because ids are cloned
/// into every call's context, mailbox, subscription and log line: as a
/// `String` the kind cost an allocation per call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntityId {
    pub kind: Cow<'static, str>,
    pub key: Arc<str>,
}

impl EntityId {
    pub fn new(kind: impl Into<Cow<'static, str>>, key: impl Into<Arc<str>>) -> Self {
        Self { kind: kind.into(), key: key.into() }
    }

    /// The store key of this entity's snapshot: `e/{kind}/{key}`.
    pub fn storage_key(&self) -> Vec<u8> {
        storage_key(&self.kind, &self.key)
    }
}

pub(crate) fn storage_key(kind: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + kind.len() + key.len());
    k.extend_from_slice(b"e/");
    k.extend_from_slice(kind.as_bytes());
    k.push(b'/');
    k.extend_from_slice(key.as_bytes());
    k
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.key)
    }
}
