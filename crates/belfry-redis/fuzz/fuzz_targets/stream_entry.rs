//! A Redis stream entry and a stored session of the streams protocol, as anyone with access to
//! Redis could write them: reading never panics, and an entry read survives being written
//! again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<(String, Vec<u8>)>, String)| {
    let (fields, session) = input;
    belfry_redis::fuzzing::stream_entry(&fields, &session);
});
