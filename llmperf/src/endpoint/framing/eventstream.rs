//! Incremental decoding of AWS's binary `application/vnd.amazon.eventstream`
//! framing (SageMaker's `InvokeEndpointWithResponseStream`, Bedrock's
//! streams).
//!
//! A frame is a 12-byte prelude (total length, headers length, CRC32 of the
//! first 8 bytes), the headers, the payload and a CRC32 of everything before
//! it. Bytes arrive split anywhere, so [`FrameDecoder`] buffers them and
//! hands each complete frame to [`aws_smithy_eventstream`], which checks the
//! message CRC and parses the headers.
//!
//! It checks the prelude itself as soon as its 12 bytes are in: the crate's
//! streaming decoder trusts the claimed length until the whole frame has
//! arrived, so a corrupted length would make it wait for gigabytes that
//! never come instead of failing at once.
//!
//! ```
//! use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
//! use llmperf::endpoint::framing::eventstream::FrameDecoder;
//!
//! let message = Message::new(&b"hello"[..])
//!     .add_header(Header::new(":event-type", HeaderValue::String("PayloadPart".into())));
//! let mut bytes = Vec::new();
//! aws_smithy_eventstream::frame::write_message_to(&message, &mut bytes).unwrap();
//!
//! let mut decoder = FrameDecoder::new();
//! decoder.push(&bytes[..7]);
//! assert!(decoder.next_message().unwrap().is_none());
//! decoder.push(&bytes[7..]);
//! assert_eq!(decoder.next_message().unwrap(), Some(message));
//! ```

use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::BytesMut;

/// Bytes of the prelude: total length, headers length, prelude CRC.
const PRELUDE_BYTES: usize = 12;
/// The smallest frame: a prelude and the message CRC.
const MIN_FRAME_BYTES: usize = PRELUDE_BYTES + 4;
/// The largest frame accepted. AWS caps an event-stream message at 16 MiB;
/// anything claiming more is a corrupted length, not a slow frame.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Buffers event-stream bytes and yields complete, checked messages.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: BytesMut,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        FrameDecoder::default()
    }

    /// Adds the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed, or
    /// why the framing is broken (a checksum mismatch, an impossible length,
    /// a bad header). After an error the stream cannot be resynchronized:
    /// the caller should stop.
    pub fn next_message(&mut self) -> Result<Option<Message>, String> {
        let Some(prelude) = self.buffer.get(..PRELUDE_BYTES) else {
            return Ok(None);
        };
        let total = be_u32(prelude, 0) as usize;
        let headers = be_u32(prelude, 4) as usize;
        let claimed_crc = be_u32(prelude, 8);
        let crc = crc32fast::hash(prelude.get(..8).unwrap_or_default());
        if crc != claimed_crc {
            return Err(format!(
                "event-stream prelude checksum mismatch (computed {crc:#010x}, frame says {claimed_crc:#010x})"
            ));
        }
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&total) {
            return Err(format!(
                "event-stream frame length {total} is outside {MIN_FRAME_BYTES}..={MAX_FRAME_BYTES} bytes"
            ));
        }
        if headers > total - MIN_FRAME_BYTES {
            return Err(format!(
                "event-stream headers length {headers} does not fit a {total}-byte frame"
            ));
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        let frame = self.buffer.split_to(total).freeze();
        aws_smithy_eventstream::frame::read_message_from(frame)
            .map(Some)
            .map_err(|error| format!("invalid event-stream frame: {error}"))
    }

    /// Bytes held that do not yet make a complete frame; more than zero when
    /// the stream ends means the last frame was cut off.
    pub fn pending_bytes(&self) -> usize {
        self.buffer.len()
    }
}

/// The big-endian `u32` at `at` (zero past the end, which callers rule out).
fn be_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

