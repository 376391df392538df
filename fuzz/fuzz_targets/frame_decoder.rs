//! Fuzz target: the frame decoder fed arbitrary bytes, whole and in a chunking chosen by the
//! input. Both feedings must produce the same frames and the same error, and nothing may panic.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren_codec::{Frame, FrameDecoder};

fn drain(dec: &FrameDecoder, buf: &mut BytesMut, out: &mut Vec<Frame>) -> Option<String> {
    loop {
        match dec.decode(buf) {
            Ok(Some(f)) => {
                // Decoding the properties is part of what a peer can make the broker do.
                if let Frame::Header { header, .. } = &f {
                    let _ = header.properties.decode();
                }
                out.push(f);
            }
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, data)) = data.split_first() else { return };
    let dec = FrameDecoder::new(4096);

    let mut whole_frames = Vec::new();
    let whole_err = drain(&dec, &mut BytesMut::from(data), &mut whole_frames);

    let mut chunked_frames = Vec::new();
    let mut chunked_err = None;
    let mut buf = BytesMut::new();
    let step = usize::from(seed % 17) + 1;
    for chunk in data.chunks(step) {
        buf.extend_from_slice(chunk);
        chunked_err = drain(&dec, &mut buf, &mut chunked_frames);
        if chunked_err.is_some() {
            break;
        }
    }
    assert_eq!(whole_frames, chunked_frames);
    assert_eq!(whole_err, chunked_err);
});
