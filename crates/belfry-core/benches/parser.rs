//! Socket.IO parser benchmarks: decode and encode of events, binary reassembly, and the msgpack
//! parser's decode and encode.
#![allow(missing_docs)]

use std::hint::black_box;

use belfry_core::{
    Str,
    parser::{Decoder, Packet, Payload, msgpack},
};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn events(c: &mut Criterion) {
    let small = Str::from(r#"2["chat",{"room":"lobby","text":"hello there","n":42}]"#);
    let large = Str::from(format!(
        r#"2/chat,17["bulk",[{}]]"#,
        (0..200)
            .map(|i| format!(r#"{{"id":{i},"name":"item {i}","tags":["a","b"]}}"#))
            .collect::<Vec<_>>()
            .join(",")
    ));
    let mut group = c.benchmark_group("decode");
    for (name, text) in [("event_small", &small), ("event_8KB", &large)] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            let mut decoder = Decoder::default();
            b.iter(|| decoder.decode_text(black_box(text.clone())));
        });
    }
    let binary =
        Str::from(r#"52-["up",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#);
    let attachment = Bytes::from(vec![1u8; 1024]);
    group.bench_function("binary_event_2x1KB", |b| {
        let mut decoder = Decoder::default();
        b.iter(|| {
            let _ = decoder.decode_text(black_box(binary.clone()));
            let _ = decoder.decode_binary(attachment.clone());
            decoder.decode_binary(attachment.clone())
        });
    });
    group.finish();

    let mut group = c.benchmark_group("encode");
    let packet = Packet::event(
        "/",
        Payload::json(r#"["chat",{"room":"lobby","text":"hello there","n":42}]"#),
        Some(7),
    );
    group.bench_function("event_small", |b| b.iter(|| black_box(&packet).encode()));
    group.bench_function("event_small_msgpack", |b| {
        b.iter(|| msgpack::encode(black_box(&packet)));
    });
    group.finish();

    // The msgpack parser: the same event as one binary message.
    let message = msgpack::encode(&packet).expect("an encodable packet");
    let mut group = c.benchmark_group("decode_msgpack");
    group.throughput(Throughput::Bytes(message.len() as u64));
    group.bench_function("event_small", |b| {
        b.iter(|| msgpack::decode(black_box(&message)));
    });
    group.finish();
}

criterion_group!(benches, events);
criterion_main!(benches);
