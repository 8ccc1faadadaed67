//! The Redis adapter's wire format against Node's own encoder (notepack.io, as
//! `@socket.io/redis-adapter` 8.x uses it), both ways.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use belfry::core::{
    Str,
    adapter::{BroadcastFlags, BroadcastOptions},
    parser::{Packet, PacketData, Payload},
};
use belfry_redis::wire::{decode_broadcast, encode_broadcast};
use belfry_tests::run_node;
use bytes::Bytes;
use serde_json::json;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn a_broadcast_from_node_decodes() {
    let node = run_node("redis_wire.mjs", &["encode"]).await;
    let broadcast = decode_broadcast(&unhex(node["hex"].as_str().unwrap())).unwrap();
    assert_eq!(broadcast.uid, "AbC123");
    assert_eq!(&*broadcast.packet.ns, "/chat");
    let PacketData::Event { payload, ack } = &broadcast.packet.data else {
        panic!("{broadcast:?}")
    };
    assert_eq!(*ack, None);
    // The Buffer is an attachment again. notepack 3 drops keys holding `undefined` and writes
    // `undefined` in an array as nil: null, as `JSON.stringify` has them.
    assert_eq!(
        &*payload.json,
        r#"["file",{"_placeholder":true,"num":0},{"n":1,"f":1.5,"big":1099511627776,"neg":-3,"s":"é","arr":[null]}]"#
    );
    assert_eq!(payload.attachments, vec![Bytes::from_static(&[0, 1, 2])]);
    assert_eq!(broadcast.opts.rooms, vec!["room"]);
    assert_eq!(broadcast.opts.except, vec!["muted"]);
    assert!(broadcast.opts.flags.volatile);
    assert_eq!(
        broadcast.opts.flags.timeout,
        Some(Duration::from_millis(1500))
    );
}

#[tokio::test]
async fn a_broadcast_from_belfry_decodes_in_node() {
    let packet = Packet {
        ns: Str::from("/"),
        data: PacketData::Event {
            payload: Payload::new(
                r#"["hello",{"_placeholder":true,"num":0},{"k":[1,2.5,"x",null,true]}]"#,
                vec![Bytes::from_static(b"\xff\x00")],
            ),
            ack: None,
        },
    };
    let opts = BroadcastOptions::new()
        .with_rooms(["a", "b"])
        .with_flags(BroadcastFlags::new().with_compress(true));
    let bytes = encode_broadcast("Rust42", &packet, &opts).unwrap();
    let node = run_node("redis_wire.mjs", &["decode", &hex(&bytes)]).await;
    assert_eq!(
        node,
        json!({
            "uid": "Rust42",
            "packet": {
                "type": 2,
                "data": ["hello", {"type": "Buffer", "data": [255, 0]}, {"k": [1, 2.5, "x", null, true]}],
                "nsp": "/",
            },
            "opts": {"rooms": ["a", "b"], "except": [], "flags": {"compress": true}},
        })
    );
}
