//! The codec against the Autobahn test suite's server cases, written from RFC 6455 and RFC 7692
//! (the suite itself does not run here): 1 framing, 2 pings and pongs, 3 reserved bits, 4
//! opcodes, 5 fragmentation, 6 UTF-8, 7 close handling, 9 limits, 12 and 13 compression. Each
//! case is fed whole, a byte at a time and in uneven chops (the suite's "in chops" variants),
//! and must read the same every way; each is also checked against tungstenite where it reads
//! the same frames (not compression, which it does not implement).

use super::{
    oracle::{self, End},
    tests::client_frame,
    *,
};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame: FIN and the opcode (and reserved bits) in `first`.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(first, payload, MASK)
}

fn frames(list: &[(u8, &[u8])]) -> Vec<u8> {
    list.iter()
        .flat_map(|(first, payload)| frame(*first, payload))
        .collect()
}

/// What the server did with `wire`: the messages, how reading ended, and the frames it queued.
#[derive(Debug, PartialEq)]
struct Run {
    messages: Vec<(u8, Vec<u8>)>,
    end: Option<ReadEnd>,
    answers: Vec<u8>,
}

/// Feeds `wire` with messages up to `max` bytes, whole and in chops: every way must agree.
fn run_with(wire: &[u8], max: usize, inflate: bool) -> Run {
    let mut runs = [wire.len().max(1), 1, 3, 7, 128].map(|step| {
        let mut reader = FrameReader::new(max, inflate);
        let mut outbox = Outbox::new(None);
        let (messages, end) = tests::feed(&mut reader, &mut outbox, wire, step);
        // A pong held back while frames wait is written after them.
        outbox.queue_pong();
        Run {
            messages,
            end,
            answers: outbox.out.to_vec(),
        }
    });
    let whole = std::mem::replace(
        &mut runs[0],
        Run {
            messages: Vec::new(),
            end: None,
            answers: Vec::new(),
        },
    );
    for run in &runs[1..] {
        assert_eq!(run.messages, whole.messages, "messages read in chops");
        assert_eq!(run.end, whole.end, "end read in chops");
    }
    whole
}

fn run(wire: &[u8]) -> Run {
    let got = run_with(wire, 1 << 20, false);
    // The oracle reads the same; a frame cut short at the end is waited for by both.
    let ours = oracle::belfry(wire, 1 << 20, false);
    let theirs = oracle::tungstenite(wire, 1 << 20);
    if let Err(diff) = oracle::agree(wire, 1 << 20, &ours, &theirs) {
        panic!("the oracle differs:\n{diff}");
    }
    // Whole frames: where one waits, both wait.
    assert_eq!(
        ours.end == End::NeedsMore,
        theirs.end == End::NeedsMore,
        "{ours:?} {theirs:?}"
    );
    got
}

fn text(s: &str) -> (u8, Vec<u8>) {
    (1, s.as_bytes().to_vec())
}

/// A server frame, as the server queues it.
fn server(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_header(&mut out, false, opcode, payload.len());
    out.extend_from_slice(payload);
    out
}

fn violation(code: u16) -> Option<ReadEnd> {
    Some(ReadEnd::Violation(code))
}

#[test]
fn case_1_framing_text_and_binary_of_every_length_class() {
    for len in [0, 125, 126, 127, 128, 65535, 65536] {
        let text_payload = "*".repeat(len);
        let binary_payload = vec![0xfe; len];
        let wire = frames(&[(0x81, text_payload.as_bytes()), (0x82, &binary_payload)]);
        let got = run(&wire);
        assert_eq!(
            got.messages,
            vec![text(&text_payload), (2, binary_payload)],
            "{len}"
        );
        assert_eq!(got.end, None);
        assert!(got.answers.is_empty());
    }
}

