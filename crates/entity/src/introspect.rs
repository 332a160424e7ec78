//! What the runtime shows about itself: nothing in it is a black box.

use serde::Serialize;

/// Live instances of one kind on this node.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct KindStats {
    pub kind: String,
    /// Active (in-memory) instances.
    pub active: usize,
    /// Instances with state not yet written to the store.
    pub dirty: usize,
    /// Letters waiting in all mailboxes of this kind.
    pub queued: usize,
    /// The deepest mailbox of this kind.
    pub max_mailbox_depth: usize,
}

/// One live instance.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EntityStats {
    pub key: String,
    pub mailbox_depth: usize,
    pub dirty: bool,
    /// Milliseconds since its last letter.
    pub idle_ms: u64,
}
