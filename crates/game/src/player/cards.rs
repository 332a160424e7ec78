//! A card kind's place in a collection.

use serde::{Deserialize, Serialize};

/// Copies and level of one card kind in a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardStack {
    pub count: u32,
    pub level: u32,
}
