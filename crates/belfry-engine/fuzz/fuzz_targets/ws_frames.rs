//! A client's WebSocket frames, any bytes: the frame codec never panics, reads the same
//! whatever the reads, and (without compression) reads as tungstenite does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte: compression agreed (its low bit); the next two: where the input is cut
    // into reads.
    let (inflate, splits, input) = match data {
        [flags, a, b, rest @ ..] => (
            flags & 1 == 1,
            vec![usize::from(*a), usize::from(*a) + usize::from(*b)],
            rest,
        ),
        _ => (false, Vec::new(), data),
    };
    belfry_engine::fuzzing::ws_frames(input, &splits, 300, inflate);
});
