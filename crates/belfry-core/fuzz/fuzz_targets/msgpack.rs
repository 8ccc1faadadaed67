//! The msgpack parser over any message: never panics, and every packet it returns encodes to a
//! message that decodes to the same packet.
#![no_main]

use belfry_core::parser::msgpack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = msgpack::decode(data) {
        let message = msgpack::encode(&packet).expect("a decoded packet encodes");
        assert_eq!(msgpack::decode(&message).expect("re-decodes"), packet);
    }
});
