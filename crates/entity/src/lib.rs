//! The Guildhall entity runtime ("virtual entities").
//!
//! An entity is addressed by an [`EntityId`] (kind, key) and always exists
//! logically: the runtime activates it on its first message (loading its state
//! from the [`Store`](guildhall_store::Store)), runs its handler one message at
//! a time, writes its state back behind the scenes (write-behind, or durable
//! before the reply when the handler asks), and passivates it after an idle
//! time. Callers never know where an entity lives: they go through a
//! [`Directory`], which today always answers "here" and tomorrow answers with a
//! node of the cluster. Messages and replies are serde types for that reason.
//!
//! Architecture invariant: this crate knows nothing of the game or the network.

mod clock;
mod context;
mod directory;
mod entity;
mod error;
mod flusher;
mod host;
mod id;
mod instance;
mod introspect;
mod mailbox;
mod pubsub;
mod remote;
mod runtime;
mod task;

pub use clock::{Clock, ManualClock, SystemClock};
pub use context::Ctx;
pub use directory::{Directory, LocalDirectory, Location, NodeId};
pub use entity::Entity;
pub use error::CallError;
pub use id::EntityId;
pub use introspect::{EntityStats, KindStats};
pub use pubsub::{Event, Fanout, LocalFanout, PubSub, Subscriber, Subscription, SubscriptionId};
pub use remote::{Delivery, NoRemote, Remote, RemoteLetter, RemoteOutcome};
pub use runtime::{EntityRef, Runtime, RuntimeBuilder, RuntimeConfig};
