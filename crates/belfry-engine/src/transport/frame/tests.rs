//! The codec's own tests: reads cut anywhere, unmasking, compression, the answers it queues.

use super::*;

#[test]
fn messages_of_every_length_are_copied_whole() {
    for len in [0, 1, 32, SHORT - 1, SHORT, SHORT + 1, 255, 256, 4096] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let copied = copy(&payload);
        assert_eq!(copied, payload, "{len} bytes");
        // Shared and sliced, as the decoder does, both ends still read the same bytes.
        let shared = copied.clone();
        drop(copied);
        assert_eq!(shared.slice(len / 2..), payload[len / 2..], "{len} bytes");
    }
}

/// A client frame: masked with `mask`.
pub(crate) fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_u8(first);
    let len = payload.len();
    if len < 126 {
        out.put_u8(0x80 | len as u8);
    } else if len <= 0xffff {
        out.put_u8(0x80 | 126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0x80 | 127);
        out.put_u64(len as u64);
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A reader of messages up to 1 MiB, and its outbox.
pub(crate) fn reader(inflate: bool) -> (FrameReader, Outbox) {
    (FrameReader::new(1 << 20, inflate), Outbox::new(None))
}

/// Feeds `wire` in pieces of `step` bytes, as the connection does; returns the messages as
/// (opcode, bytes) and the end, if any.
pub(crate) fn feed(
    reader: &mut FrameReader,
    writer: &mut Outbox,
    wire: &[u8],
    step: usize,
) -> (Vec<(u8, Vec<u8>)>, Option<ReadEnd>) {
    let mut held = Vec::new();
    let mut messages = Vec::new();
    for piece in wire.chunks(step) {
        held.extend_from_slice(piece);
        let result = reader.frames(writer, &mut held, &mut |m| {
            messages.push(match m {
                Incoming::Text(t) => (1, t.as_bytes().to_vec()),
                Incoming::Binary(b) => (2, b.to_vec()),
            });
            true
        });
        match result {
            Ok((used, _)) => drop(held.drain(..used)),
            Err(end) => return (messages, Some(end)),
        }
    }
    (messages, None)
}

proptest::proptest! {
    /// Any bytes, cut anywhere: no panic, and the messages and the end do not depend on
    /// where the reads were cut.
    #[test]
    fn any_input_cut_anywhere_reads_the_same(
        wire in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        frames in proptest::collection::vec(
            (proptest::prelude::any::<u8>(), proptest::collection::vec(0u8..128, 0..140)),
            0..6,
        ),
        step in 1usize..64,
        inflate in proptest::prelude::any::<bool>(),
    ) {
        // Random bytes, then well-formed frames with random first bytes (opcodes, FIN and
        // reserved bits): the rules are reached, not only the header parser.
        let mut input = wire;
        for (first, payload) in &frames {
            input.extend(client_frame(*first, payload, [7, 1, 2, 9]));
        }
        let (mut r, mut w) = reader(inflate);
        r.max = 100;
        let whole = feed(&mut r, &mut w, &input, input.len().max(1));
        let (mut r, mut w) = reader(inflate);
        r.max = 100;
        let cut = feed(&mut r, &mut w, &input, step);
        proptest::prop_assert_eq!(whole, cut);
    }
}

#[test]
fn unmasking_matches_the_byte_rule() {
    for len in 0..40 {
        let data: Vec<u8> = (0..len as u8).collect();
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut fast = data.clone();
        unmask(&mut fast, mask);
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(fast, slow, "{len}");
    }
}

#[test]
fn frames_split_anywhere_make_the_same_messages() {
    let mut wire = client_frame(0x81, b"4hello", [1, 2, 3, 4]);
    wire.extend(client_frame(
        0x01,
        "4é".as_bytes().split_at(2).0,
        [5, 6, 7, 8],
    ));
    wire.extend(client_frame(0x89, b"p", [5, 6, 7, 8]));
    wire.extend(client_frame(
        0x80,
        "4é".as_bytes().split_at(2).1,
        [9, 9, 9, 9],
    ));
    wire.extend(client_frame(0x82, &[0u8; 300], [0, 1, 0, 1]));
    for step in [1, 2, 3, 7, 64, wire.len()] {
        let (mut r, mut w) = reader(false);
        let (messages, end) = feed(&mut r, &mut w, &wire, step);
        assert_eq!(end, None);
        assert_eq!(
            messages,
            vec![
                (1, b"4hello".to_vec()),
                (1, "4é".as_bytes().to_vec()),
                (2, vec![0u8; 300])
            ],
            "{step}"
        );
        assert_eq!(&w.out[..], &[0x8a, 1, b'p'], "the ping is answered");
    }
}

#[test]
fn compressed_messages_are_inflated() {
    let text = "hello hello hello hello".repeat(10);
    let compressed = super::deflate::tests::deflate_raw(text.as_bytes());
    let (a, b) = compressed.split_at(compressed.len() / 2);
    let mut wire = client_frame(0x41, a, [1, 2, 3, 4]);
    wire.extend(client_frame(0x80, b, [9, 9, 9, 9]));
    wire.extend(client_frame(0xc2, &compressed, [3, 3, 3, 3]));
    let (mut r, mut w) = reader(true);
    let (messages, end) = feed(&mut r, &mut w, &wire, 5);
    assert_eq!(end, None);
    assert_eq!(
        messages,
        vec![(1, text.clone().into_bytes()), (2, text.into_bytes())]
    );
    // Without the extension agreed, RSV1 is a violation.
    let (mut r, mut w) = reader(false);
    let (_, end) = feed(&mut r, &mut w, &wire, wire.len());
    assert_eq!(end, Some(ReadEnd::Violation(1002)));
    // RSV1 on a continuation is one too.
    let mut wire = client_frame(0x41, a, [1, 2, 3, 4]);
    wire.extend(client_frame(0xc0, b, [9, 9, 9, 9]));
    let (mut r, mut w) = reader(true);
    assert_eq!(
        feed(&mut r, &mut w, &wire, wire.len()).1,
        Some(ReadEnd::Violation(1002))
    );
}

#[test]
fn inflated_messages_are_bounded() {
    let bomb = super::deflate::tests::deflate_raw(&vec![b'a'; 100_000]);
    let (mut r, mut w) = reader(true);
    r.max = 10_000;
    let wire = client_frame(0xc1, &bomb, [1, 2, 3, 4]);
    assert_eq!(
        feed(&mut r, &mut w, &wire, wire.len()).1,
        Some(ReadEnd::Violation(1009))
    );
    let (mut r, mut w) = reader(true);
    let wire = client_frame(0xc1, &[0xff; 50], [1, 2, 3, 4]);
    assert_eq!(
        feed(&mut r, &mut w, &wire, wire.len()).1,
        Some(ReadEnd::Violation(1007))
    );
}

#[test]
fn pings_while_frames_wait_keep_one_pong() {
    let (mut r, mut w) = reader(false);
    let mut wire = Vec::new();
    for i in 0..10_000u32 {
        wire.extend(client_frame(0x89, &i.to_be_bytes(), [1, 2, 3, 4]));
    }
    assert_eq!(feed(&mut r, &mut w, &wire, 4096).1, None);
    // The first ping's pong waits to be written, and one for the latest.
    assert_eq!(&w.out[..], &[0x8a, 4, 0, 0, 0, 0]);
    assert_eq!(w.pong.as_deref(), Some(&9_999u32.to_be_bytes()[..]));
    // A close frame goes last: the pong waiting is dropped.
    w.close(Some(1000));
    assert!(w.pong.is_none());
}

#[test]
fn close_frames_are_answered_once() {
    let (mut r, mut w) = reader(false);
    let wire = client_frame(0x88, &[0x03, 0xe8, b'o', b'k'], [1, 2, 3, 4]);
    assert_eq!(
        feed(&mut r, &mut w, &wire, wire.len()).1,
        Some(ReadEnd::Closed)
    );
    w.close(Some(1011));
    assert_eq!(
        &w.out[..],
        &[0x88, 2, 0x03, 0xe8],
        "the client's code, once"
    );
}
