//! What every game operation called from outside the entities shares: the
//! server's wire edge, an admin console, a test or another node call the
//! areas' `ops` functions, which call entities with [`call`] and fail with
//! one error type, [`OpError`].

use std::fmt::Debug;

use guildhall_entity::{CallError, Entity, Runtime};

use crate::{ExpeditionError, GameError, GuildError, MarketError, PlayerError};

/// Why an operation did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The game refused it: nothing happened, and the refusal says why.
    #[error(transparent)]
    Refused(#[from] GameError),
    /// An entity did not answer (timeout, stopped, shutting down, on a node
    /// that cannot be reached): try again later.
    #[error("{0}; retry later")]
    Call(#[from] CallError),
    /// The operation is recorded and finishes by itself (a step waits for a
    /// player that did not answer); its outcome can be read later.
    #[error("{0}")]
    InProgress(String),
    /// An entity answered with a reply this operation does not expect: a
    /// bug, never the caller's fault.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}

macro_rules! refusal_from {
    ($($area:ty),*) => {$(
        impl From<$area> for OpError {
            fn from(e: $area) -> Self {
                OpError::Refused(e.into())
            }
        }
    )*};
}
refusal_from!(PlayerError, GuildError, MarketError, ExpeditionError);

/// Calls entity `key` of kind `E`, whose replies are the game's results.
pub async fn call<E, R>(rt: &Runtime, key: &str, msg: E::Msg) -> Result<R, OpError>
where
    E: Entity<Reply = Result<R, GameError>>,
{
    Ok(rt.call::<E>(key, msg).await??)
}

/// The error of a reply of the wrong shape.
pub fn unexpected(reply: impl Debug) -> OpError {
    OpError::Unexpected(format!("{reply:?}"))
}
