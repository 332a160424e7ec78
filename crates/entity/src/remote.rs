//! Delivery to entities on other nodes: the seam the cluster's mesh plugs
//! into.
//!
//! When the [`crate::Directory`] places an entity on another node, the
//! runtime serialises the message (entity messages and replies are serde
//! types for this) into a [`RemoteLetter`] and hands it to its [`Remote`].
//! On the node that hosts the entity, the transport hands the letter to
//! [`crate::Runtime::receive`], which delivers it like a local one and
//! serialises the reply. A call is then the same call wherever its entity
//! lives; only its cost differs.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::{CallError, NodeId};

/// A message for an entity on another node, serialised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLetter {
    pub kind: String,
    pub key: String,
    /// The message, as the kind's `Msg` serialises to JSON.
    pub msg: Vec<u8>,
    /// A call waits for the reply; a cast does not.
    pub wants_reply: bool,
}

/// What a delivery comes back with: for a call, the serialised reply.
pub type RemoteOutcome = Result<Option<Vec<u8>>, CallError>;

/// A future of a delivery.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = RemoteOutcome> + Send + 'a>>;

/// Carries letters to other nodes. The runtime bounds every call by its
/// call timeout; an implementation should still fail fast (with
/// [`CallError::Unreachable`]) for a node it knows is gone.
pub trait Remote: Send + Sync + 'static {
    fn deliver(&self, node: &NodeId, letter: RemoteLetter) -> Delivery<'_>;
}

/// A node alone: no other node to deliver to.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRemote;

impl Remote for NoRemote {
    fn deliver(&self, node: &NodeId, _letter: RemoteLetter) -> Delivery<'_> {
        let node = node.clone();
        Box::pin(async move { Err(CallError::Unreachable(node)) })
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CallError> {
    serde_json::to_vec(value).map_err(|e| CallError::Codec(e.to_string()))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(bytes).map_err(|e| CallError::Codec(e.to_string()))
}
