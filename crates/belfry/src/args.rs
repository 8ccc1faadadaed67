//! Rust values to Socket.IO argument lists.
//!
//! Node's `emit("ev", a, b)` sends `["ev",a,b]`. In Rust one value is given: a tuple is spread
//! into several arguments, `()` is no argument, anything else is one argument. Bytes anywhere in
//! the value (`bytes::Bytes`, or anything serde serializes as bytes) become binary attachments,
//! with a placeholder where they stood.

use std::{
    cell::{Cell, RefCell},
    fmt, io,
};

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

/// The output of one [`serialize_into`], shared by the formatter (which writes what serde_json
/// writes) and [`Emit`] (which writes [`RawJson`] text at its place in between).
struct Shared<'o> {
    out: RefCell<&'o mut String>,
    /// Set while [`Emit`] has serde_json write a `null` that stands for raw text already
    /// written: the formatter then writes nothing.
    unwritten_null: Cell<bool>,
}

/// serde_json's compact output, written by the formatter itself into a `String`, and bytes
/// become `{"_placeholder":true,"num":N}`, kept as attachment `N`.
///
/// serde_json hands string contents and raw values (a serde_json `RawValue`) to the formatter
/// as `&str`: they are appended as they are, where text written to an
/// `io::Write` would have to be checked as UTF-8 again to become a `String` (a second pass over
/// every argument). Floats and escapes, which serde_json formats its own way, are formatted by
/// its `CompactFormatter` into a small buffer. The serializer's writer ([`Unwritten`]) fails if
/// written: every method is covered here.
struct TextFormatter<'a, 'o> {
    shared: &'a Shared<'o>,
    attachments: &'a mut Vec<Bytes>,
}

impl TextFormatter<'_, '_> {
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
        self.push(text)
    }

    fn push(&mut self, text: &str) -> io::Result<()> {
        self.shared.out.borrow_mut().push_str(text);
        Ok(())
    }

    fn push_display(&mut self, value: impl fmt::Display) -> io::Result<()> {
        use fmt::Write;
        write!(self.shared.out.borrow_mut(), "{value}").map_err(io::Error::other)
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

impl Formatter for TextFormatter<'_, '_> {
    verbatim! { write_number_str; write_string_fragment; write_raw_fragment; }

    separators! { begin_array_value; begin_object_key; }

    integers! {
        write_i8(i8); write_i16(i16); write_i32(i32); write_i64(i64); write_i128(i128);
        write_u8(u8); write_u16(u16); write_u32(u32); write_u64(u64); write_u128(u128);
    }

    fixed! {
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

    fn write_null<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        if self.shared.unwritten_null.replace(false) {
            return Ok(());
        }
        self.push("null")
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

/// The name of the newtype struct [`RawJson`] serializes as; [`Emit`] writes its text as it is.
const RAW_JSON: &str = "$belfry::private::RawJson";

/// JSON text already checked (an [`Args`](crate::extract::Args) element) that serializes as
/// itself.
///
/// It serializes as the newtype struct [`RAW_JSON`] around [`RawText`]. Belfry's own writer
/// ([`Emit`], under every emit and ack) recognises the name and copies the text into the packet:
/// one copy, no second look at the JSON. Any other serializer (`serde_json::to_value`,
/// `serde_json::to_string`, ...) sees a newtype struct, serializes its [`RawText`], and that
/// checks the text into a serde_json [`RawValue`](serde_json::value::RawValue): a second pass,
/// but only off the emit path.
pub(crate) struct RawJson<'a>(pub(crate) &'a str);

impl Serialize for RawJson<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(RAW_JSON, &RawText(self.0))
    }
}

/// The content of a [`RawJson`]: a `RawValue` for any serializer, or its text as a string for
/// [`Capture`] (which [`Emit`] uses to read the text).
struct RawText<'a>(&'a str);

thread_local! {
    /// Set by [`capture_raw`] for the one `RawText::serialize` it calls. Only that call reads it
    /// (and clears it): a serializer cannot tell a `Serialize` impl who it is, and a type that
    /// serializes `Args` another way inside an emit must still get the `RawValue`.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
}

