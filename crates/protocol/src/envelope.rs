//! Helpers to encode and decode [`Envelope`]s.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use crate::pb::{envelope::Kind, Envelope};

/// Encodes one envelope (no frame header), for WebSocket messages.
pub fn encode_envelope(kind: Kind) -> Bytes {
    let env = Envelope { kind: Some(kind) };
    let mut buf = BytesMut::with_capacity(env.encoded_len());
    env.encode(&mut buf).expect("BytesMut grows");
    buf.freeze()
}

/// Encodes one envelope with its 4-byte length header, ready for a TCP stream.
pub fn encode_frame(kind: Kind) -> Bytes {
    let env = Envelope { kind: Some(kind) };
    let len = env.encoded_len();
    let mut buf = BytesMut::with_capacity(4 + len);
    buf.put_u32(len as u32);
    env.encode(&mut buf).expect("BytesMut grows");
    buf.freeze()
}

/// Why bytes are not an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("{0}")]
    Decode(#[from] prost::DecodeError),
    #[error("envelope carries no message")]
    Empty,
}

/// Decodes one envelope; an envelope with no kind is as malformed as bad bytes.
pub fn decode_envelope(bytes: &[u8]) -> Result<Kind, EnvelopeError> {
    Envelope::decode(bytes)?.kind.ok_or(EnvelopeError::Empty)
}