#[test]
fn case_2_pings_are_answered_and_pongs_ignored() {
    // 2.1-2.3: empty, text and binary payloads.
    for payload in [&b""[..], b"Hello, world!", &[0x00, 0xff, 0xfe, 0xfd, 0xfc]] {
        let got = run(&frame(0x89, payload));
        assert_eq!(got.answers, server(10, payload));
        assert!(got.messages.is_empty() && got.end.is_none());
    }
    // 2.4: 125 bytes, the most a control frame holds.
    let got = run(&frame(0x89, &[0xfe; 125]));
    assert_eq!(got.answers, server(10, &[0xfe; 125]));
    // 2.5: 126 bytes fail the connection.
    assert_eq!(run(&frame(0x89, &[0xfe; 126])).end, violation(1002));
    // 2.7, 2.8: unsolicited pongs are ignored.
    let got = run(&frames(&[
        (0x8a, b""),
        (0x8a, b"unsolicited"),
        (0x81, b"after"),
    ]));
    assert_eq!(got.messages, vec![text("after")]);
    assert!(got.answers.is_empty());
    // 2.9: a pong, then a ping: only the ping is answered.
    let got = run(&frames(&[(0x8a, b"a"), (0x89, b"b")]));
    assert_eq!(got.answers, server(10, b"b"));
    // 2.10, 2.11: ten pings while the answer to the first waits: the first is answered, then the
    // latest (RFC 6455 §5.5.3 lets an endpoint answer only the most recent ping).
    let pings: Vec<u8> = (0..10u8).flat_map(|i| frame(0x89, &[i])).collect();
    let got = run(&pings);
    assert_eq!(got.answers, [server(10, &[0]), server(10, &[9])].concat());
}

#[test]
fn case_3_reserved_bits_fail_the_connection() {
    // 3.1-3.7: RSV1 to RSV3 in every combination, on text, binary, ping and close frames; what
    // came before is delivered.
    for (rsv, opcode) in [
        (0x20, 1),
        (0x40, 1),
        (0x60, 1),
        (0x10, 2),
        (0x50, 2),
        (0x30, 9),
        (0x70, 8),
    ] {
        let wire = frames(&[(0x81, b"before"), (0x80 | rsv | opcode, b""), (0x89, b"")]);
        let got = run(&wire);
        assert_eq!(got.messages, vec![text("before")], "{rsv:#x} {opcode}");
        assert_eq!(got.end, violation(1002), "{rsv:#x} {opcode}");
    }
}

#[test]
fn case_4_reserved_opcodes_fail_the_connection() {
    // 4.1.x: non-control 3 to 7; 4.2.x: control 11 to 15; with and without payloads.
    for opcode in (3..=7).chain(11..=15) {
        for payload in [&b""[..], b"reserved"] {
            let wire = frames(&[(0x81, b"before"), (0x80 | opcode, payload), (0x89, b"")]);
            let got = run(&wire);
            assert_eq!(got.messages, vec![text("before")], "{opcode}");
            assert_eq!(got.end, violation(1002), "{opcode}");
        }
    }
}

#[test]
fn case_5_fragmentation() {
    // 5.1, 5.2: fragmented control frames.
    assert_eq!(
        run(&frames(&[(0x09, b"frag"), (0x80, b"ment")])).end,
        violation(1002)
    );
    assert_eq!(
        run(&frames(&[(0x0a, b"frag"), (0x80, b"ment")])).end,
        violation(1002)
    );
    // 5.3-5.5: a text in two fragments.
    let got = run(&frames(&[(0x01, b"frag"), (0x80, b"ment")]));
    assert_eq!((got.messages, got.end), (vec![text("fragment")], None));
    // 5.6-5.8: a ping between the fragments is answered; the message is whole.
    let got = run(&frames(&[(0x01, b"frag"), (0x89, b"p"), (0x80, b"ment")]));
    assert_eq!(got.messages, vec![text("fragment")]);
    assert_eq!(got.answers, server(10, b"p"));
    // 5.9-5.14: a continuation with nothing to continue, final or not.
    for first in [0x80, 0x00] {
        let wire = frames(&[(first, b"orphan"), (0x81, b"never")]);
        let got = run(&wire);
        assert!(got.messages.is_empty());
        assert_eq!(got.end, violation(1002));
    }
    // 5.15: a message, then a continuation of nothing.
    let wire = frames(&[(0x01, b"a"), (0x80, b"b"), (0x80, b"c"), (0x81, b"d")]);
    let got = run(&wire);
    assert_eq!((got.messages, got.end), (vec![text("ab")], violation(1002)));
    // 5.16-5.18: a new message inside a fragmented one.
    for first in [0x01, 0x81, 0x82] {
        let wire = frames(&[(0x01, b"a"), (first, b"b"), (0x80, b"c")]);
        assert_eq!(run(&wire).end, violation(1002), "{first:#x}");
    }
    // 5.19, 5.20: five fragments with pings between them; binary too.
    let wire = frames(&[
        (0x02, b"1"),
        (0x00, b"2"),
        (0x89, b"x"),
        (0x00, b"3"),
        (0x89, b"y"),
        (0x00, b"4"),
        (0x80, b"5"),
    ]);
    let got = run(&wire);
    assert_eq!(got.messages, vec![(2, b"12345".to_vec())]);
    assert_eq!(got.answers, [server(10, b"x"), server(10, b"y")].concat());
    // Fragments of length zero.
    let got = run(&frames(&[(0x01, b""), (0x00, b""), (0x80, b"")]));
    assert_eq!(got.messages, vec![text("")]);
}

