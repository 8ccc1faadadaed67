//! Rust values to Socket.IO argument lists.
//!
//! Node's `emit("ev", a, b)` sends `["ev",a,b]`. In Rust one value is given: a tuple is spread
//! into several arguments, `()` is no argument, anything else is one argument. Bytes anywhere in
//! the value (`bytes::Bytes`, or anything serde serializes as bytes) become binary attachments,
//! with a placeholder where they stood.

use std::cell::{Cell, RefCell};

use belfry_core::proto::value::Value;
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

mod raw;
mod shape;
#[cfg(test)]
mod tests;
mod text;

use raw::Emit;
pub(crate) use raw::RawJson;
use shape::{Shape, shape};
use text::{Shared, TextFormatter, Unwritten};

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

/// The arguments of `data`, spread as described in the module docs, as [`Value`]s (bytes stay
/// binary).
pub(crate) fn to_values<T: Serialize + ?Sized>(data: &T) -> Result<Vec<Value>, serde_json::Error> {
    let value = to_value(data)?;
    Ok(match (shape(data), value) {
        (Shape::None, _) => Vec::new(),
        (Shape::Spread, Value::Array(items)) => items,
        (_, value) => vec![value],
    })
}

/// `data` as a [`Value`]: written as an emit writes it (bytes anywhere become attachments behind
/// placeholders) and read back with the attachments in place, so bytes stay binary.
pub(crate) fn to_value<T: Serialize + ?Sized>(data: &T) -> Result<Value, serde_json::Error> {
    let mut out = String::new();
    let mut attachments = Vec::new();
    serialize_into(&mut out, &mut attachments, data)?;
    crate::binary::from_str(&out, &attachments)
}

/// `value` as `T`, binary where `T` takes bytes (the way back of [`to_value`]).
pub(crate) fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, serde_json::Error> {
    let mut out = String::new();
    let mut attachments = Vec::new();
    serialize_into(&mut out, &mut attachments, value)?;
    crate::binary::from_str(&out, &attachments)
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

/// Several arguments from a list: `socket.emit("ev", &Spread(&values))` sends
/// `["ev", v1, ..., vn]`, as a tuple or [`Args`](crate::extract::Args) would (Node's
/// `emit("ev", ...values)`), where the list itself would be one argument (an array).
///
/// # Examples
///
/// ```
/// use belfry::{SocketRef, Spread, Value};
///
/// fn send_all(socket: &SocketRef, values: &[Value]) {
///     let _ = socket.emit("values", &Spread(values));
/// }
/// # let _ = send_all;
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