/// The string value of header `name`, if the message has one.
pub fn header_str<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|header| header.name().as_str() == name)
        .and_then(|header| match header.value() {
            HeaderValue::String(value) => Some(value.as_str()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use aws_smithy_types::event_stream::Header;

    use super::*;

    fn frame(event_type: &str, payload: &[u8]) -> Vec<u8> {
        let message = Message::new(payload.to_vec())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event_type.to_string().into()),
            ));
        let mut bytes = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&message, &mut bytes).unwrap();
        bytes
    }

    fn decode_all(decoder: &mut FrameDecoder) -> Result<Vec<Vec<u8>>, String> {
        let mut payloads = Vec::new();
        while let Some(message) = decoder.next_message()? {
            payloads.push(message.payload().to_vec());
        }
        Ok(payloads)
    }

    #[test]
    fn frames_split_at_every_offset_decode_the_same() {
        let mut stream = frame("PayloadPart", b"data:{\"a\":1}\n\n");
        stream.extend(frame("PayloadPart", b""));
        stream.extend(frame("PayloadPart", b"x"));
        for cut in 0..=stream.len() {
            let mut decoder = FrameDecoder::new();
            decoder.push(&stream[..cut]);
            let mut payloads = decode_all(&mut decoder).unwrap();
            decoder.push(&stream[cut..]);
            payloads.extend(decode_all(&mut decoder).unwrap());
            assert_eq!(
                payloads,
                vec![b"data:{\"a\":1}\n\n".to_vec(), vec![], b"x".to_vec()],
                "cut at {cut}"
            );
            assert_eq!(decoder.pending_bytes(), 0);
        }
        // Byte by byte.
        let mut decoder = FrameDecoder::new();
        let mut payloads = Vec::new();
        for byte in &stream {
            decoder.push(std::slice::from_ref(byte));
            payloads.extend(decode_all(&mut decoder).unwrap());
        }
        assert_eq!(payloads.len(), 3);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_an_error_not_a_panic_or_a_wrong_payload() {
        let good = frame("PayloadPart", b"data:{\"token\":{\"text\":\" hi\"}}\n\n");
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            let mut decoder = FrameDecoder::new();
            decoder.push(&bad);
            match decoder.next_message() {
                Err(_) => {}
                // A length now larger than the bytes: waits (and the stream's
                // end reports it as cut off).
                Ok(None) => assert!(decoder.pending_bytes() > 0, "flip at {at}"),
                Ok(Some(message)) => panic!("flip at {at} decoded as {message:?}"),
            }
        }
    }

    #[test]
    fn corrupted_crcs_and_lengths_are_named() {
        let good = frame("PayloadPart", b"abc");
        let mut bad_prelude = good.clone();
        bad_prelude[9] ^= 1;
        let mut decoder = FrameDecoder::new();
        decoder.push(&bad_prelude);
        let error = decoder.next_message().unwrap_err();
        assert!(error.contains("prelude checksum"), "{error}");

        let mut bad_message = good.clone();
        let last = bad_message.len() - 1;
        bad_message[last] ^= 1;
        let mut decoder = FrameDecoder::new();
        decoder.push(&bad_message);
        let error = decoder.next_message().unwrap_err();
        assert!(error.contains("invalid event-stream frame"), "{error}");

        // A huge length with a valid prelude CRC fails at once instead of
        // waiting for 4 GiB.
        let mut huge = vec![0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0];
        huge.extend(crc32fast::hash(&huge).to_be_bytes());
        let mut decoder = FrameDecoder::new();
        decoder.push(&huge);
        let error = decoder.next_message().unwrap_err();
        assert!(error.contains("outside"), "{error}");
    }

    #[test]
    fn a_truncated_frame_is_left_pending() {
        let good = frame("PayloadPart", b"abc");
        let mut decoder = FrameDecoder::new();
        decoder.push(&good[..good.len() - 1]);
        assert_eq!(decoder.next_message().unwrap(), None);
        assert_eq!(decoder.pending_bytes(), good.len() - 1);
    }

    #[test]
    fn headers_are_read_by_name() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame("PayloadPart", b""));
        let message = decoder.next_message().unwrap().unwrap();
        assert_eq!(header_str(&message, ":event-type"), Some("PayloadPart"));
        assert_eq!(header_str(&message, ":message-type"), Some("event"));
        assert_eq!(header_str(&message, ":exception-type"), None);
    }
}