/// Texts valid in UTF-8, and byte sequences that are not.
const VALID: &[&str] = &[
    "",
    "Hello-µ@ßöäüàá-UTF-8!!",
    "κόσμε",
    "\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}",
    "\u{fffe}\u{ffff}\u{fdd0}\u{fffd}",
    "\u{d7ff}\u{e000}",
];
const INVALID: &[&[u8]] = &[
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
    b"\x80",
    b"\xbf",
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\xf0\x80\x80\xaf",
    b"\xf8\x88\x80\x80\xaf",
    b"\xfc\x84\x80\x80\x80\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xfe",
    b"\xff",
    b"\xc0",
    b"\xe0\x80",
];

#[test]
fn case_6_utf8() {
    for valid in VALID {
        let bytes = valid.as_bytes();
        // 6.x.1-2: whole; then split at every byte into two fragments (a character may be cut).
        assert_eq!(run(&frame(0x81, bytes)).messages, vec![text(valid)]);
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            let got = run(&frames(&[(0x01, a), (0x80, b)]));
            assert_eq!(
                (got.messages, got.end),
                (vec![text(valid)], None),
                "{valid} at {at}"
            );
        }
        // 6.x.3: a frame per byte.
        let mut wire: Vec<u8> = bytes.iter().flat_map(|b| frame(0x00, &[*b])).collect();
        if bytes.is_empty() {
            wire = frame(0x81, b"");
        } else {
            wire[0] |= 1;
            let last = wire.len() - frame(0x00, &[0]).len();
            wire[last] |= 0x80;
        }
        assert_eq!(run(&wire).messages, vec![text(valid)], "{valid} by bytes");
    }
    for invalid in INVALID {
        let got = run(&frame(0x81, invalid));
        assert_eq!(
            (got.messages.len(), got.end),
            (0, violation(1007)),
            "{invalid:x?}"
        );
        // 6.4.x fail fast: the first fragment is invalid, and the connection fails before the
        // message ends (the final fragment never arrives).
        let mut fragment = invalid.to_vec();
        fragment.extend_from_slice(b"valid tail");
        if std::str::from_utf8(&fragment).is_err()
            && std::str::from_utf8(&fragment)
                .unwrap_err()
                .error_len()
                .is_some()
        {
            assert_eq!(
                run(&frame(0x01, &fragment)).end,
                violation(1007),
                "{invalid:x?}"
            );
        }
    }
    // A message that ends inside a character.
    assert_eq!(
        run(&frames(&[(0x01, b"ok \xe2\x82"), (0x80, b"")])).end,
        violation(1007)
    );
    // Binary messages are not checked.
    assert_eq!(
        run(&frame(0x82, b"\xff\xfe")).messages,
        vec![(2, b"\xff\xfe".to_vec())]
    );
}

