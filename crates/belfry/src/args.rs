//! Rust values to Socket.IO argument lists.
//!
//! Node's `emit("ev", a, b)` sends `["ev",a,b]`. In Rust one value is given: a tuple is spread
//! into several arguments, `()` is no argument, anything else is one argument. Bytes anywhere in
//! the value (`bytes::Bytes`, or anything serde serializes as bytes) become binary attachments,
//! with a placeholder where they stood.

use std::{fmt, io};

use bytes::Bytes;
use serde::{Serialize, ser};
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// Appends `["<event>",args...]` for `data` spread as described in the module docs to `out`;
/// returns the binary attachments found in `data`.
pub(crate) fn push_event_array<T: Serialize + ?Sized>(
    out: &mut String,
    event: &str,
    data: &T,
) -> Result<Vec<Bytes>, serde_json::Error> {
    push_array(out, Some(event), data)
}

/// Appends `[args...]` for `data` spread as described in the module docs to `out`; returns the
/// binary attachments found in `data`.
pub(crate) fn push_args_array<T: Serialize + ?Sized>(
    out: &mut String,
    data: &T,
) -> Result<Vec<Bytes>, serde_json::Error> {
    push_array(out, None, data)
}

/// The arguments of `data`, spread as described in the module docs, as JSON values (bytes
/// become arrays of numbers: for messages between servers, which carry no attachments).
pub(crate) fn to_values<T: Serialize + ?Sized>(
    data: &T,
) -> Result<Vec<serde_json::Value>, serde_json::Error> {
    let value = serde_json::to_value(data)?;
    Ok(match (shape(data), value) {
        (Shape::None, _) => Vec::new(),
        (Shape::Spread, serde_json::Value::Array(items)) => items,
        (_, value) => vec![value],
    })
}

/// Appends the array of `event` (if any) and the arguments of `data`. Everything is written
/// straight into `out` (one copy of each argument's text, the serializer's).
fn push_array<T: Serialize + ?Sized>(
    out: &mut String,
    event: Option<&str>,
    data: &T,
) -> Result<Vec<Bytes>, serde_json::Error> {
    let shape = shape(data);
    let mut attachments = Vec::new();
    out.push('[');
    if let Some(event) = event {
        serialize_into(out, &mut attachments, event)?;
    }
    if !matches!(shape, Shape::None) {
        let after_first = event.is_some();
        if after_first && matches!(shape, Shape::One) {
            out.push(',');
        }
        let start = out.len();
        serialize_into(out, &mut attachments, data)?;
        if matches!(shape, Shape::Spread) {
            // A tuple serializes as a JSON array: its elements are the arguments.
            out.pop();
            if out.len() == start + 1 {
                out.truncate(start);
            } else if after_first {
                out.replace_range(start..=start, ",");
            } else {
                out.remove(start);
            }
        }
    }
    out.push(']');
    Ok(attachments)
}

/// Appends the JSON of `value` to `out` with [`TextFormatter`].
fn serialize_into<T: Serialize + ?Sized>(
    out: &mut String,
    attachments: &mut Vec<Bytes>,
    value: &T,
) -> Result<(), serde_json::Error> {
    let formatter = TextFormatter { out, attachments };
    value.serialize(&mut serde_json::Serializer::with_formatter(
        Unwritten, formatter,
    ))
}

/// serde_json's compact output, written by the formatter itself into a `String`, and bytes
/// become `{"_placeholder":true,"num":N}`, kept as attachment `N`.
///
/// serde_json hands string contents and raw values (an [`Args`](crate::extract::Args) element)
/// to the formatter as `&str`: they are appended as they are, where text written to an
/// `io::Write` would have to be checked as UTF-8 again to become a `String` (a second pass over
/// every argument). Floats and escapes, which serde_json formats its own way, are formatted by
/// its `CompactFormatter` into a small buffer. The serializer's writer ([`Unwritten`]) fails if
/// written: every method is covered here.
struct TextFormatter<'a> {
    out: &'a mut String,
    attachments: &'a mut Vec<Bytes>,
}

