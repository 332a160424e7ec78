//! The Guildhall client wire format.
//!
//! * [`pb`]: the protobuf messages generated from `proto/guildhall.proto`.
//! * [`codec`]: length-prefixed framing with a configurable maximum frame size.
//! * [`method`]: the method names a [`pb::Request`] can carry.
//!
//! This crate knows nothing of servers or games: it is the shared language of
//! the server, the Rust client SDK and any other client.

pub mod codec;
pub mod envelope;
pub mod method;
pub mod outframe;

/// Generated protobuf types (package `guildhall.v1`).
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/guildhall.v1.rs"));
}

pub use codec::{FrameCodec, FrameError, DEFAULT_MAX_FRAME};
pub use envelope::{decode_envelope, encode_envelope, encode_frame, EnvelopeError};
pub use outframe::{OutFrame, PushBody};
pub use pb::Status;