#[test]
fn case_7_close_handling() {
    let close = |code: u16, reason: &[u8]| [&code.to_be_bytes()[..], reason].concat();
    // 7.1.1: a message, then a close: delivered, and the close echoed.
    let got = run(&frames(&[(0x81, b"hello"), (0x88, &close(1000, b""))]));
    assert_eq!(got.messages, vec![text("hello")]);
    assert_eq!(got.end, Some(ReadEnd::Closed));
    assert_eq!(got.answers, server(8, &close(1000, b"")));
    // 7.1.2-7.1.4: nothing after a close is read; it is answered once.
    let got = run(&frames(&[
        (0x88, b""),
        (0x88, &close(1000, b"")),
        (0x89, b"late"),
        (0x81, b"late"),
    ]));
    assert!(got.messages.is_empty());
    assert_eq!(got.answers, server(8, b""));
    // 7.1.5: a close inside a fragmented message ends it unread.
    let got = run(&frames(&[
        (0x01, b"frag"),
        (0x88, &close(1000, b"")),
        (0x80, b"ment"),
    ]));
    assert!(got.messages.is_empty());
    assert_eq!(got.end, Some(ReadEnd::Closed));
    // 7.1.6: a large message, then a close.
    let large = vec![b'x'; 256 * 1024];
    let got = run(&frames(&[(0x81, &large), (0x88, &close(1000, b""))]));
    assert_eq!(got.messages.len(), 1);
    // 7.3.1-7.3.6: payload lengths: empty, one byte, a code, a code and a reason, the most a
    // control frame holds, one more.
    assert_eq!(run(&frame(0x88, b"")).answers, server(8, b""));
    assert_eq!(run(&frame(0x88, b"\x03")).end, violation(1002));
    assert_eq!(
        run(&frame(0x88, &close(1000, b""))).answers,
        server(8, &close(1000, b""))
    );
    let got = run(&frame(0x88, &close(1000, b"Hello World!")));
    assert_eq!(
        got.answers,
        server(8, &close(1000, b"")),
        "the code, without the reason"
    );
    assert_eq!(
        run(&frame(0x88, &close(1000, &[b'*'; 123]))).end,
        Some(ReadEnd::Closed)
    );
    assert_eq!(
        run(&frame(0x88, &close(1000, &[b'*'; 124]))).end,
        violation(1002)
    );
    // 7.5.1: a reason that is not UTF-8.
    assert_eq!(
        run(&frame(
            0x88,
            &close(
                1000,
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"
            )
        ))
        .end,
        violation(1007)
    );
    // 7.7.x: valid codes are echoed (1012 to 1014 are in the IANA registry; Node's `ws` takes
    // them too).
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
    ] {
        let got = run_with(&frame(0x88, &close(code, b"")), 1 << 20, false);
        assert_eq!(got.answers, server(8, &close(code, b"")), "{code}");
    }
    // 7.9.x, 7.13.x: invalid codes fail the connection.
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        assert_eq!(
            run(&frame(0x88, &close(code, b""))).end,
            violation(1002),
            "{code}"
        );
    }
}

#[test]
fn case_9_limits() {
    // 9.1.x, 9.2.x: messages up to the limit, in one frame or in fragments of every size.
    const MAX: usize = 1 << 20;
    for frame_size in [64, 256, 1024, 4096, 65536, MAX] {
        let payload: Vec<u8> = (0..MAX).map(|i| b'a' + (i % 26) as u8).collect();
        let mut wire = Vec::new();
        let chunks: Vec<&[u8]> = payload.chunks(frame_size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 { 1 } else { 0 };
            let fin = if i + 1 == chunks.len() { 0x80 } else { 0 };
            wire.extend(frame(fin | opcode, chunk));
        }
        let mut reader = FrameReader::new(MAX, false);
        let mut outbox = Outbox::new(None);
        let (messages, end) = tests::feed(&mut reader, &mut outbox, &wire, 65536);
        assert_eq!(end, None, "{frame_size}");
        assert_eq!(messages, vec![(1, payload)], "{frame_size}");
    }
    // One byte over: 1009, decided on the header of the frame that goes over.
    let over = frame(0x82, &vec![0; MAX + 1]);
    assert_eq!(run_with(&over[..14], MAX, false).end, violation(1009));
    let wire = frames(&[(0x02, &vec![0; MAX - 10]), (0x80, &[0; 11])]);
    assert_eq!(run_with(&wire, MAX, false).end, violation(1009));
    // A header announcing 2^64 - 1 bytes reserves nothing.
    let mut huge = vec![0x82, 0xff];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    huge.extend_from_slice(&MASK);
    assert_eq!(run_with(&huge, MAX, false).end, violation(1009));
    // Control frames are not part of a message: a ping near the limit passes.
    let wire = frames(&[(0x02, &[0; 95]), (0x89, b"ping ping!"), (0x80, &[0; 5])]);
    let got = run_with(&wire, 100, false);
    assert_eq!((got.messages.len(), got.end), (1, None));
}

