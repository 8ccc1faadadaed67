//! The JSON text of emits, written by the formatter itself into a `String`; bytes become
//! placeholders and attachments.

use std::{
    cell::{Cell, RefCell},
    fmt, io,
};

use bytes::Bytes;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// The output of one [`serialize_into`](super::serialize_into), shared by the formatter (which
/// writes what serde_json writes) and [`Emit`](super::raw::Emit) (which writes
/// [`RawJson`](super::RawJson) text at its place in between).
pub(super) struct Shared<'o> {
    pub(super) out: RefCell<&'o mut String>,
    /// Set while [`Emit`](super::raw::Emit) has serde_json write a `null` that stands for raw text already
    /// written: the formatter then writes nothing.
    pub(super) unwritten_null: Cell<bool>,
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
pub(super) struct TextFormatter<'a, 'o> {
    pub(super) shared: &'a Shared<'o>,
    pub(super) attachments: &'a mut Vec<Bytes>,
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
pub(super) struct Unwritten;

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
