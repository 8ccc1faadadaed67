//! The RESP reader of the Redis subscriber over anything Redis (or whoever sits on its port)
//! could send, in reads of any sizes: never panics, and the frames do not depend on how the
//! bytes were split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes say where the input is split into reads.
    let (splits, input) = match data {
        [a, b, rest @ ..] => (
            vec![usize::from(*a), usize::from(*a) + usize::from(*b)],
            rest,
        ),
        _ => (Vec::new(), data),
    };
    belfry_redis::fuzzing::read_frames(input, &splits);
});
