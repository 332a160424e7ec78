//! Connection events, for applications and for tests that must wait for a
//! reconnect or a resume without sleeping.

use guildhall_protocol::Status;

/// Something that happened to the client's connection or session. Received
/// from [`crate::Client::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A connection was established (a lazy connect before a call, or a
    /// reconnect after a drop; not the one made by `Client::connect`).
    Connected,
    /// The connection was lost (or dropped on purpose by
    /// [`crate::Client::drop_connection`]).
    Disconnected,
    /// The server sent `Close{status, reason}`; `Disconnected` follows, then
    /// either a reconnect or `Closed`.
    CloseReceived(Status, String),
    /// A login succeeded; a new session started.
    LoggedIn { player_id: String },
    /// The session was resumed on a new connection. `replayed` counts the
    /// sequenced messages the server replayed before its ResumeResponse;
    /// unanswered requests have been re-sent.
    Resumed { replayed: u64 },
    /// The session cannot be resumed (status SESSION_EXPIRED, REPLAY_GAP,
    /// TOKEN_EXPIRED or TOKEN_INVALID and the server's reason). Pending calls
    /// failed with [`crate::ClientError::SessionLost`]. The client stays
    /// usable: the application decides whether to log in again.
    SessionLost(Status, String),
    /// Reconnecting gave up (resume window passed, or the attempt limit);
    /// pending calls failed with [`crate::ClientError::Disconnected`].
    ReconnectFailed { attempts: u32 },
    /// The client ended for good: the server's terminal Close status (e.g.
    /// SESSION_TAKEN_OVER) and reason, or `Status::Ok` after
    /// [`crate::Client::close`]. Every later call fails with
    /// [`crate::ClientError::Closed`].
    Closed(Status, String),
}
