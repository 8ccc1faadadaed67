//! Engine.IO codec benchmarks: packet decode/encode and polling payload split/join.
#![allow(missing_docs)]

use std::hint::black_box;

use belfry_engine::{Packet, Str, payload};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn packets(c: &mut Criterion) {
    let text = Str::from(format!("4{}", "x".repeat(256)));
    let mut group = c.benchmark_group("packet");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("decode_text_256B", |b| {
        b.iter(|| Packet::decode_text(black_box(text.clone())));
    });
    let message = Packet::Message(Str::from("x".repeat(256)));
    group.bench_function("encode_text_256B", |b| {
        b.iter(|| black_box(&message).encode_text());
    });
    group.finish();
}

fn payloads(c: &mut Criterion) {
    let batch: Vec<Packet> = (0..64)
        .map(|i| {
            if i % 8 == 0 {
                Packet::Binary(Bytes::from(vec![7u8; 128]))
            } else {
                Packet::Message(Str::from(format!("2[\"event\",{{\"n\":{i}}}]")))
            }
        })
        .collect();
    let encoded = Bytes::from(payload::encode(&batch));
    let mut group = c.benchmark_group("payload");
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("encode_64_packets", |b| {
        b.iter(|| payload::encode(black_box(&batch)));
    });
    group.bench_function("decode_64_packets", |b| {
        b.iter(|| {
            payload::decode(black_box(encoded.clone()))
                .filter(Result::is_ok)
                .count()
        });
    });
    let tiny = Bytes::from(b"6\x1e".repeat(100_000));
    group.throughput(Throughput::Bytes(tiny.len() as u64));
    group.bench_function("decode_100k_noops", |b| {
        b.iter(|| payload::decode(black_box(tiny.clone())).count());
    });
    group.finish();
}

criterion_group!(benches, packets, payloads);
criterion_main!(benches);
