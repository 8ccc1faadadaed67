//! A request's query string, any text: the engine reads its `EIO`, `transport`, `sid` (and a v3
//! client's `b64`) as Node reads them, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = std::str::from_utf8(data) {
        belfry_engine::fuzzing::query(input);
    }
});
