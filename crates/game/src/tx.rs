//! One step of a cross-entity transaction: an idempotent change applied to
//! a player under a transaction id.
//!
//! Every hub that moves value (guild donations and creation fees, market
//! listings and purchases, expedition rewards) does it in such steps. The
//! player remembers the outcomes of its recent steps by id
//! (`PlayerMsg::Apply`), so a step sent again after a timeout, a reconnect
//! or a restart returns its first outcome and never applies twice. The
//! caller must therefore tell a refusal (the rules said no: nothing
//! happened) from a call that failed (the step may or may not have
//! happened: it must be sent again with the same id). [`StepError`] keeps
//! the two apart, the same way for every hub.

use guildhall_entity::Runtime;

use crate::player::{Change, Player, PlayerMsg, PlayerReply, PlayerView};
use crate::GameError;

/// One step: `change` applied to a player under transaction id `tx`.
#[derive(Debug, Clone)]
pub struct TxStep {
    pub tx: String,
    pub change: Change,
    /// Publish the player's new state to its session.
    pub notify: bool,
    /// A notice for the player's session, with the update.
    pub notice: Option<String>,
}

impl TxStep {
    /// A step that tells the player's session nothing.
    pub fn new(tx: impl Into<String>, change: Change) -> Self {
        TxStep { tx: tx.into(), change, notify: false, notice: None }
    }

    /// Publishes the player's new state after the step.
    pub fn notify(mut self, notify: bool) -> Self {
        self.notify = notify;
        self
    }

    /// Publishes the player's new state with a notice.
    pub fn notice(mut self, notice: Option<String>) -> Self {
        if notice.is_some() {
            self.notify = true;
        }
        self.notice = notice;
        self
    }
}

/// Why a step did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The player refused it by the rules (not enough gold, cards): nothing
    /// changed, and sending it again gives the same refusal.
    Refused(GameError),
    /// The call failed (timeout, the player's node unreachable, a reply of
    /// the wrong shape): the step may or may not have applied. Send it
    /// again with the same id.
    Unknown(String),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Refused(e) => write!(f, "refused: {e}"),
            StepError::Unknown(why) => write!(f, "outcome unknown: {why}"),
        }
    }
}

/// Applies `step` to `player`, durably, at most once per transaction id;
/// returns the player's state after it.
pub async fn apply(rt: &Runtime, player: &str, step: TxStep) -> Result<PlayerView, StepError> {
    let TxStep { tx, change, notify, notice } = step;
    let msg = PlayerMsg::Apply { tx: tx.clone(), change, notify, notice };
    match rt.call::<Player>(player, msg).await {
        Ok(Ok(PlayerReply::Applied(view) | PlayerReply::Profile(view))) => Ok(view),
        Ok(Ok(other)) => Err(StepError::Unknown(format!("step {tx}: unexpected reply {other:?}"))),
        Ok(Err(refused)) => Err(StepError::Refused(refused)),
        Err(e) => {
            tracing::warn!(player, tx, error = %e, "transaction step did not complete; it is retried");
            Err(StepError::Unknown(format!("step {tx} on player {player}: {e}")))
        }
    }
}

/// A call to a player that is not itself a transaction step (a claim, a
/// read) with the same two ways to fail.
pub async fn call_player(rt: &Runtime, player: &str, msg: PlayerMsg) -> Result<PlayerReply, StepError> {
    match rt.call::<Player>(player, msg).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(refused)) => Err(StepError::Refused(refused)),
        Err(e) => Err(StepError::Unknown(format!("player {player}: {e}"))),
    }
}

/// The player's current state.
pub async fn player_view(rt: &Runtime, player: &str) -> Result<PlayerView, StepError> {
    match call_player(rt, player, PlayerMsg::Get).await? {
        PlayerReply::Profile(v) | PlayerReply::Applied(v) => Ok(v),
        other => Err(StepError::Unknown(format!("player {player}: unexpected reply {other:?}"))),
    }
}
