//! Argument lists: spreading, attachments, raw argument text through every serializer.

use super::{raw::CAPTURING, *};
use crate::parser::Elements;

/// What a received packet's arguments without binary serialize as (the server's `Args`): a
/// list spread, each element its text.
type Args<'a> = Spread<'a, RawJson<'a>>;

/// The elements of `elements` as [`RawJson`].
fn raw(elements: &Elements) -> Vec<RawJson<'_>> {
    elements.iter().map(RawJson).collect()
}

fn event_array<T: Serialize + ?Sized>(event: &str, data: &T) -> (String, Vec<Bytes>) {
    let mut out = String::from("42");
    let attachments = push_event_array(&mut out, event, data).unwrap();
    (out.split_off(2), attachments)
}

fn args_array<T: Serialize + ?Sized>(data: &T) -> String {
    let mut out = String::new();
    push_args_array(&mut out, data).unwrap();
    out
}

#[test]
fn bytes_anywhere_become_attachments() {
    #[derive(Serialize)]
    struct File {
        name: &'static str,
        data: Bytes,
    }
    let file = File {
        name: "a",
        data: Bytes::from_static(b"xyz"),
    };
    let (json, attachments) = event_array("up", &(&file, Bytes::from_static(b"!"), vec![1u8, 2]));
    assert_eq!(
        json,
        r#"["up",{"name":"a","data":{"_placeholder":true,"num":0}},{"_placeholder":true,"num":1},[1,2]]"#
    );
    assert_eq!(
        attachments,
        [Bytes::from_static(b"xyz"), Bytes::from_static(b"!")]
    );
}

