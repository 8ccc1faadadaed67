//! The stateful Socket.IO decoder over any sequence of text and binary frames: never panics,
//! never holds more attachments than its cap, and every packet it returns encodes back to a
//! text it decodes again to the same packet.
#![no_main]

use belfry_core::{Str, parser::Decoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(3);
    // Frames are separated by 0xff; a frame starting with 0xfe is binary, the rest text.
    for frame in data.split(|&b| b == 0xff) {
        let result = match frame.split_first() {
            Some((0xfe, rest)) => decoder.decode_binary(bytes::Bytes::copy_from_slice(rest)),
            _ => match std::str::from_utf8(frame) {
                Ok(text) => decoder.decode_text(Str::from(text)),
                Err(_) => continue,
            },
        };
        if let Ok(Some(packet)) = result {
            assert!(packet.attachments().len() <= 3);
            let mut again = Decoder::new(3);
            let mut out = again
                .decode_text(Str::from(packet.encode()))
                .expect("re-decodes");
            for attachment in packet.attachments() {
                out = again.decode_binary(attachment.clone()).expect("re-decodes");
            }
            assert_eq!(out.as_ref(), Some(&packet));
        }
    }
});