impl TextFormatter<'_> {
    /// Appends what serde_json's compact formatter writes for one short item.
    fn compact(
        &mut self,
        write: impl FnOnce(&mut CompactFormatter, &mut io::Cursor<&mut [u8]>) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut buffer = [0u8; 64];
        let mut cursor = io::Cursor::new(&mut buffer[..]);
        write(&mut CompactFormatter, &mut cursor)?;
        let end = usize::try_from(cursor.position()).map_err(io::Error::other)?;
        let text = std::str::from_utf8(&buffer[..end]).map_err(io::Error::other)?;
        self.out.push_str(text);
        Ok(())
    }

    fn push(&mut self, text: &str) -> io::Result<()> {
        self.out.push_str(text);
        Ok(())
    }

    fn push_display(&mut self, value: impl fmt::Display) -> io::Result<()> {
        use fmt::Write;
        write!(self.out, "{value}").map_err(io::Error::other)
    }
}

/// The writer under [`TextFormatter`], which writes its output itself.
struct Unwritten;

impl io::Write for Unwritten {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other(
            "a serde_json formatter method that TextFormatter does not cover",
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Integers as `Display` writes them (digits and a sign, as serde_json's `itoa` does).
macro_rules! integers {
    ($($name:ident($ty:ty);)*) => {
        $(fn $name<W: ?Sized + io::Write>(&mut self, _: &mut W, value: $ty) -> io::Result<()> {
            self.push_display(value)
        })*
    };
}

/// Methods that write the same text every time (punctuation; nothing for the `end_*` of values
/// and keys, as in serde_json's compact output).
macro_rules! fixed {
    ($($name:ident => $text:literal;)*) => {
        $(fn $name<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
            self.push($text)
        })*
    };
}

/// Methods handed text that is already JSON (a number, a string's unescaped run, a raw value):
/// appended as it is.
macro_rules! verbatim {
    ($($name:ident;)*) => {
        $(fn $name<W: ?Sized + io::Write>(&mut self, _: &mut W, text: &str) -> io::Result<()> {
            self.push(text)
        })*
    };
}

/// The comma before every element or key but the first.
macro_rules! separators {
    ($($name:ident;)*) => {
        $(fn $name<W: ?Sized + io::Write>(&mut self, _: &mut W, first: bool) -> io::Result<()> {
            self.push(if first { "" } else { "," })
        })*
    };
}

impl Formatter for TextFormatter<'_> {
    verbatim! { write_number_str; write_string_fragment; write_raw_fragment; }

    separators! { begin_array_value; begin_object_key; }

    integers! {
        write_i8(i8); write_i16(i16); write_i32(i32); write_i64(i64); write_i128(i128);
        write_u8(u8); write_u16(u16); write_u32(u32); write_u64(u64); write_u128(u128);
    }

    fixed! {
        write_null => "null";
        begin_string => "\"";
        end_string => "\"";
        begin_array => "[";
        end_array => "]";
        end_array_value => "";
        begin_object => "{";
        end_object => "}";
        end_object_key => "";
        begin_object_value => ":";
        end_object_value => "";
    }

    fn write_bool<W: ?Sized + io::Write>(&mut self, _: &mut W, value: bool) -> io::Result<()> {
        self.push(if value { "true" } else { "false" })
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, _: &mut W, value: f32) -> io::Result<()> {
        self.compact(|f, w| f.write_f32(w, value))
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, _: &mut W, value: f64) -> io::Result<()> {
        self.compact(|f, w| f.write_f64(w, value))
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        self.compact(|f, w| f.write_char_escape(w, char_escape))
    }

    fn write_byte_array<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        value: &[u8],
    ) -> io::Result<()> {
        let num = self.attachments.len();
        self.attachments.push(Bytes::copy_from_slice(value));
        self.push_display(format_args!(r#"{{"_placeholder":true,"num":{num}}}"#))
    }
}

enum Shape {
    None,
    Spread,
    One,
}

/// Finds out, without serializing, whether `data` is `()` (no argument), a tuple (spread) or
/// anything else (one argument).
///
/// "No argument" is decided by type, not by what the value serializes as: `serde_json`'s
/// `Value::Null` serializes as a unit too, and is one argument, `null`, as in Node. `()` is the
/// one type that both serializes as a unit and has no size (unit structs serialize as unit
/// structs).
fn shape<T: Serialize + ?Sized>(data: &T) -> Shape {
    match data.serialize(ShapeProbe) {
        Err(Probe::Unit) if std::mem::size_of_val(data) == 0 => Shape::None,
        Err(Probe::Tuple) => Shape::Spread,
        _ => Shape::One,
    }
}

/// A serializer that stops at the first call and tells which one it was.
struct ShapeProbe;

#[derive(Debug)]
enum Probe {
    Unit,
    Tuple,
    Other,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shape probe")
    }
}

impl std::error::Error for Probe {}

impl ser::Error for Probe {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Probe::Other
    }
}