#[test]
fn tuples_spread_and_others_do_not() {
    assert_eq!(event_array("ev", &()).0, r#"["ev"]"#);
    assert_eq!(event_array("ev", &1).0, r#"["ev",1]"#);
    assert_eq!(event_array("ev", &(1, "a")).0, r#"["ev",1,"a"]"#);
    assert_eq!(event_array("ev", &vec![1, 2]).0, r#"["ev",[1,2]]"#);
    assert_eq!(event_array("ev", &[1, 2]).0, r#"["ev",1,2]"#);
    assert_eq!(
        event_array("ev", &serde_json::json!({"a": 1})).0,
        r#"["ev",{"a":1}]"#
    );
    assert_eq!(event_array("é\"", &Some(2)).0, r#"["é\"",2]"#);
    assert_eq!(args_array(&()), "[]");
    // `null` is an argument, as in Node: `emit("ev", null)` sends `["ev",null]`.
    assert_eq!(
        event_array("ev", &serde_json::Value::Null).0,
        r#"["ev",null]"#
    );
    assert_eq!(args_array(&serde_json::Value::Null), "[null]");
    assert_eq!(to_values(&serde_json::Value::Null).unwrap(), [Value::Null]);
    assert_eq!(to_values(&()).unwrap(), Vec::<Value>::new());
    assert_eq!(args_array(&("ok",)), r#"["ok"]"#);
    assert_eq!(args_array(&"ok"), r#"["ok"]"#);
}

/// Raw JSON elements spread into the packet as they were written, and become values for
/// messages between servers.
#[test]
fn args_keep_their_text() {
    let elements = Elements::parse(r#"["ev", {"b": 1, "a": [2]}, "x\u00e9"]"#)
        .unwrap()
        .skip(1);
    let raw = raw(&elements);
    let args = Spread(&raw);
    assert_eq!(
        event_array("echo", &args).0,
        r#"["echo",{"b": 1, "a": [2]},"x\u00e9"]"#
    );
    assert_eq!(
        to_values(&args).unwrap(),
        [
            Value::from(serde_json::json!({"b": 1, "a": [2]})),
            Value::from("xé")
        ]
    );
}

/// The elements of the event `json`, but its name.
fn elements(json: &str) -> Elements {
    Elements::parse(json).unwrap().skip(1)
}

/// Raw arguments anywhere in a value (a field, an element, a map value, a variant, an option,
/// flattened) are written as their text, among other values and attachments.
#[test]
fn nested_args_keep_their_text() {
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Reply<'a> {
        id: u32,
        args: &'a Args<'a>,
        file: Bytes,
        #[serde(flatten)]
        extra: BTreeMap<&'static str, &'a Args<'a>>,
    }
    #[derive(Serialize)]
    enum Kind<'a> {
        One(&'a Args<'a>),
        Two(u8, &'a Args<'a>),
        Named { args: &'a Args<'a> },
    }
    #[derive(Serialize)]
    #[serde(tag = "type")]
    enum Tagged<'a> {
        Got { args: &'a Args<'a> },
    }
    #[derive(Serialize)]
    struct Pair<'a>(&'a Args<'a>, Bytes);

    let elements = elements(r#"["ev", {"b": 1, "a": [2]} , "x\u00e9",[ ]]"#);
    let raw = raw(&elements);
    let args = Spread(&raw);
    let text = r#"[{"b": 1, "a": [2]},"x\u00e9",[ ]]"#;
    let reply = Reply {
        id: 7,
        args: &args,
        file: Bytes::from_static(b"f"),
        extra: BTreeMap::from([("more", &args)]),
    };
    let data = (
        Bytes::from_static(b"first"),
        &reply,
        vec![Some(&args), None],
        (&args, Kind::One(&args), Kind::Two(3, &args)),
        Kind::Named { args: &args },
        Tagged::Got { args: &args },
        Pair(&args, Bytes::from_static(b"last")),
        BTreeMap::from([(1, &args)]),
    );
    let (json, attachments) = event_array("ev", &data);
    let expected = [
        r#"["ev",{"_placeholder":true,"num":0}"#.to_owned(),
        format!(r#"{{"id":7,"args":{text},"file":{{"_placeholder":true,"num":1}},"more":{text}}}"#),
        format!("[{text},null]"),
        format!(r#"[{text},{{"One":{text}}},{{"Two":[3,{text}]}}]"#),
        format!(r#"{{"Named":{{"args":{text}}}}}"#),
        format!(r#"{{"type":"Got","args":{text}}}"#),
        format!(r#"[{text},{{"_placeholder":true,"num":2}}]"#),
        format!(r#"{{"1":{text}}}]"#),
    ]
    .join(",");
    assert_eq!(json, expected);
    assert_eq!(
        attachments,
        [
            Bytes::from_static(b"first"),
            Bytes::from_static(b"f"),
            Bytes::from_static(b"last")
        ]
    );
    // Spread at the top, as the only data, and as an ack's list.
    assert_eq!(
        event_array("ev", &args).0,
        r#"["ev",{"b": 1, "a": [2]},"x\u00e9",[ ]]"#
    );
    assert_eq!(args_array(&args), text);
    assert_eq!(args_array(&Spread::<RawJson<'_>>(&[])), "[]");
    assert!(!CAPTURING.with(Cell::get));
}

/// Other serializers get the arguments' JSON: serde_json's writer their text, its `Value`
/// their values.
#[test]
fn args_serialize_anywhere() {
    let elements = elements(r#"["ev", {"b": 1, "a": [2]} , "x\u00e9",[ ], 12345678901234567890]"#);
    let raw = raw(&elements);
    let args = Spread(&raw);
    assert_eq!(
        serde_json::to_string(&args).unwrap(),
        r#"[{"b": 1, "a": [2]},"x\u00e9",[ ],12345678901234567890]"#
    );
    assert_eq!(
        serde_json::to_value(args).unwrap(),
        serde_json::json!([{"b": 1, "a": [2]}, "xé", [], 12345678901234567890u64])
    );
    assert_eq!(
        serde_json::to_string(&(1, &args, Some(&args))).unwrap(),
        format!("[1,{0},{0}]", serde_json::to_string(&args).unwrap())
    );
    assert_eq!(
        serde_json::to_string_pretty(&args).unwrap(),
        "[\n  {\"b\": 1, \"a\": [2]},\n  \"x\\u00e9\",\n  [ ],\n  12345678901234567890\n]"
    );
    // Through the JSON of a server-to-server message.
    assert_eq!(
        to_values(&("a", &args)).unwrap(),
        [
            Value::from("a"),
            Value::from(serde_json::to_value(args).unwrap())
        ]
    );
    assert!(!CAPTURING.with(Cell::get));
}

/// Belfry's writer copies the text without reading it (it was checked when the packet was
/// parsed); other serializers check it.
#[test]
fn the_text_is_copied_not_checked() {
    let unchecked = RawJson("not json, copied as it is");
    assert_eq!(
        args_array(&(1, &unchecked, [&unchecked])),
        "[1,not json, copied as it is,[not json, copied as it is]]"
    );
    assert!(serde_json::to_string(&unchecked).is_err());
    assert!(serde_json::to_value([&unchecked]).is_err());
    assert!(!CAPTURING.with(Cell::get));
}

/// A type of another crate that took the raw JSON name is serialized as it is, not copied.
#[test]
fn another_newtype_of_the_same_name_is_serialized() {
    #[derive(Serialize)]
    #[serde(rename = "$belfry::private::RawJson")]
    struct Lookalike<'a>(&'a str);
    #[derive(Serialize)]
    #[serde(rename = "$belfry::private::RawJson")]
    struct Number(u32);
    assert_eq!(args_array(&(Lookalike("[1]"), Number(2))), r#"["[1]",2]"#);
    assert!(!CAPTURING.with(Cell::get));
}

/// The formatter writes what serde_json writes, for every kind of value.
#[test]
fn output_is_serde_jsons() {
    use std::collections::BTreeMap;
    let mut keyed = BTreeMap::new();
    keyed.insert(-3i64, "minus three");
    keyed.insert(7, "seven");
    let floats = [
        0.0,
        -0.0,
        1.5,
        1e21,
        1e-7,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::NAN,
    ];
    let values = [
        serde_json::json!([true, false, u64::MAX, i64::MIN, 0, -1]),
        serde_json::json!({"a": {"b": [1, "two", 3.25, null]}, "": {}}),
        serde_json::json!("quote \" backslash \\ controls \u{0}\u{1f}\n\t\r\u{8}\u{c} é€😀 \u{7f}"),
        serde_json::json!(floats),
    ];
    for value in &values {
        assert_eq!(
            args_array(value),
            format!("[{}]", serde_json::to_string(value).unwrap())
        );
    }
    assert_eq!(
        args_array(&keyed),
        format!("[{}]", serde_json::to_string(&keyed).unwrap())
    );
    assert_eq!(
        args_array(&(1.5f32, u128::MAX, i128::MIN, 'x')),
        format!("[1.5,{},{},\"x\"]", u128::MAX, i128::MIN)
    );
    let raw =
        serde_json::value::RawValue::from_string(r#" { "kept" : [1, 2] } "#.to_owned()).unwrap();
    assert_eq!(args_array(&raw), r#"[{ "kept" : [1, 2] }]"#);
}

#[test]
fn values_send_their_binary_as_attachments() {
    let value: Value = Value::from_iter([
        ("z", Value::from(Bytes::from_static(b"1"))),
        (
            "a",
            Value::from_iter([Value::from(Bytes::from_static(b"2"))]),
        ),
    ]);
    let (text, attachments) = event_array("v", &value);
    assert_eq!(
        text,
        r#"["v",{"z":{"_placeholder":true,"num":0},"a":[{"_placeholder":true,"num":1}]}]"#
    );
    assert_eq!(
        attachments,
        [Bytes::from_static(b"1"), Bytes::from_static(b"2")]
    );
    // Spread: the list's elements are the arguments.
    let values = [Value::from(1), Value::Null];
    assert_eq!(event_array("v", &Spread(&values)).0, r#"["v",1,null]"#);
    assert_eq!(event_array("v", &Spread::<u8>(&[])).0, r#"["v"]"#);
}

/// Received arguments with binary are sent as values (the server's `Args` does so): their
/// attachments are numbered again, after those of the values before them.
#[test]
fn args_with_binary_renumber_their_attachments() {
    // Two arguments, the second's attachment first: behind bytes of the emit's own, each keeps
    // its data.
    let received = [Bytes::from_static(b"zero"), Bytes::from_static(b"one")];
    let elements =
        Elements::parse(r#"[{"_placeholder":true,"num":1},{"k":{"_placeholder":true,"num":0}}]"#)
            .unwrap();
    let values = elements
        .iter()
        .map(|json| from_str(json, &received))
        .collect::<Result<Vec<Value>, _>>()
        .unwrap();
    let (text, attachments) = event_array("e", &(Bytes::from_static(b"own"), Spread(&values)));
    assert_eq!(
        text,
        r#"["e",{"_placeholder":true,"num":0},[{"_placeholder":true,"num":1},{"k":{"_placeholder":true,"num":2}}]]"#
    );
    assert_eq!(
        attachments,
        [
            Bytes::from_static(b"own"),
            Bytes::from_static(b"one"),
            Bytes::from_static(b"zero")
        ]
    );
}
