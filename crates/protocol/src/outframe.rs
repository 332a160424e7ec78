//! Outgoing envelopes whose bulk is shared between sessions.
//!
//! One published event (a guild chat line, a market feed) goes to every
//! subscribed session, and the pushes differ only in their sequence number.
//! Encoding the event once per session cost a deep clone and an encode per
//! recipient, and every unacknowledged copy sat in a replay buffer of its
//! own. Here the session-independent part of the `Push` message (its topic
//! and event fields) is encoded once, as a [`PushBody`]; each session adds a
//! head of at most [`MAX_HEAD`] bytes (the envelope's key and length and the
//! push's `seq`), kept inline in the [`OutFrame`]. The bytes on the wire are
//! exactly what prost writes for the whole envelope (tests check it).

use bytes::{BufMut, Bytes};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use crate::pb;

/// Longest inline head. A push's is at most 22 bytes: the envelope key (1),
/// the push's length (at most 10 as a varint), the seq key (1) and the seq
/// (at most 10). A response's without a message is at most 45: the key, its
/// length (at most 5: frames are far below 4 GiB), id, seq and status (11
/// each) and the payload's key and length (6).
pub const MAX_HEAD: usize = 48;

/// Field numbers (see guildhall.proto).
const ENVELOPE_RESPONSE_FIELD: u32 = 2;
const ENVELOPE_PUSH_FIELD: u32 = 3;
const RESPONSE_ID_FIELD: u32 = 1;
const RESPONSE_SEQ_FIELD: u32 = 2;
const RESPONSE_STATUS_FIELD: u32 = 3;
const RESPONSE_PAYLOAD_FIELD: u32 = 5;
const PUSH_SEQ_FIELD: u32 = 1;
const PUSH_TOPIC_FIELD: u32 = 2;
const PUSH_EVENT_FIELD: u32 = 3;

/// The topic and event fields of a `Push`, encoded once for every session
/// that delivers it. Cloning shares the bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct PushBody(Bytes);

impl PushBody {
    pub fn encode(topic: &str, event: &pb::Event) -> Self {
        // A Push without seq is exactly its topic and event fields; encoded
        // field by field so the event is not cloned into a Push first.
        let topic_len = if topic.is_empty() { 0 } else { 1 + encoded_len_varint(topic.len() as u64) + topic.len() };
        let mut buf = Vec::with_capacity(topic_len + prost::encoding::message::encoded_len(PUSH_EVENT_FIELD, event));
        if !topic.is_empty() {
            encode_key(PUSH_TOPIC_FIELD, WireType::LengthDelimited, &mut buf);
            encode_varint(topic.len() as u64, &mut buf);
            buf.put_slice(topic.as_bytes());
        }
        prost::encoding::message::encode(PUSH_EVENT_FIELD, event, &mut buf);
        Self(Bytes::from(buf))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What an [`OutFrame`]'s body is, and so how its head is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// The body is the whole envelope.
    Whole,
    /// The body is a [`PushBody`].
    Push,
    /// The body is a response's payload.
    Response,
}

/// One envelope to send: a body that may be shared with other frames, and
/// the few fields the envelope's head is computed from when it is written.
/// Replay buffers hold these for every unacknowledged message, so the head
/// is not stored: 56 bytes a frame, against 96 with an inline head.
#[derive(Clone, Debug)]
pub struct OutFrame {
    body: Bytes,
    /// The session's sequence number of this message (0: not sequenced).
    seq: u64,
    /// Response id (responses only).
    id: u64,
    /// Response status (responses only).
    status: i32,
    shape: Shape,
}

/// A head made on the stack.
struct Head {
    bytes: [u8; MAX_HEAD],
    len: usize,
}

impl Head {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl OutFrame {
    /// An envelope encoded whole (pongs, closes, errors); `seq` is the
    /// sequence number it carries, if any.
    pub fn whole(envelope: Bytes, seq: u64) -> Self {
        Self { body: envelope, seq, id: 0, status: 0, shape: Shape::Whole }
    }

    /// An unsequenced envelope (a ping, a pong, a close, an answer before
    /// login), encoded whole.
    pub fn unsequenced(kind: pb::envelope::Kind) -> Self {
        Self::whole(crate::encode_envelope(kind), 0)
    }