/// `data` compressed on its own (RFC 7692 §7.2.1: without the final empty block's tail).
fn compressed(data: &[u8]) -> Vec<u8> {
    super::super::deflate::tests::deflate_raw(data)
}

#[test]
fn case_12_compressed_messages_of_every_size() {
    // 12.x: payloads of 16 B to 128 KiB, text and binary, in one frame and in fragments; each
    // read the same as its uncompressed message is read by tungstenite.
    for size in [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072] {
        let payload: Vec<u8> = (0..size).map(|i| b"Hello, world! "[i % 14]).collect();
        let deflated = compressed(&payload);
        for (opcode, first) in [(1, 0xc1), (2, 0xc2)] {
            let whole = frame(first, &deflated);
            let (a, b) = deflated.split_at(deflated.len() / 2);
            let fragmented = frames(&[(first & 0x7f, a), (0x89, b""), (0x80, b)]);
            let plain = frame(0x80 | opcode, &payload);
            let theirs = oracle::tungstenite(&plain, 1 << 20);
            for wire in [whole, fragmented] {
                let got = run_with(&wire, 1 << 20, true);
                assert_eq!(got.messages, theirs.messages, "{size}");
                assert_eq!(got.end, None);
            }
        }
    }
}

#[test]
fn case_13_compression_rules() {
    // RSV1 marks a message's first frame only: on a continuation or a control frame it is a
    // violation; without the extension agreed, everywhere.
    let deflated = compressed(b"hello hello hello");
    let (a, b) = deflated.split_at(4);
    assert_eq!(
        run_with(&frames(&[(0x41, a), (0xc0, b)]), 1 << 20, true).end,
        violation(1002)
    );
    assert_eq!(
        run_with(&frame(0xc9, b""), 1 << 20, true).end,
        violation(1002)
    );
    assert_eq!(
        run_with(&frame(0xc1, &deflated), 1 << 20, false).end,
        violation(1002)
    );
    // Uncompressed messages still pass where compression was agreed.
    assert_eq!(
        run_with(&frame(0x81, b"plain"), 1 << 20, true).messages,
        vec![text("plain")]
    );
    // Not deflate data: 1007; inflated to more than the limit: 1009; inflated text not UTF-8: 1007.
    assert_eq!(
        run_with(&frame(0xc1, &[0xff; 20]), 1 << 20, true).end,
        violation(1007)
    );
    let bomb = compressed(&vec![b'a'; 200_000]);
    assert_eq!(
        run_with(&frame(0xc2, &bomb), 100_000, true).end,
        violation(1009)
    );
    assert_eq!(
        run_with(&frame(0xc1, &compressed(b"\xff\xfe")), 1 << 20, true).end,
        violation(1007)
    );
    // Each message is inflated on its own (client_no_context_takeover): two in a row.
    let wire = frames(&[(0xc1, &deflated), (0xc1, &deflated)]);
    let hello = text("hello hello hello");
    assert_eq!(
        run_with(&wire, 1 << 20, true).messages,
        vec![hello.clone(), hello]
    );
    // The server's compressed frames inflate to what was sent.
    let compressor = Compressor::new(16, usize::MAX);
    let mut out = BytesMut::new();
    let message = "a server message, long enough to compress".repeat(20);
    compressor.compress_frames(&server(1, message.as_bytes()), &mut out);
    let head = parse_header(&out).expect("a frame");
    assert!(head.rsv1 && head.fin && head.opcode == 1);
    let inflated = super::super::deflate::inflate(&out[head.size..], 1 << 20).expect("inflates");
    assert_eq!(inflated, message.as_bytes());
}
