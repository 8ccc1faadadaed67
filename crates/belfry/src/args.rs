//! Rust values to Socket.IO argument lists.
//!
//! Node's `emit("ev", a, b)` sends `["ev",a,b]`. In Rust one value is given: a tuple is spread
//! into several arguments, `()` is no argument, anything else is one argument. Bytes anywhere in
//! the value (`bytes::Bytes`, or anything serde serializes as bytes) become binary attachments,
//! with a placeholder where they stood.

use std::{fmt, io};

use bytes::Bytes;
use serde::{Serialize, ser};

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
    let mut buffer = std::mem::take(out).into_bytes();
    buffer.push(b'[');
    if let Some(event) = event {
        serde_json::to_writer(&mut buffer, event)?;
    }
    let mut attachments = Vec::new();
    if !matches!(shape, Shape::None) {
        let after_first = event.is_some();
        if after_first && matches!(shape, Shape::One) {
            buffer.push(b',');
        }
        let start = buffer.len();
        let formatter = PlaceholderFormatter {
            attachments: &mut attachments,
        };
        data.serialize(&mut serde_json::Serializer::with_formatter(
            &mut buffer,
            formatter,
        ))?;
        if matches!(shape, Shape::Spread) {
            // A tuple serializes as a JSON array: its elements are the arguments.
            buffer.pop();
            if buffer.len() == start + 1 {
                buffer.truncate(start);
            } else if after_first {
                buffer[start] = b',';
            } else {
                buffer.remove(start);
            }
        }
    }
    buffer.push(b']');
    *out = String::from_utf8(buffer).map_err(ser::Error::custom)?;
    Ok(attachments)
}

/// serde_json's compact output, but bytes become `{"_placeholder":true,"num":N}` and are kept
/// as attachment `N`.
struct PlaceholderFormatter<'a> {
    attachments: &'a mut Vec<Bytes>,
}

impl serde_json::ser::Formatter for PlaceholderFormatter<'_> {
    fn write_byte_array<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        value: &[u8],
    ) -> io::Result<()> {
        let num = self.attachments.len();
        self.attachments.push(Bytes::copy_from_slice(value));
        write!(writer, r#"{{"_placeholder":true,"num":{num}}}"#)
    }
}

enum Shape {
    None,
    Spread,
    One,
}

/// Finds out, without serializing, whether `data` is a unit, a tuple or anything else.
fn shape<T: Serialize + ?Sized>(data: &T) -> Shape {
    match data.serialize(ShapeProbe) {
        Err(Probe::Unit) => Shape::None,
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
        assert_eq!(args_array(&("ok",)), r#"["ok"]"#);
        assert_eq!(args_array(&"ok"), r#"["ok"]"#);
    }
}