    /// The envelope `Push { seq, <body> }`.
    pub fn push(seq: u64, body: &PushBody) -> Self {
        Self { body: body.0.clone(), seq, id: 0, status: 0, shape: Shape::Push }
    }

    /// The envelope `Response { id, seq, status, payload }` whose payload
    /// bytes are shared, not copied: the session remembers the same answer
    /// for retransmissions while the frame waits for its ack. A response
    /// with a message (an error) is encoded whole.
    pub fn response(id: u64, seq: u64, status: pb::Status, message: &str, payload: &Bytes) -> Self {
        if !message.is_empty() {
            let whole =
                pb::Response { id, seq, status: status as i32, message: message.to_string(), payload: payload.clone() };
            return Self::whole(crate::encode_envelope(pb::envelope::Kind::Response(whole)), seq);
        }
        Self { body: payload.clone(), seq, id, status: status as i32, shape: Shape::Response }
    }

    /// The session's sequence number of this message (0 if none).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn head(&self) -> Head {
        let mut bytes = [0u8; MAX_HEAD];
        let mut w = &mut bytes[..];
        let varint_field = |n: u64| if n == 0 { 0 } else { 1 + encoded_len_varint(n) };
        // proto3 leaves zero fields out, as prost does.
        let put_varint_field = |w: &mut &mut [u8], field: u32, value: u64| {
            if value != 0 {
                encode_key(field, WireType::Varint, w);
                encode_varint(value, w);
            }
        };
        match self.shape {
            Shape::Whole => {}
            Shape::Push => {
                let push_len = varint_field(self.seq) + self.body.len();
                encode_key(ENVELOPE_PUSH_FIELD, WireType::LengthDelimited, &mut w);
                encode_varint(push_len as u64, &mut w);
                put_varint_field(&mut w, PUSH_SEQ_FIELD, self.seq);
            }
            Shape::Response => {
                let status = self.status as u64;
                let payload = &self.body;
                let payload_head = if payload.is_empty() { 0 } else { 1 + encoded_len_varint(payload.len() as u64) };
                let response_len = varint_field(self.id)
                    + varint_field(self.seq)
                    + varint_field(status)
                    + payload_head
                    + payload.len();
                encode_key(ENVELOPE_RESPONSE_FIELD, WireType::LengthDelimited, &mut w);
                encode_varint(response_len as u64, &mut w);
                put_varint_field(&mut w, RESPONSE_ID_FIELD, self.id);
                put_varint_field(&mut w, RESPONSE_SEQ_FIELD, self.seq);
                put_varint_field(&mut w, RESPONSE_STATUS_FIELD, status);
                if !payload.is_empty() {
                    encode_key(RESPONSE_PAYLOAD_FIELD, WireType::LengthDelimited, &mut w);
                    encode_varint(payload.len() as u64, &mut w);
                }
            }
        }
        let len = MAX_HEAD - w.remaining_mut();
        Head { bytes, len }
    }

