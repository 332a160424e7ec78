//! Where does an entity live? The runtime asks a [`Directory`] before every
//! delivery. The local directory answers "here" for everything; the cluster's
//! directory (backed by the lease registry) will answer with a node.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A cluster node's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeId(pub String);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The answer of a [`Directory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Deliver to (or activate in) this node's runtime.
    Local,
    /// Another node hosts it: forward the serialised message there.
    Remote(NodeId),
}

/// Maps an entity id (kind, key) to the node that hosts it. Takes the parts
/// rather than an [`crate::EntityId`] because it runs on every call and should
/// not force an allocation.
pub trait Directory: Send + Sync + 'static {
    fn locate(&self, kind: &str, key: &str) -> Location;
}

/// A single-node directory: every entity lives here.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalDirectory;

impl Directory for LocalDirectory {
    fn locate(&self, _kind: &str, _key: &str) -> Location {
        Location::Local
    }
}
