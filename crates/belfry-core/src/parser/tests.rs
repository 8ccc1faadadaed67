use bytes::Bytes;
use proptest::prelude::*;

use super::*;

/// Tests write packets as Node's docs do, inside their Engine.IO message: `42["a"]` is the
/// Socket.IO text `2["a"]`.
fn sio(text: &str) -> Str {
    Str::from(text.strip_prefix('4').expect("an Engine.IO message packet"))
}

fn decode(text: &str) -> Result<Option<Packet>, ParseError> {
    Decoder::default().decode_text(sio(text))
}

/// The Engine.IO message carrying `packet`.
fn eio(packet: &Packet) -> String {
    format!("4{}", packet.encode())
}

fn decoded(text: &str) -> Packet {
    decode(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .unwrap_or_else(|| panic!("{text}: waits for attachments"))
}

#[test]
fn node_examples_decode_and_encode_back() {
    for text in [
        "40",
        r#"40/admin,{"token":"x"}"#,
        r#"40{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
        r#"42["foo",1]"#,
        r#"42/admin,13["foo"]"#,
        r#"43/admin,13["bar"]"#,
        "41/admin,",
        "41",
        r#"44/random,{"message":"Invalid namespace"}"#,
        r#"44"plain message""#,
        r#"42[1,"numeric event"]"#,
        "430[]",
    ] {
        let packet = decoded(text);
        assert_eq!(eio(&packet), text, "{text}");
    }
}

#[test]
fn namespace_without_comma_is_valid() {
    let packet = decoded("40/custom");
    assert_eq!(packet.ns, "/custom");
    assert_eq!(packet.data, PacketData::Connect(None));
    assert_eq!(eio(&packet), "40/custom,");
}

#[test]
fn fields_are_read() {
    let packet = decoded(r#"42/chat,99["msg",{"a":[1,2]},"x"]"#);
    assert_eq!(packet.ns, "/chat");
    let PacketData::Event { payload, ack } = &packet.data else {
        panic!("{packet:?}");
    };
    assert_eq!(*ack, Some(99));
    let (name, args) = payload.event().unwrap();
    assert_eq!(name, "msg");
    assert_eq!(args.len(), 2);
    assert_eq!(args.get(0).unwrap(), r#"{"a":[1,2]}"#);
}

#[test]
fn server_packets_have_node_shapes() {
    assert_eq!(
        eio(&Packet::connect("/", "abc", None)),
        r#"40{"sid":"abc"}"#
    );
    assert_eq!(
        eio(&Packet::connect("/admin", "abc", None)),
        r#"40/admin,{"sid":"abc"}"#
    );
    assert_eq!(
        eio(&Packet::connect("/", "abc", Some("p"))),
        r#"40{"sid":"abc","pid":"p"}"#
    );
    assert_eq!(eio(&Packet::disconnect("/admin")), "41/admin,");
    assert_eq!(
        eio(&Packet::connect_error(
            "/",
            "not allowed",
            Some(&serde_json::json!({"why": 1}))
        )),
        r#"44{"message":"not allowed","data":{"why":1}}"#
    );
    assert_eq!(
        eio(&Packet::connect_error("/x", "Invalid namespace", None)),
        r#"44/x,{"message":"Invalid namespace"}"#
    );
}

#[test]
fn binary_packets_reassemble() {
    let mut decoder = Decoder::default();
    let text = r#"452-["up",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]"#;
    assert_eq!(decoder.decode_text(sio(text)), Ok(None));
    assert!(decoder.is_waiting());
    assert_eq!(decoder.decode_binary(Bytes::from_static(b"a")), Ok(None));
    let packet = decoder
        .decode_binary(Bytes::from_static(b"b"))
        .unwrap()
        .unwrap();
    assert!(!decoder.is_waiting());
    assert_eq!(
        packet.attachments(),
        &[Bytes::from_static(b"a"), Bytes::from_static(b"b")]
    );
    assert_eq!(eio(&packet), text);

    let ack = r#"461-/ns,5[{"_placeholder":true,"num":0}]"#;
    assert_eq!(decoder.decode_text(sio(ack)), Ok(None));
    let packet = decoder
        .decode_binary(Bytes::from_static(b"c"))
        .unwrap()
        .unwrap();
    assert_eq!(eio(&packet), ack);
}

#[test]
fn row31_wrong_shapes() {
    for text in [
        r#"40"s""#,
        "40[]",
        "40null",
        r#"41{"a":1}"#,
        "42{}",
        "42[]",
        r#"43{"a":1}"#,
        r#"42abc["m"]"#,
        "4abc",
        "43[]",
        "44[]",
        "44null",
        "42[",
    ] {
        assert!(decode(text).is_err(), "{text} must be refused");
    }
}

#[test]
fn elements_past_the_inline_four() {
    let elements = Elements::parse(r#"["ev", 1, "two", [3], {"four": 4}, null, 6.5]"#).unwrap();
    assert_eq!(elements.len(), 7);
    assert_eq!(
        elements.iter().collect::<Vec<_>>(),
        [
            "\"ev\"",
            "1",
            "\"two\"",
            "[3]",
            r#"{"four": 4}"#,
            "null",
            "6.5"
        ]
    );
    let args = elements.clone().skip(1);
    assert_eq!(args.len(), 6);
    assert_eq!(args.first(), Some("1"));
    assert_eq!(args.get(5), Some("6.5"));
    assert_eq!(args.get(6), None);
    assert!(elements.skip(9).is_empty());
    assert_eq!(Elements::parse("[]").unwrap().len(), 0);
}

#[test]
fn row32_event_names() {
    for text in [
        r#"42[{"toString":"foo"}]"#,
        r#"42[true,"x"]"#,
        "42[null]",
        r#"42[["a"]]"#,
    ] {
        assert_eq!(decode(text), Err(ParseError::InvalidPayload), "{text}");
    }
    for name in RESERVED_EVENTS {
        let text = format!(r#"42["{name}","x"]"#);
        assert_eq!(decode(&text), Err(ParseError::ReservedEvent), "{text}");
    }
    // A name is compared unescaped: an escape does not hide a reserved name.
    assert_eq!(
        decode(r#"42["conn\u0065ct","x"]"#),
        Err(ParseError::ReservedEvent)
    );
    for (text, name) in [
        (r#"42["a\"b",1]"#, "a\"b"),
        (r#"42["caf\u00e9"]"#, "café"),
        (r#"42[""]"#, ""),
        ("42[-1.5]", "-1.5"),
    ] {
        let PacketData::Event { payload, .. } = decoded(text).data else {
            panic!("{text}: not an event");
        };
        assert_eq!(payload.event().unwrap().0, name, "{text}");
    }
    // `error` is not reserved in the parser; the layer above ignores events with no handler.
    assert!(decode(r#"42["error","x"]"#).is_ok());
}

#[test]
fn row34_bad_attachment_headers_in_linear_time() {
    let long = format!("45{}-[\"a\"]", "9".repeat(10_000));
    for text in [
        "45",
        "451",
        "45a-",
        "451.23-",
        "45-1-",
        "45-[\"a\"]",
        long.as_str(),
    ] {
        assert!(decode(text).is_err(), "{}", &text[..text.len().min(20)]);
    }
}

#[test]
fn row35_attachment_counts_are_capped_before_allocating() {
    assert_eq!(
        decode(r#"451000000000-["a"]"#),
        Err(ParseError::TooManyAttachments)
    );
    assert_eq!(decode(r#"4511-["a"]"#), Err(ParseError::TooManyAttachments));
    assert_eq!(decode(r#"4510-["a"]"#), Ok(None));
    let mut decoder = Decoder::new(2);
    assert_eq!(
        decoder.decode_text(sio(r#"453-["a"]"#)),
        Err(ParseError::TooManyAttachments)
    );
}

#[test]
fn row36_placeholders_and_stray_frames() {
    for bad in [r#""splice""#, "-1", "1.5", "1e309", "1", "null"] {
        let text = format!(r#"451-["x",{{"_placeholder":true,"num":{bad}}}]"#);
        assert!(decode(&text).is_err(), "num {bad}");
    }
    for text in [
        r#"451-["x",{"_placeholder":true}]"#,
        r#"451-["x",{"_placeholder":"true","num":0}]"#,
        r#"42["x",{"_placeholder":true,"num":0}]"#,
        r#"431[{"a":[{"_placeholder":true,"num":0}]}]"#,
        r#"42["x",{"\\":1,"_placeholder":true,"num":0}]"#,
    ] {
        assert_eq!(decode(text), Err(ParseError::InvalidPlaceholder), "{text}");
    }
    // Strings that only resemble the key are data.
    for text in [
        r#"42["x","_placeholder"]"#,
        r#"42["x",{"_placeholders":true,"num":0}]"#,
        r#"42["x","a\"_placeholder\"",{"b":"_placeholder"}]"#,
    ] {
        assert!(decode(text).is_ok(), "{text}");
    }
    // A binary message with nothing waiting for it.
    let mut decoder = Decoder::default();
    assert_eq!(
        decoder.decode_binary(Bytes::from_static(b"x")),
        Err(ParseError::UnexpectedBinary)
    );
    // A text message while attachments are awaited.
    assert_eq!(
        decoder.decode_text(sio(r#"451-["x",{"_placeholder":true,"num":0}]"#)),
        Ok(None)
    );
    assert_eq!(
        decoder.decode_text(sio(r#"42["y"]"#)),
        Err(ParseError::UnexpectedText)
    );
    // `50-` is complete at once; the next binary is stray (the 4.2.6 zero-attachment leak).
    let mut decoder = Decoder::default();
    assert!(decoder.decode_text(sio(r#"450-["x"]"#)).unwrap().is_some());
    assert!(!decoder.is_waiting());
    assert_eq!(
        decoder.decode_binary(Bytes::from_static(b"x")),
        Err(ParseError::UnexpectedBinary)
    );
}

#[test]
fn row37_ack_ids() {
    assert_eq!(
        decode("4318446744073709551616[]"),
        Err(ParseError::InvalidAckId)
    );
    let long = format!("42{}[\"a\"]", "1".repeat(10_000));
    assert_eq!(decode(&long), Err(ParseError::InvalidAckId));
    let max = format!("43{}[]", u64::MAX);
    assert!(decode(&max).is_ok());
}

#[test]
fn row38_deep_and_odd_json() {
    let deep = format!("42[\"x\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(decode(&deep), Err(ParseError::InvalidPayload));
    let deep_object = format!("40{}", "{\"a\":".repeat(50_000) + "1" + &"}".repeat(50_000));
    assert_eq!(decode(&deep_object), Err(ParseError::InvalidPayload));
    // 128 levels are fine; brackets inside strings do not count.
    let ok = format!("42[\"x\",{}{}]", "[".repeat(127), "]".repeat(127));
    assert!(decode(&ok).is_ok());
    let quoted = format!("42[\"x\",\"{}\"]", "[".repeat(1000));
    assert!(decode(&quoted).is_ok());
    // Escaped quotes and backslashes do not end a string early...
    let escaped = format!("42[\"x\",\"\\\\\\\"{}\"]", "[".repeat(1000));
    assert!(decode(&escaped).is_ok(), "{escaped}");
    // ...and what follows a string still counts.
    let after = format!(
        "42[\"x\",\"a\\\"b\",{}{}]",
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(decode(&after), Err(ParseError::InvalidPayload));
    // Defined values or a refusal, never a panic.
    let _ = decode(r#"42["x",1e400]"#);
    let _ = decode(r#"42["x",{"a":1,"a":2}]"#);
    let _ = decode(r#"42["x","\ud800"]"#);
}

#[test]
fn unknown_types_and_empty() {
    assert_eq!(decode("4"), Err(ParseError::Empty));
    assert_eq!(decode("47"), Err(ParseError::UnknownType));
    assert_eq!(decode("4é"), Err(ParseError::UnknownType));
}

fn ns() -> impl Strategy<Value = String> {
    prop_oneof![Just("/".to_owned()), "/[a-z0-9_-]{1,12}"]
}

fn json_array() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            "[a-zA-Z0-9 ,{}é]{0,16}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("null".to_owned()),
            Just(r#"{"k":[1,true]}"#.to_owned()),
        ],
        0..5,
    )
    .prop_map(|items| format!("[{}]", items.join(",")))
}

fn packet() -> impl Strategy<Value = Packet> {
    let event = ("[a-z]{1,8}", json_array()).prop_map(|(name, args)| {
        let rest = &args[1..args.len() - 1];
        if rest.is_empty() {
            format!(r#"["{name}"]"#)
        } else {
            format!(r#"["{name}",{rest}]"#)
        }
    });
    let attachments = proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from),
        0..3,
    );
    (
        ns(),
        prop_oneof![
            Just(PacketData::Connect(None)),
            Just(PacketData::Connect(Some(Str::from(r#"{"token":"t"}"#)))),
            Just(PacketData::Disconnect),
            (event, attachments.clone(), any::<Option<u64>>()).prop_map(|(json, att, ack)| {
                PacketData::Event {
                    payload: with_placeholders(&json, att),
                    ack,
                }
            }),
            (json_array(), attachments, any::<u64>()).prop_map(|(json, att, ack)| {
                PacketData::Ack {
                    payload: with_placeholders(&json, att),
                    ack,
                }
            }),
            Just(PacketData::ConnectError(Str::from(r#"{"message":"no"}"#))),
        ],
    )
        .prop_map(|(ns, data)| Packet {
            ns: Str::from(ns),
            data,
        })
}

/// Appends one placeholder per attachment to a JSON array.
fn with_placeholders(json: &str, attachments: Vec<Bytes>) -> Payload {
    let mut items: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    for num in 0..attachments.len() {
        items.push(serde_json::json!({"_placeholder": true, "num": num}));
    }
    Payload::new(serde_json::to_string(&items).unwrap(), attachments)
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(packet in packet()) {
        let mut decoder = Decoder::default();
        let mut out = decoder.decode_text(Str::from(packet.encode())).unwrap();
        for attachment in packet.attachments() {
            prop_assert!(out.is_none());
            out = decoder.decode_binary(attachment.clone()).unwrap();
        }
        prop_assert_eq!(out, Some(packet));
    }

    #[test]
    fn any_frame_sequence_is_decoded_or_refused(
        frames in proptest::collection::vec(
            prop_oneof![
                "[0-6]{0,2}[0-9-]{0,3}(/[a-z]{0,3},)?[0-9]{0,3}.{0,24}".prop_map(Ok),
                proptest::collection::vec(any::<u8>(), 0..8).prop_map(Err),
            ],
            0..12,
        )
    ) {
        let mut decoder = Decoder::new(3);
        for frame in frames {
            let _ = match frame {
                Ok(text) => decoder.decode_text(Str::from(text)),
                Err(bytes) => decoder.decode_binary(Bytes::from(bytes)),
            };
        }
    }
}

#[test]
fn encoding_shares_a_buffer_that_holds_the_header() {
    for (ns, answer, ack, expected) in [
        ("/", false, None, r#"42["a",1]"#),
        ("/chat", false, Some(12), r#"42/chat,12["a",1]"#),
        ("/chat", true, Some(3), r#"43/chat,3["a",1]"#),
    ] {
        let mut text = String::new();
        write_header(&mut text, "4", ns, answer, ack);
        let start = text.len();
        text.push_str(r#"["a",1]"#);
        let text = Str::from(text);
        let payload = Payload::json(text.slice(start..text.len()));
        let packet = match (answer, ack) {
            (true, Some(id)) => Packet::ack(ns, payload, id),
            _ => Packet::event(ns, payload, ack),
        };
        let encoded = packet.encode_shared("4");
        assert_eq!(encoded, expected);
        assert_eq!(encoded.as_ptr(), text.as_ptr(), "{expected}: shared");
        assert_eq!(packet.encode_after("4"), expected);
        let (given, attachments) = packet.into_shared("4");
        assert_eq!(given, expected);
        assert_eq!(
            given.as_ptr(),
            text.as_ptr(),
            "{expected}: given away, shared"
        );
        assert!(attachments.is_empty());
    }
    // A header that does not match (another namespace, attachments) is written anew.
    let text = Str::from(r#"42["a"]"#);
    let json = text.slice(2..text.len());
    let other_ns = Packet::event("/x", Payload::json(json.clone()), None);
    assert_eq!(other_ns.encode_shared("4"), r#"42/x,["a"]"#);
    let binary = Packet::event(
        "/",
        Payload::new(json, vec![Bytes::from_static(b"1")]),
        None,
    );
    assert_eq!(binary.encode_shared("4"), r#"451-["a"]"#);
    assert_eq!(
        other_ns.into_shared("4"),
        (Str::from(r#"42/x,["a"]"#), Vec::new())
    );
    assert_eq!(
        binary.into_shared("4"),
        (Str::from(r#"451-["a"]"#), vec![Bytes::from_static(b"1")])
    );
}