    /// Length of the envelope (without a frame header).
    pub fn len(&self) -> usize {
        self.head().len + self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Appends the envelope, preceded by its 4-byte big-endian length when
    /// `length_prefix` (the TCP framing).
    pub fn write_to(&self, buf: &mut impl BufMut, length_prefix: bool) {
        let head = self.head();
        if length_prefix {
            buf.put_u32((head.len + self.body.len()) as u32);
        }
        buf.put_slice(head.as_slice());
        buf.put_slice(&self.body);
    }

    /// The envelope as one buffer (a copy unless it is whole), for
    /// transports that take a message whole.
    pub fn to_bytes(&self) -> Bytes {
        if self.shape == Shape::Whole {
            return self.body.clone();
        }
        let mut buf = Vec::with_capacity(self.len());
        self.write_to(&mut buf, false);
        Bytes::from(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::envelope::Kind;
    use crate::{decode_envelope, encode_envelope};

    /// splitmix64: a seeded, dependency-free source of test cases.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn event(text_len: usize) -> pb::Event {
        pb::Event { kind: Some(pb::event::Kind::Notice(pb::Notice { text: "x".repeat(text_len) })) }
    }

    #[test]
    fn a_shared_push_is_byte_for_byte_what_prost_encodes() {
        let seed = 0x5EED_0001;
        println!("seed {seed:#x}");
        let mut rng = seed;
        let mut seqs = vec![0, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX];
        seqs.extend((0..200).map(|_| next(&mut rng) >> (next(&mut rng) % 64)));
        for (i, seq) in seqs.into_iter().enumerate() {
            let topic = "t".repeat((next(&mut rng) % 70) as usize * (i % 3));
            // Bodies around the varint boundaries of the push length.
            let text = [0, 1, 100, 120, 200, 16_370, 20_000][i % 7];
            let ev = if i % 11 == 0 { pb::Event::default() } else { event(text) };
            let expected = encode_envelope(Kind::Push(pb::Push { seq, topic: topic.clone(), event: Some(ev.clone()) }));
            let body = PushBody::encode(&topic, &ev);
            let frame = OutFrame::push(seq, &body);
            assert_eq!(frame.len(), expected.len(), "seq {seq} topic {} text {text}", topic.len());
            assert_eq!(frame.to_bytes(), expected, "seq {seq} topic {} text {text}", topic.len());
        }
    }

    #[test]
    fn a_response_with_a_shared_payload_is_byte_for_byte_what_prost_encodes() {
        let seed = 0x5EED_0002;
        println!("seed {seed:#x}");
        let mut rng = seed;
        let edges = [0, 1, 127, 128, 16_384, u32::MAX as u64, u64::MAX];
        for i in 0..300usize {
            let pick = |rng: &mut u64| {
                let r = next(rng);
                if r.is_multiple_of(3) {
                    edges[(r >> 8) as usize % edges.len()]
                } else {
                    next(rng) >> (r % 64)
                }
            };
            let (id, seq) = (pick(&mut rng), pick(&mut rng));
            let status = [pb::Status::Ok, pb::Status::NotEnoughGold, pb::Status::Unavailable][i % 3];
            let message = if i % 5 == 0 { "why not" } else { "" };
            let payload = Bytes::from(vec![7u8; [0, 1, 127, 128, 3_000, 20_000][i % 6]]);
            let expected = encode_envelope(Kind::Response(pb::Response {
                id,
                seq,
                status: status as i32,
                message: message.into(),
                payload: payload.clone(),
            }));
            let frame = OutFrame::response(id, seq, status, message, &payload);
            assert_eq!(frame.to_bytes(), expected, "id {id} seq {seq} {status:?} {message:?} {} bytes", payload.len());
            if message.is_empty() && !payload.is_empty() {
                assert_eq!(frame.body().as_ptr(), payload.as_ptr(), "the payload is shared, not copied");
            }
        }
    }

    #[test]
    fn frames_of_one_body_share_it_and_decode_with_their_own_seq() {
        let body = PushBody::encode("guild/g1", &event(300));
        let a = OutFrame::push(7, &body);
        let b = OutFrame::push(300, &body);
        assert_eq!(a.body().as_ptr(), b.body().as_ptr(), "one copy of the event");
        for (frame, seq) in [(a, 7), (b, 300)] {
            match decode_envelope(&frame.to_bytes()).unwrap() {
                Kind::Push(p) => {
                    assert_eq!(p.seq, seq);
                    assert_eq!(p.topic, "guild/g1");
                    assert_eq!(p.event, Some(event(300)));
                }
                other => panic!("not a push: {other:?}"),
            }
        }
    }

    #[test]
    fn a_buffered_frame_stays_small() {
        // Every unacknowledged message of every session is one of these.
        assert!(std::mem::size_of::<OutFrame>() <= 56, "{}", std::mem::size_of::<OutFrame>());
    }

    #[test]
    fn a_whole_envelope_is_sent_as_it_is() {
        let bytes = encode_envelope(Kind::Pong(pb::Pong { nonce: 9 }));
        let frame = OutFrame::whole(bytes.clone(), 0);
        assert_eq!(frame.to_bytes().as_ptr(), bytes.as_ptr(), "not copied");
        assert_eq!(frame.len(), bytes.len());
        let mut framed = Vec::new();
        frame.write_to(&mut framed, true);
        assert_eq!(&framed[..4], (bytes.len() as u32).to_be_bytes());
        assert_eq!(&framed[4..], &bytes[..]);
    }
}
