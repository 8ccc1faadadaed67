//! Engine.IO text packet decoding: never panics, and what decodes re-encodes to the same text.
#![no_main]

use belfry_proto::{Packet, Str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = Str::try_from(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    if let Ok(packet) = Packet::decode_text(text.clone()) {
        let encoded = packet
            .encode_text()
            .expect("decoded text packets have a text form");
        // Ping and pong drop data other than "probe"; everything else round-trips.
        if !matches!(
            packet,
            Packet::Ping | Packet::Pong | Packet::Close | Packet::Upgrade | Packet::Noop
        ) {
            assert_eq!(encoded, text.as_str());
        }
    }
});