impl Serialize for RawText<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if CAPTURING.with(|capturing| capturing.replace(false)) {
            return serializer.serialize_str(self.0);
        }
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(self.0).map_err(ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// Appends the text of `value`, the content of a [`RAW_JSON`] newtype struct, to `out`; false
/// (and `out` as it was) if `value` is not a [`RawText`] (another type given the same name).
fn capture_raw<T: Serialize + ?Sized>(value: &T, out: &mut String) -> bool {
    /// Clears [`CAPTURING`] however the call ends.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CAPTURING.with(|capturing| capturing.set(false));
        }
    }
    let start = out.len();
    CAPTURING.with(|capturing| capturing.set(true));
    let reset = Reset;
    let captured = value.serialize(Capture(out)).is_ok();
    // `RawText` clears the flag when it reads it: still set, the value was something else.
    let read = !CAPTURING.with(Cell::get);
    drop(reset);
    if captured && read {
        true
    } else {
        out.truncate(start);
        false
    }
}

/// The serializer [`capture_raw`] hands a [`RawText`]: takes its text, refuses anything else.
struct Capture<'a>(&'a mut String);

impl ser::Serializer for Capture<'_> {
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
        serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_str(self, text: &str) -> Result<(), Probe> {
        self.0.push_str(text);
        Ok(())
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
        Err(Probe::Other)
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

/// serde_json's serializer (`S`), with [`RawJson`] values written as their text.
///
/// Every call is passed on to `S`, and every value inside a sequence, tuple, map or struct is
/// serialized by `S` through [`Wrapped`], which puts an `Emit` around the serializer `S` hands
/// it: values at any depth come back here. Map keys are not wrapped (a key is a string, not
/// raw JSON). A newtype struct named [`RAW_JSON`] is written by appending its text to the
/// output, where `S` would write the value (separators are written by `S`'s compounds around
/// each value), and by having `S` serialize a unit whose `null` the formatter leaves out (which
/// gives `S::Ok`, and keeps `S` in step).
struct Emit<'c, 'o, S> {
    serializer: S,
    shared: &'c Shared<'o>,
}

/// A value inside a compound, serialized under [`Emit`].
struct Wrapped<'v, 'c, 'o, T: ?Sized> {
    value: &'v T,
    shared: &'c Shared<'o>,
}

impl<T: Serialize + ?Sized> Serialize for Wrapped<'_, '_, '_, T> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Emit {
            serializer,
            shared: self.shared,
        })
    }
}

/// `value`, to be serialized under [`Emit`].
fn wrap<'v, 'c, 'o, T: ?Sized>(shared: &'c Shared<'o>, value: &'v T) -> Wrapped<'v, 'c, 'o, T> {
    Wrapped { value, shared }
}

/// A compound of `S` (`C`), whose values are serialized under [`Emit`].
struct EmitCompound<'c, 'o, C> {
    compound: C,
    shared: &'c Shared<'o>,
}

/// Serializer methods passed on as they are.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $name(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.serializer.$name($($arg),*)
        })*
    };
}

