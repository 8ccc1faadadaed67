//! Polling payload splitting: never panics, and valid payloads survive a join and split.
#![no_main]

use belfry_proto::payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded: Result<Vec<_>, _> = payload::decode(bytes::Bytes::copy_from_slice(data)).collect();
    if let Ok(packets) = decoded {
        let again: Result<Vec<_>, _> = payload::decode(payload::encode(&packets).into()).collect();
        assert_eq!(again.as_ref(), Ok(&packets));
    }
});
