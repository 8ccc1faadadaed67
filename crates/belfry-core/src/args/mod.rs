//! Rust values to Socket.IO argument lists, and back.
//!
//! Node's `emit("ev", a, b)` sends `["ev",a,b]`. In Rust one value is given: a tuple (or a
//! [`Spread`] list) is spread into several arguments, `()` is no argument, anything else is one
//! argument. Bytes anywhere in the value (`bytes::Bytes`, or anything serde serializes as bytes)
//! become binary attachments, with `{"_placeholder":true,"num":i}` where they stood (`i`
//! counting from 0 in the order they are written). [`RawJson`] values are copied into the text
//! as they are.
//!
//! The way back, [`from_str`], hands attachment `i` to the deserializer wherever its placeholder
//! stands. [`to_value`] and [`from_value`] go between any serde type and a Belfry
//! [`Value`] (which holds binary as binary), [`to_values`] gives the arguments of a value.
//!
//! # Examples
//!
//! ```
//! use belfry_core::args::{from_str, push_event_array};
//! use bytes::Bytes;
//!
//! let mut text = String::new();
//! let attachments = push_event_array(&mut text, "up", &("a.png", Bytes::from_static(b"\x89PNG")))?;
//! assert_eq!(text, r#"["up","a.png",{"_placeholder":true,"num":0}]"#);
//! assert_eq!(attachments, [Bytes::from_static(b"\x89PNG")]);
//!
//! let (event, name, file): (String, String, Bytes) = from_str(&text, &attachments)?;
//! assert_eq!((event.as_str(), name.as_str(), &file[..]), ("up", "a.png", &b"\x89PNG"[..]));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::cell::{Cell, RefCell};

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use crate::proto::value::Value;

mod binary;
mod raw;
mod shape;
#[cfg(test)]
mod tests;
mod text;

pub use binary::from_str;
use raw::Emit;
pub use raw::RawJson;
use shape::{Shape, shape};
use text::{Shared, TextFormatter, Unwritten};

/// Appends `["<event>",args...]` to `out`, the arguments of `data` spread as the
/// [module docs](self) describe; returns the binary attachments found in `data`, in the order of
/// their placeholders' numbers.
///
/// The event name is written as it is given: whether it may be sent (not a reserved name) is
/// the caller's to check.
///
/// # Errors
///
/// `data`'s `Serialize` implementation fails, or gives a map with keys that are not strings
/// or numbers. `out` then holds what was written before the failure.
///
/// # Examples
///
/// ```
/// let mut text = String::from("42");
/// let attachments = belfry_core::args::push_event_array(&mut text, "chat", &("hi", 2))?;
/// assert_eq!(text, r#"42["chat","hi",2]"#);
/// assert!(attachments.is_empty());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn push_event_array<T: Serialize + ?Sized>(
    out: &mut String,
    event: &str,
    data: &T,
) -> Result<Vec<Bytes>, serde_json::Error> {
    push_array(out, Some(event), data)
}

/// Appends `[args...]` (an acknowledgement's list) to `out`, the arguments of `data` spread as
/// the [module docs](self) describe; returns the binary attachments found in `data`, in the
/// order of their placeholders' numbers.
///
/// # Errors
///
/// As [`push_event_array`].
///
/// # Examples
///
/// ```
/// let mut text = String::new();
/// belfry_core::args::push_args_array(&mut text, &())?;
/// belfry_core::args::push_args_array(&mut text, &[1, 2])?;
/// belfry_core::args::push_args_array(&mut text, &vec![1, 2])?;
/// assert_eq!(text, "[][1,2][[1,2]]");
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn push_args_array<T: Serialize + ?Sized>(
    out: &mut String,
    data: &T,
) -> Result<Vec<Bytes>, serde_json::Error> {
    push_array(out, None, data)
}

/// The arguments of `data`, spread as the [module docs](self) describe, as [`Value`]s (bytes
/// stay binary).
///
/// # Errors
///
/// As [`push_event_array`], or a value nests deeper than serde_json parses (128 levels).
///
/// # Examples
///
/// ```
/// use belfry_core::{args::to_values, proto::value::Value};
///
/// assert_eq!(to_values(&("a", 1))?, [Value::from("a"), Value::from(1)]);
/// assert_eq!(to_values(&vec![1])?, [Value::from_iter([Value::from(1)])]);
/// assert!(to_values(&())?.is_empty());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn to_values<T: Serialize + ?Sized>(data: &T) -> Result<Vec<Value>, serde_json::Error> {
    let value = to_value(data)?;
    Ok(match (shape(data), value) {
        (Shape::None, _) => Vec::new(),
        (Shape::Spread, Value::Array(items)) => items,
        (_, value) => vec![value],
    })
}

/// `data` as a [`Value`]: written as an emit writes it (bytes anywhere become attachments behind
/// placeholders) and read back with the attachments in place, so bytes stay binary.
///
/// # Errors
///
/// As [`to_values`].
pub fn to_value<T: Serialize + ?Sized>(data: &T) -> Result<Value, serde_json::Error> {
    let mut out = String::new();
    let mut attachments = Vec::new();
    serialize_into(&mut out, &mut attachments, data)?;
    from_str(&out, &attachments)
}

/// `value` as a `T`, binary where `T` takes bytes: the way back of [`to_value`].
///
/// # Errors
///
/// `value` is not what `T` expects.
///
/// # Examples
///
/// ```
/// use belfry_core::{args::{from_value, to_value}, proto::value::Binary};
/// use bytes::Bytes;
///
/// let value = to_value(&("n", Bytes::from_static(b"\x00\x01")))?;
/// let (name, Binary(bytes)): (String, Binary) = from_value(&value)?;
/// assert_eq!((name.as_str(), &bytes[..]), ("n", &[0u8, 1][..]));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, serde_json::Error> {
    let mut out = String::new();
    let mut attachments = Vec::new();
    serialize_into(&mut out, &mut attachments, value)?;
    from_str(&out, &attachments)
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

/// Appends the JSON of `value` to `out`: serde_json's serializer with [`TextFormatter`], under
/// [`Emit`] (which writes the text of [`RawJson`] values as it is).
fn serialize_into<T: Serialize + ?Sized>(
    out: &mut String,
    attachments: &mut Vec<Bytes>,
    value: &T,
) -> Result<(), serde_json::Error> {
    let shared = Shared {
        out: RefCell::new(out),
        unwritten_null: Cell::new(false),
    };
    let formatter = TextFormatter {
        shared: &shared,
        attachments,
    };
    let mut serializer = serde_json::Serializer::with_formatter(Unwritten, formatter);
    value.serialize(Emit {
        serializer: &mut serializer,
        shared: &shared,
    })
}

/// Several arguments from a list: `Spread(&values)` is sent as `v1, ..., vn`, as a tuple would
/// be (Node's `emit("ev", ...values)`), where the list itself would be one argument (an array).
///
/// # Examples
///
/// ```
/// use belfry_core::args::{Spread, push_event_array};
///
/// let values = ["a", "b"];
/// let mut text = String::new();
/// push_event_array(&mut text, "ev", &Spread(&values))?;
/// push_event_array(&mut text, "ev", &values.to_vec())?;
/// assert_eq!(text, r#"["ev","a","b"]["ev",["a","b"]]"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Spread<'a, T>(pub &'a [T]);

impl<T: Serialize> Serialize for Spread<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        // A tuple: what the argument lists spread.
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for element in self.0 {
            tuple.serialize_element(element)?;
        }
        tuple.end()
    }
}