macro_rules! other {
    ($($name:ident($($ty:ty),*);)*) => {
        $(fn $name(self, $(_: $ty),*) -> Result<(), Probe> { Err(Probe::Other) })*
    };
}

impl ser::Serializer for ShapeProbe {
    type Ok = ();
    type Error = Probe;
    type SerializeSeq = ser::Impossible<(), Probe>;
    type SerializeTuple = ser::Impossible<(), Probe>;
    type SerializeTupleStruct = ser::Impossible<(), Probe>;
    type SerializeTupleVariant = ser::Impossible<(), Probe>;
    type SerializeMap = ser::Impossible<(), Probe>;
    type SerializeStruct = ser::Impossible<(), Probe>;
    type SerializeStructVariant = ser::Impossible<(), Probe>;

    other! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_unit(self) -> Result<(), Probe> {
        Err(Probe::Unit)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Probe> {
        Err(Probe::Other)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Probe> {
        Err(Probe::Other)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Probe> {
        Err(Probe::Other)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Probe> {
        Err(Probe::Other)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Probe> {
        Err(Probe::Tuple)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Probe> {
        Err(Probe::Other)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Probe> {
        Err(Probe::Other)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Probe> {
        Err(Probe::Other)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Probe> {
        Err(Probe::Other)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Probe> {
        Err(Probe::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (json, attachments) =
            event_array("up", &(&file, Bytes::from_static(b"!"), vec![1u8, 2]));
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
        assert_eq!(
            to_values(&serde_json::Value::Null).unwrap(),
            [serde_json::Value::Null]
        );
        assert_eq!(to_values(&()).unwrap(), Vec::<serde_json::Value>::new());
        assert_eq!(args_array(&("ok",)), r#"["ok"]"#);
        assert_eq!(args_array(&"ok"), r#"["ok"]"#);
    }

    /// `Args` (raw JSON elements) spread into the packet as they were written, and become
    /// values for messages between servers.
    #[test]
    fn args_keep_their_text() {
        let elements =
            belfry_core::parser::Elements::parse(r#"["ev", {"b": 1, "a": [2]}, "x\u00e9"]"#)
                .unwrap()
                .skip(1);
        let args = crate::extract::Args(elements);
        assert_eq!(
            event_array("echo", &args).0,
            r#"["echo",{"b": 1, "a": [2]},"x\u00e9"]"#
        );
        assert_eq!(
            to_values(&args).unwrap(),
            [
                serde_json::json!({"b": 1, "a": [2]}),
                serde_json::json!("xé")
            ]
        );
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
            serde_json::json!(
                "quote \" backslash \\ controls \u{0}\u{1f}\n\t\r\u{8}\u{c} é€😀 \u{7f}"
            ),
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
        let raw = serde_json::value::RawValue::from_string(r#" { "kept" : [1, 2] } "#.to_owned())
            .unwrap();
        assert_eq!(args_array(&raw), r#"[{ "kept" : [1, 2] }]"#);
    }
}
