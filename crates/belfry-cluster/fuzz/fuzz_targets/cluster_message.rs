//! A message from another server of the cluster (a Redis channel, a Postgres notification or
//! attachment, a stream entry), JSON or msgpack, as anyone with access to the backend could
//! write it: decoding never panics, and a message that decodes survives its own msgpack
//! form unchanged.
#![no_main]

use belfry_cluster::ClusterMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = ClusterMessage::decode(data) else {
        return;
    };
    // Compared by their bytes: a NaN is not equal to itself.
    if let Ok(bytes) = message.to_msgpack() {
        let again = ClusterMessage::decode(&bytes).expect("its own msgpack form decodes");
        assert_eq!(
            again.to_msgpack().ok(),
            Some(bytes),
            "the msgpack form decodes to the same message"
        );
    }
    let _ = message.into_incoming();
});
