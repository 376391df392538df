//! The read buffer's sizing ([`super::make_read_room`]) with the frame decoder and frames kept
//! alive the way queued messages keep them.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use warren_codec::FrameDecoder;

use super::{READ_LARGE, READ_SMALL, make_read_room};

/// A body frame of `len` payload bytes on channel 1.
fn body_frame(len: usize) -> Vec<u8> {
    let mut f = vec![3u8, 0, 1];
    f.extend_from_slice(&(len as u32).to_be_bytes());
    f.extend(std::iter::repeat_n(7u8, len));
    f.push(0xCE);
    f
}

/// Reads a socket that always has `stream` bytes waiting (a fast publisher), decoding and
/// keeping the last `kept` frames alive; answers the room offered to each read.
fn rooms(frame: &[u8], reads: usize, kept: usize, read_at_most: usize) -> Vec<usize> {
    let decoder = FrameDecoder::new(128 * 1024);
    let mut inbuf = BytesMut::with_capacity(READ_SMALL);
    let mut large = false;
    let mut last_read = 0;
    let mut alive: VecDeque<warren_codec::Frame> = VecDeque::new();
    let mut at = 0usize;
    let mut rooms = Vec::new();
    for _ in 0..reads {
        make_read_room(&mut inbuf, last_read, &mut large);
        let room = inbuf.capacity() - inbuf.len();
        rooms.push(room);
        let n = room.min(read_at_most);
        for _ in 0..n {
            inbuf.extend_from_slice(&[frame[at]]);
            at = (at + 1) % frame.len();
        }
        last_read = n;
        while let Some(f) = decoder.decode(&mut inbuf).expect("well-formed frames") {
            alive.push_back(f);
            if alive.len() > kept {
                alive.pop_front();
            }
        }
    }
    rooms
}

#[test]
fn a_busy_connection_reads_64_kib_at_a_time_though_frames_stay_alive() {
    // 1 KiB messages, the last two still referenced (being packed) when the next read comes:
    // the decoder's reserve for a partial frame reallocates a shared buffer. Before the fix,
    // every read got 3249 bytes of room.
    let frame = body_frame(1024);
    let rooms = rooms(&frame, 200, 2, usize::MAX);
    let small = rooms[5..].iter().filter(|&&r| r < READ_LARGE / 2).count();
    assert!(small * 10 <= rooms.len(), "rooms offered: {rooms:?}");
    let total: usize = rooms.iter().sum();
    assert!(
        total / rooms.len() >= READ_LARGE / 2,
        "rooms offered: {rooms:?}"
    );
}

#[test]
fn a_quiet_connection_keeps_a_small_buffer() {
    let frame = body_frame(100);
    let rooms = rooms(&frame, 200, 2, 500);
    assert!(
        rooms.iter().all(|&r| r <= READ_SMALL),
        "rooms offered: {rooms:?}"
    );
}

#[test]
fn a_partial_frame_survives_the_move_to_a_large_buffer() {
    let decoder = FrameDecoder::new(128 * 1024);
    let frame = body_frame(3000);
    let mut inbuf = BytesMut::with_capacity(READ_SMALL);
    inbuf.extend_from_slice(&frame[..2500]);
    let mut large = false;
    make_read_room(&mut inbuf, 2500, &mut large);
    assert!(large);
    assert!(inbuf.capacity() >= READ_LARGE);
    inbuf.extend_from_slice(&frame[2500..]);
    let Some(warren_codec::Frame::Body { payload, .. }) = decoder.decode(&mut inbuf).unwrap()
    else {
        panic!("a body frame");
    };
    assert_eq!(payload, Bytes::from(vec![7u8; 3000]));
}
