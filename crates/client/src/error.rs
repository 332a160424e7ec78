//! The one error type of the SDK.
//!
//! It separates what the caller usually wants to tell apart: the server
//! *refused* a call (a [`Status`] with its reason: retry makes no sense unless
//! the status says so), the call's outcome is *unknown* (timeout, lost
//! connection), the *session* is gone (log in again), or the client was
//! *closed* (for good). It is `Clone` because one event (a lost session, a
//! closed client) fails every pending call with the same error.

use std::io;
use std::sync::Arc;

use guildhall_protocol::{EnvelopeError, FrameError, Status};

/// Why a call (or a connection) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a status other than OK; `message` is its reason.
    #[error("refused by the server: {status:?}: {message}")]
    Status { status: Status, message: String },
    /// No answer within [`crate::ClientConfig::request_timeout`]. Whether the
    /// server executed the request is unknown.
    #[error("no answer within the request timeout")]
    Timeout,
    /// The connection was lost and is not being resumed (not logged in, auto
    /// reconnect off, or reconnecting gave up). Whether the server executed
    /// the request is unknown.
    #[error("connection lost")]
    Disconnected,
    /// The session cannot be resumed (SESSION_EXPIRED, REPLAY_GAP,
    /// TOKEN_EXPIRED, TOKEN_INVALID): the application must log in again.
    #[error("session lost ({status:?}): {message}")]
    SessionLost { status: Status, message: String },
    /// A message from the server did not decode.
    #[error("decode: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A socket error (connect, read or write).
    #[error("i/o: {0}")]
    Io(Arc<io::Error>),
    /// The client ended: the server closed with a status after which
    /// reconnecting is wrong (SESSION_TAKEN_OVER, FRAME_TOO_LARGE,
    /// MALFORMED_FRAME), or, with status OK, [`crate::Client::close`] was
    /// called. Also what a pre-login call gets when the server closes its
    /// connection with a reason (e.g. SERVER_FULL).
    #[error("connection closed ({status:?}): {reason}")]
    Closed { status: Status, reason: String },
    /// A local protocol violation: a frame over the maximum, a WebSocket text
    /// message, a bad URL, a call that makes no sense in the current state.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The protocol status behind this error, if there is one: the refusal
    /// status, the session-loss status or the close status.
    pub fn status(&self) -> Option<Status> {
        match self {
            ClientError::Status { status, .. }
            | ClientError::SessionLost { status, .. }
            | ClientError::Closed { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's (or the client's) human-readable reason, if there is one.
    pub fn message(&self) -> Option<&str> {
        match self {
            ClientError::Status { message, .. } | ClientError::SessionLost { message, .. } => Some(message),
            ClientError::Closed { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// True when the server refused the call with `status`.
    pub fn is_status(&self, status: Status) -> bool {
        self.status() == Some(status)
    }

    pub(crate) fn io(e: io::Error) -> Self {
        ClientError::Io(Arc::new(e))
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::io(e)
    }
}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => ClientError::io(e),
            e @ FrameError::TooLarge { .. } => ClientError::Protocol(e.to_string()),
        }
    }
}

impl From<EnvelopeError> for ClientError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::Decode(e) => ClientError::Decode(e),
            EnvelopeError::Empty => ClientError::Protocol("envelope carries no message".into()),
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error as W;
        match e {
            W::Io(e) => ClientError::io(e),
            W::Url(e) => ClientError::Protocol(format!("websocket url: {e}")),
            W::Capacity(e) => ClientError::Protocol(e.to_string()),
            other => ClientError::io(io::Error::other(other)),
        }
    }
}

/// Converts a wire status code; codes this build does not know become
/// INTERNAL (never OK: an unknown code must not read as success).
pub(crate) fn status_from_wire(code: i32) -> Status {
    Status::try_from(code).unwrap_or(Status::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_helper_covers_every_status_carrying_variant() {
        let refused = ClientError::Status { status: Status::RateLimited, message: "slow down".into() };
        assert_eq!(refused.status(), Some(Status::RateLimited));
        assert!(refused.is_status(Status::RateLimited));
        assert_eq!(refused.message(), Some("slow down"));
        let lost = ClientError::SessionLost { status: Status::ReplayGap, message: String::new() };
        assert_eq!(lost.status(), Some(Status::ReplayGap));
        let closed = ClientError::Closed { status: Status::SessionTakenOver, reason: "other device".into() };
        assert_eq!(closed.status(), Some(Status::SessionTakenOver));
        assert_eq!(ClientError::Timeout.status(), None);
        assert_eq!(ClientError::Disconnected.status(), None);
    }

    #[test]
    fn unknown_wire_statuses_never_read_as_ok() {
        assert_eq!(status_from_wire(0), Status::Ok);
        assert_eq!(status_from_wire(7), Status::RateLimited);
        assert_eq!(status_from_wire(9999), Status::Internal);
    }
}
