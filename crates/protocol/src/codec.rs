//! Length-prefixed framing: a 4-byte big-endian length, then that many bytes.
//!
//! The decoder checks the announced length *before* buffering anything, so a
//! peer announcing a 10 MiB frame is refused after four bytes rather than after
//! the server has allocated and read 10 MiB.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Default maximum frame size: 64 KiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Length of the frame header.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced (or we tried to send) a frame over the maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// The underlying stream failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Tokio codec for Guildhall frames. Decodes to the frame body (one encoded
/// `Envelope`) and encodes any byte slice as a frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge { len, max: self.max_frame });
        }
        if src.len() < HEADER_LEN + len {
            // Reserve only what this frame still needs: never more than max_frame.
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len).freeze()))
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        let body = item.as_ref();
        if body.len() > self.max_frame {
            return Err(FrameError::TooLarge { len: body.len(), max: self.max_frame });
        }
        dst.reserve(HEADER_LEN + body.len());
        dst.put_u32(body.len() as u32);
        dst.put_slice(body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_partial_frames() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::new();
        codec.encode(b"hello", &mut buf).unwrap();
        codec.encode(b"", &mut buf).unwrap();
        let mut partial = buf.split_to(3);
        assert!(codec.decode(&mut partial).unwrap().is_none());
        partial.unsplit(buf);
        assert_eq!(codec.decode(&mut partial).unwrap().unwrap(), &b"hello"[..]);
        assert_eq!(codec.decode(&mut partial).unwrap().unwrap(), &b""[..]);
        assert!(codec.decode(&mut partial).unwrap().is_none());
    }

    #[test]
    fn oversized_announcement_is_refused_before_buffering() {
        let mut codec = FrameCodec::new(64 * 1024);
        let mut buf = BytesMut::from(&(10u32 * 1024 * 1024).to_be_bytes()[..]);
        match codec.decode(&mut buf) {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!(len, 10 * 1024 * 1024);
                assert_eq!(max, 64 * 1024);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(buf.capacity() < 1024, "no buffer was grown for the refused frame");
    }

    #[test]
    fn encoder_refuses_oversized_frames() {
        let mut codec = FrameCodec::new(4);
        let mut buf = BytesMut::new();
        assert!(matches!(codec.encode(b"12345", &mut buf), Err(FrameError::TooLarge { .. })));
    }
}