impl<'c, 'o, S: ser::Serializer> ser::Serializer for Emit<'c, 'o, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = EmitCompound<'c, 'o, S::SerializeSeq>;
    type SerializeTuple = EmitCompound<'c, 'o, S::SerializeTuple>;
    type SerializeTupleStruct = EmitCompound<'c, 'o, S::SerializeTupleStruct>;
    type SerializeTupleVariant = EmitCompound<'c, 'o, S::SerializeTupleVariant>;
    type SerializeMap = EmitCompound<'c, 'o, S::SerializeMap>;
    type SerializeStruct = EmitCompound<'c, 'o, S::SerializeStruct>;
    type SerializeStructVariant = EmitCompound<'c, 'o, S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool); serialize_i8(v: i8); serialize_i16(v: i16);
        serialize_i32(v: i32); serialize_i64(v: i64); serialize_i128(v: i128);
        serialize_u8(v: u8); serialize_u16(v: u16); serialize_u32(v: u32);
        serialize_u64(v: u64); serialize_u128(v: u128); serialize_f32(v: f32);
        serialize_f64(v: f64); serialize_char(v: char); serialize_str(v: &str);
        serialize_bytes(v: &[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.serializer.serialize_some(&wrap(self.shared, value))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        if name == RAW_JSON && capture_raw(value, &mut self.shared.out.borrow_mut()) {
            self.shared.unwritten_null.set(true);
            let written = self.serializer.serialize_unit();
            if self.shared.unwritten_null.replace(false) {
                // Only serde_json's serializer over `TextFormatter` is ever under `Emit`.
                return Err(ser::Error::custom(
                    "raw JSON under a serializer that is not Belfry's",
                ));
            }
            return written;
        }
        self.serializer
            .serialize_newtype_struct(name, &wrap(self.shared, value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.serializer
            .serialize_newtype_variant(name, index, variant, &wrap(self.shared, value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let compound = self.serializer.serialize_seq(len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let compound = self.serializer.serialize_tuple(len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let compound = self.serializer.serialize_tuple_struct(name, len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let compound = self
            .serializer
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let compound = self.serializer.serialize_map(len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let compound = self.serializer.serialize_struct(name, len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let compound = self
            .serializer
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(EmitCompound {
            compound,
            shared: self.shared,
        })
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.serializer.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.serializer.is_human_readable()
    }
}

/// The compounds whose values are elements (sequences, tuples, tuple structs and variants).
macro_rules! element_compounds {
    ($($trait:ident::$method:ident;)*) => {
        $(impl<C: ser::$trait> ser::$trait for EmitCompound<'_, '_, C> {
            type Ok = C::Ok;
            type Error = C::Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
                self.compound.$method(&wrap(self.shared, value))
            }

            fn end(self) -> Result<C::Ok, C::Error> {
                self.compound.end()
            }
        })*
    };
}

element_compounds! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

/// The compounds whose values are named fields (structs and struct variants).
macro_rules! field_compounds {
    ($($trait:ident;)*) => {
        $(impl<C: ser::$trait> ser::$trait for EmitCompound<'_, '_, C> {
            type Ok = C::Ok;
            type Error = C::Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), C::Error> {
                self.compound.serialize_field(key, &wrap(self.shared, value))
            }

            fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
                self.compound.skip_field(key)
            }

            fn end(self) -> Result<C::Ok, C::Error> {
                self.compound.end()
            }
        })*
    };
}

field_compounds! {
    SerializeStruct;
    SerializeStructVariant;
}

impl<C: ser::SerializeMap> ser::SerializeMap for EmitCompound<'_, '_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        self.compound.serialize_key(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.compound.serialize_value(&wrap(self.shared, value))
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), C::Error> {
        self.compound
            .serialize_entry(key, &wrap(self.shared, value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.compound.end()
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

    fn args(json: &str) -> crate::extract::Args {
        crate::extract::Args(belfry_core::parser::Elements::parse(json).unwrap().skip(1))
    }

    /// `Args` anywhere in a value (a field, an element, a map value, a variant, an option,
    /// flattened) are written as their text, among other values and attachments.
    #[test]
    fn nested_args_keep_their_text() {
        use std::collections::BTreeMap;

        #[derive(Serialize)]
        struct Reply<'a> {
            id: u32,
            args: &'a crate::extract::Args,
            file: Bytes,
            #[serde(flatten)]
            extra: BTreeMap<&'static str, &'a crate::extract::Args>,
        }
        #[derive(Serialize)]
        enum Kind<'a> {
            One(&'a crate::extract::Args),
            Two(u8, &'a crate::extract::Args),
            Named { args: &'a crate::extract::Args },
        }
        #[derive(Serialize)]
        #[serde(tag = "type")]
        enum Tagged<'a> {
            Got { args: &'a crate::extract::Args },
        }
        #[derive(Serialize)]
        struct Pair<'a>(&'a crate::extract::Args, Bytes);

        let args = args(r#"["ev", {"b": 1, "a": [2]} , "x\u00e9",[ ]]"#);
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
            format!(
                r#"{{"id":7,"args":{text},"file":{{"_placeholder":true,"num":1}},"more":{text}}}"#
            ),
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
        assert_eq!(args_array(&crate::extract::Args::default()), "[]");
        assert!(!CAPTURING.with(Cell::get));
    }

    /// Other serializers get the arguments' JSON: serde_json's writer their text, its `Value`
    /// their values.
    #[test]
    fn args_serialize_anywhere() {
        let args = args(r#"["ev", {"b": 1, "a": [2]} , "x\u00e9",[ ], 12345678901234567890]"#);
        assert_eq!(
            serde_json::to_string(&args).unwrap(),
            r#"[{"b": 1, "a": [2]},"x\u00e9",[ ],12345678901234567890]"#
        );
        assert_eq!(
            serde_json::to_value(&args).unwrap(),
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
            [serde_json::json!("a"), serde_json::to_value(&args).unwrap()]
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
