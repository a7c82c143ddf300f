//! Peer messages of any size over frames of a bounded size.
//!
//! Most OmniPaxos messages are small, but a complete snapshot or a long log suffix for a
//! lagging follower can be larger than any frame limit worth having: a limit the message passes
//! is one a hostile stream could make us allocate, and a message the limit refuses is resent
//! forever. So an authenticated peer stream carries each message as pieces of at most
//! [`PEER_CHUNK_BYTES`], each frame starting with one byte that says whether more pieces follow,
//! and the receiver joins them up to [`PEER_MESSAGE_BYTES_MAX`].

use bytes::{BufMut, Bytes, BytesMut};

/// Payload bytes in one frame.
pub const PEER_CHUNK_BYTES: usize = 1 << 20;
/// Largest frame on an authenticated peer stream: a piece and its header byte.
pub const PEER_FRAME_BYTES_MAX: usize = PEER_CHUNK_BYTES + 1;
/// Largest message a peer may send: the bound on one stream's reassembly buffer, and so on the
/// largest complete snapshot a follower can be caught up with.
pub const PEER_MESSAGE_BYTES_MAX: usize = 4 << 30;

/// Header of the last (often the only) piece of a message.
const LAST: u8 = 0;
/// Header of a piece that more pieces of the same message follow.
const MORE: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("empty peer frame")]
    Empty,
    #[error("peer frame with an unknown header byte {0}")]
    Header(u8),
    #[error("peer message beyond {PEER_MESSAGE_BYTES_MAX} bytes")]
    TooLarge,
}

/// The frames that carry `message`, in order.
pub fn split(message: &[u8]) -> impl Iterator<Item = Bytes> + '_ {
    let pieces = message.len().div_ceil(PEER_CHUNK_BYTES).max(1);
    (0..pieces).map(move |i| {
        let piece = &message[i * PEER_CHUNK_BYTES..((i + 1) * PEER_CHUNK_BYTES).min(message.len())];
        let mut frame = BytesMut::with_capacity(1 + piece.len());
        frame.put_u8(if i + 1 == pieces { LAST } else { MORE });
        frame.put_slice(piece);
        frame.freeze()
    })
}

/// Joins the pieces of one stream's messages.
#[derive(Default)]
pub struct Reassembly {
    partial: BytesMut,
}

impl Reassembly {
    /// Takes the next frame of the stream; returns the message it completes, if any.
    pub fn push(&mut self, mut frame: BytesMut) -> Result<Option<Bytes>, ChunkError> {
        let header = *frame.first().ok_or(ChunkError::Empty)?;
        let piece = frame.split_off(1);
        if header != LAST && header != MORE {
            return Err(ChunkError::Header(header));
        }
        if self.partial.len() + piece.len() > PEER_MESSAGE_BYTES_MAX {
            return Err(ChunkError::TooLarge);
        }
        if header == LAST && self.partial.is_empty() {
            return Ok(Some(piece.freeze()));
        }
        self.partial.extend_from_slice(&piece);
        Ok((header == LAST).then(|| std::mem::take(&mut self.partial).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(frames: impl Iterator<Item = Bytes>) -> Vec<Bytes> {
        let mut r = Reassembly::default();
        frames
            .filter_map(|f| r.push(BytesMut::from(&f[..])).unwrap())
            .collect()
    }

    #[test]
    fn messages_of_every_size_arrive_whole_over_bounded_frames() {
        for len in [
            0,
            1,
            PEER_CHUNK_BYTES - 1,
            PEER_CHUNK_BYTES,
            PEER_CHUNK_BYTES + 1,
            3 * PEER_CHUNK_BYTES + 7,
        ] {
            let message: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let frames: Vec<Bytes> = split(&message).collect();
            assert!(frames.iter().all(|f| f.len() <= PEER_FRAME_BYTES_MAX));
            assert_eq!(frames.len(), len.div_ceil(PEER_CHUNK_BYTES).max(1));
            let small = split(b"next").collect::<Vec<_>>();
            let joined = join(frames.into_iter().chain(small));
            assert_eq!(joined.len(), 2, "len {len}");
            assert_eq!(&joined[0][..], &message[..]);
            assert_eq!(&joined[1][..], b"next");
        }
    }

    #[test]
    fn frames_without_a_header_are_refused() {
        let mut r = Reassembly::default();
        assert_eq!(r.push(BytesMut::new()), Err(ChunkError::Empty));
        assert_eq!(
            r.push(BytesMut::from(&b"{\"paxos\":1}"[..])),
            Err(ChunkError::Header(b'{'))
        );
    }
}
